package protocols

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"reflect"
	"testing"
)

func TestEventRoundTrip(t *testing.T) {
	ev := Event{Kind: EventTelemetry, Device: "Dev \"A\"", DeviceType: "meter", Ts: 1700000000123, Values: []Datapoint{
		{"b", Bool(true)}, {"i", Int(-42)}, {"u", Uint(math.MaxUint64)}, {"f", Float(12.5)}, {"s", String("x\ny")}, {"n", Value{}},
	}}
	got, err := DecodeEvent(ev.AppendBinary(nil))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, ev) {
		t.Fatalf("round trip:\n got %+v\nwant %+v", got, ev)
	}
}

func TestDecodeEventRejectsGarbage(t *testing.T) {
	for _, b := range [][]byte{nil, {1}, {2, 1}, {1, 9}, {1, 1, 200}} {
		if _, err := DecodeEvent(b); err == nil {
			t.Errorf("DecodeEvent(%v) accepted garbage", b)
		}
	}
}

func TestValueJSON(t *testing.T) {
	cases := []struct {
		v    Value
		want string
	}{
		{Bool(true), "true"}, {Int(-3), "-3"}, {Uint(7), "7"}, {Float(0.1), "0.1"},
		{Float(math.NaN()), `"NaN"`}, {Float(math.Inf(1)), `"+Inf"`},
		{String("a\"b\\c\x01é"), `"a\"b\\c\u0001é"`}, {String("\xff"), `"\ufffd"`}, {Value{}, "null"},
	}
	for _, c := range cases {
		got := string(c.v.AppendJSON(nil))
		if got != c.want {
			t.Errorf("%#v: got %s want %s", c.v, got, c.want)
		}
		if !json.Valid([]byte(got)) {
			t.Errorf("%#v: invalid JSON %s", c.v, got)
		}
	}
}

func TestValueEqual(t *testing.T) {
	if !Float(1.0).Equal(Float(1.0004)) {
		t.Error("floats within 0.001 must be equal (upstream ON_CHANGE)")
	}
	if Float(1.0).Equal(Float(1.01)) || Int(1).Equal(Int(2)) || String("a").Equal(String("b")) {
		t.Error("different values compared equal")
	}
}

func FuzzDecodeEvent(f *testing.F) {
	ev := Event{Kind: EventAttributes, Device: "d", Ts: 5, Values: []Datapoint{{"k", String("v")}, {"f", Float(1)}}}
	f.Add(ev.AppendBinary(nil))
	f.Add([]byte{1, 1, 0, 0, 0, 255, 255, 255, 255, 15})
	obj, _ := JSON([]byte(`{"a":[1,{"b":"c"}],"d":null}`))
	ev = Event{Kind: EventTelemetry, Device: "d", Values: []Datapoint{{"o", obj}, {"s", String("x")}}}
	f.Add(ev.AppendBinary(nil))
	var shared EventDecoder
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := DecodeEvent(b)
		// The stream decoder agrees with DecodeEvent on every input.
		se, serr := shared.Decode(b)
		if (err == nil) != (serr == nil) || err == nil && !bytes.Equal(e.AppendBinary(nil), se.AppendBinary(nil)) {
			t.Fatalf("EventDecoder: %+v, %v; DecodeEvent: %+v, %v", se, serr, e, err)
		}
		if len(shared.arena) > 1000 {
			shared.Reset()
		}
		if err != nil {
			return
		}
		// Whatever decodes must re-encode to something that decodes the same.
		again, err := DecodeEvent(e.AppendBinary(nil))
		if err != nil {
			t.Fatalf("re-decode: %v", err)
		}
		if !bytes.Equal(again.AppendBinary(nil), e.AppendBinary(nil)) { // not DeepEqual: NaN
			t.Fatalf("round trip changed the event:\n got %+v\nwant %+v", again, e)
		}
		for _, dp := range e.Values {
			if !json.Valid(dp.Value.AppendJSON(nil)) {
				t.Fatalf("invalid JSON for %#v", dp.Value)
			}
		}
	})
}

// TestEventDecoderReuse: events decoded between two Resets stay intact
// while more are decoded; names are shared; Reset reuses the arena.
func TestEventDecoderReuse(t *testing.T) {
	var recs [][]byte
	var want []Event
	for i := range 300 {
		e := Event{Kind: EventTelemetry, Device: fmt.Sprintf("dev-%d", i%3), Ts: int64(i), Values: []Datapoint{
			{"a", Int(int64(i))}, {"b", String(fmt.Sprint("s", i))}, {"c", Float(float64(i) / 2)}}}
		want = append(want, e)
		recs = append(recs, e.AppendBinary(nil))
	}
	var d EventDecoder
	for round := range 3 {
		var got []Event
		for _, r := range recs {
			e, err := d.Decode(r)
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, e)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("round %d: decoded events differ", round)
		}
		if len(d.names) != 6 { // three devices, three keys
			t.Fatalf("interned %d names, want 6", len(d.names))
		}
		d.Reset()
	}
	if allocs := testing.AllocsPerRun(10, func() {
		for _, r := range recs[:100] {
			if _, err := d.Decode(r); err != nil {
				t.Fatal(err)
			}
		}
		d.Reset()
	}); allocs > 110 { // one string value per record
		t.Fatalf("%.0f allocations for 100 records", allocs)
	}
}

func TestFromGo(t *testing.T) {
	for _, c := range []struct {
		in   any
		want Value
	}{
		{true, Bool(true)},
		{int8(-3), Int(-3)},
		{int(7), Int(7)},
		{uint16(7), Uint(7)},
		{uint64(math.MaxUint64), Uint(math.MaxUint64)},
		{float32(0.1), Float(0.1)},
		{float64(0.1), Float(0.1)},
		{"x", String("x")},
	} {
		got, ok := FromGo(c.in)
		if !ok || got != c.want {
			t.Errorf("FromGo(%T %v) = %#v, %v; want %#v", c.in, c.in, got, ok, c.want)
		}
	}
	if v, ok := FromGo(float32(math.Inf(1))); !ok || !math.IsInf(v.F, 1) {
		t.Errorf("FromGo(+Inf float32) = %#v", v)
	}
	for _, x := range []any{nil, []int{1}, struct{}{}} {
		if _, ok := FromGo(x); ok {
			t.Errorf("FromGo(%T) accepted", x)
		}
	}
}

// BenchmarkEventDecoder decodes the uplink's stream: records of 100 devices
// of one model, ten float keys each, in turn.
func BenchmarkEventDecoder(b *testing.B) {
	var recs [][]byte
	for i := range 100 {
		e := Event{Kind: EventTelemetry, Device: fmt.Sprintf("sensor-%03d", i), DeviceType: "BenchSensor", Ts: int64(i)}
		for k := range 10 {
			e.Values = append(e.Values, Datapoint{fmt.Sprintf("temperature_%d", k), Float(float64(i) + float64(k)/10)})
		}
		recs = append(recs, e.AppendBinary(nil))
	}
	var d EventDecoder
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		if _, err := d.Decode(recs[i%len(recs)]); err != nil {
			b.Fatal(err)
		}
		if i%len(recs) == len(recs)-1 {
			d.Reset()
		}
	}
}
