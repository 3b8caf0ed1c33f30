package protocols

import (
	"encoding/hex"
	"encoding/json"
	"math"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestJSONValue(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{` { "a" : [1, 2.50, {"b": null}] , "c":"x y" } `, `{"a":[1,2.50,{"b":null}],"c":"x y"}`},
		{"[ ]", "[]"},
		{`{"k":"<&>"}`, `{"k":"<&>"}`}, // no HTML escaping: the text is what the device sent
		{`"s"`, `"s"`},
	} {
		v, err := JSON([]byte(c.in))
		if err != nil {
			t.Fatalf("JSON(%q): %v", c.in, err)
		}
		if v.Kind != KindJSON || v.S != c.want {
			t.Errorf("JSON(%q) = %#v, want text %s", c.in, v, c.want)
		}
		if got := string(v.AppendJSON(nil)); got != c.want || !json.Valid([]byte(got)) {
			t.Errorf("AppendJSON = %s, want %s", got, c.want)
		}
		if v.String() != c.want {
			t.Errorf("String() = %s", v.String())
		}
	}
	// Invalid UTF-8 in a string becomes U+FFFD (the character or its escape).
	v, err := JSON([]byte("[\"a\xffb\"]"))
	var got []string
	if err != nil || !utf8.ValidString(v.S) || json.Unmarshal([]byte(v.S), &got) != nil || !reflect.DeepEqual(got, []string{"a\ufffdb"}) {
		t.Errorf("invalid UTF-8: %#v, %v", v, err)
	}
	for _, bad := range []string{"", "{", `{"a":}`, "[1] [2]", "nul"} {
		if v, err := JSON([]byte(bad)); err == nil || !strings.Contains(err.Error(), "invalid JSON value") {
			t.Errorf("JSON(%q) = %#v, %v; want an error", bad, v, err)
		}
	}
	if got := string((Value{Kind: KindJSON}).AppendJSON(nil)); got != "null" {
		t.Errorf("empty KindJSON encodes as %s, want null", got)
	}
	a, _ := JSON([]byte(`{"a": 1}`))
	b, _ := JSON([]byte(`{"a":1}`))
	if !a.Equal(b) || a.Equal(String(`{"a":1}`)) {
		t.Error("JSON values compare by compact text and never equal a string")
	}
}

func TestEventRoundTripJSON(t *testing.T) {
	obj, _ := JSON([]byte(`{"a":{"b":[1,"x"]}}`))
	list, _ := JSON([]byte(`[true,null]`))
	ev := Event{Kind: EventAttributes, Device: "d", Ts: 1, Values: []Datapoint{{"o", obj}, {"l", list}, {"s", String("[1]")}}}
	rec := ev.AppendBinary(nil)
	for name, dec := range map[string]func([]byte) (Event, error){"DecodeEvent": DecodeEvent, "EventDecoder": new(EventDecoder).Decode} {
		got, err := dec(rec)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if !reflect.DeepEqual(got, ev) {
			t.Fatalf("%s round trip:\n got %+v\nwant %+v", name, got, ev)
		}
	}
}

// A record whose JSON text was damaged must not reach the platform.
func TestDecodeEventRejectsInvalidJSONValue(t *testing.T) {
	for _, text := range []string{`{"a":`, "[\"\xff\"]", ""} {
		ev := Event{Kind: EventTelemetry, Device: "d", Values: []Datapoint{{"k", Value{Kind: KindJSON, S: text}}}}
		_, err := DecodeEvent(ev.AppendBinary(nil))
		if err == nil || !strings.Contains(err.Error(), `invalid JSON value for key "k"`) {
			t.Errorf("%q: err = %v", text, err)
		}
	}
}

// oldRecord was written by the journal before KindJSON existed; journals
// on disk hold such records across an upgrade.
const oldRecord = "010103446576056d65746572f6a1abfef962060162010201690253017503ffffffffffffffffff0101660400000000000029400173050178016e00"

func TestDecodeEventOldRecord(t *testing.T) {
	b, _ := hex.DecodeString(oldRecord)
	got, err := DecodeEvent(b)
	if err != nil {
		t.Fatal(err)
	}
	want := Event{Kind: EventTelemetry, Device: "Dev", DeviceType: "meter", Ts: 1700000000123, Values: []Datapoint{
		{"b", Bool(true)}, {"i", Int(-42)}, {"u", Uint(math.MaxUint64)}, {"f", Float(12.5)}, {"s", String("x")}, {"n", Value{}},
	}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("old record:\n got %+v\nwant %+v", got, want)
	}
	if again := want.AppendBinary(nil); hex.EncodeToString(again) != oldRecord {
		t.Fatalf("the encoding of the old kinds changed: %x", again)
	}
}
