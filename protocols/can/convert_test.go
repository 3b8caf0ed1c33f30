package can

import (
	"bytes"
	"encoding/json"
	"errors"
	"math"
	"strings"
	"testing"

	"github.com/industryos/gateway/protocols"
)

func mustValue(t testing.TB, s string) ValueSpec {
	t.Helper()
	v, err := ParseValueSpec(s)
	if err != nil {
		t.Fatalf("ParseValueSpec(%q): %v", s, err)
	}
	return v
}

func f32be(f float32) []byte {
	b := make([]byte, 4)
	u := math.Float32bits(f)
	b[0], b[1], b[2], b[3] = byte(u>>24), byte(u>>16), byte(u>>8), byte(u)
	return b
}

func TestExtractVectors(t *testing.T) {
	f64le := make([]byte, 8)
	u := math.Float64bits(-1234.5678)
	for i := range f64le {
		f64le[i] = byte(u >> (8 * i))
	}
	cases := []struct {
		spec string
		data []byte
		want protocols.Value
	}{
		{"0:1:bool", []byte{0}, protocols.Bool(false)},
		{"1:1:boolean", []byte{0, 7}, protocols.Bool(true)},
		{"0:2:int", []byte{0x12, 0x34}, protocols.Int(0x1234)},
		{"0:2:big:int", []byte{0x12, 0x34}, protocols.Int(0x1234)},
		{"0:2:little:int", []byte{0x12, 0x34}, protocols.Int(0x3412)},
		{"0:2:big:int", []byte{0xff, 0xfe}, protocols.Int(65534)}, // unsigned by default, as upstream
		{"0:2:big:int:signed", []byte{0xff, 0xfe}, protocols.Int(-2)},
		{"1:3:little:long:signed", []byte{9, 0x00, 0x00, 0x80}, protocols.Int(-8388608)},
		{"0:8:big:long", bytes.Repeat([]byte{0xff}, 8), protocols.Uint(math.MaxUint64)},
		{"0:8:big:long:signed", bytes.Repeat([]byte{0xff}, 8), protocols.Int(-1)},
		{"2:-1:little:int", []byte{0, 0, 1, 2, 3}, protocols.Int(0x030201)},
		{"0:4:float", f32be(12.5), protocols.Float(12.5)},
		{"1:4:little:float", []byte{0, 0, 0, 0x48, 0xc1}, protocols.Float(-12.5)},
		{"0:8:little:double", f64le, protocols.Float(-1234.5678)},
		{"0:-1:string", []byte("hello"), protocols.String("hello")},
		{"1:3:string:ascii", []byte("xabcz"), protocols.String("abc")},
		{"0:-1:string:utf-8", []byte("grüß"), protocols.String("grüß")},
		{"0:2:string:latin-1", []byte{0x67, 0xfc}, protocols.String("gü")},
		{"0:3:raw", []byte{0xde, 0xad, 0xbe, 0xef}, protocols.String("deadbe")},
		{"2:-1:raw", []byte{1, 2, 0xab, 0xcd}, protocols.String("abcd")},
	}
	for _, c := range cases {
		v := mustValue(t, c.spec)
		got, err := v.Extract(c.data)
		if err != nil {
			t.Errorf("%s on % x: %v", c.spec, c.data, err)
			continue
		}
		if got != c.want {
			t.Errorf("%s on % x = %#v, want %#v", c.spec, c.data, got, c.want)
		}
	}
}

func TestExtractErrors(t *testing.T) {
	cases := []struct {
		spec string
		data []byte
		want string
	}{
		{"4:2:int", []byte{1, 2, 3, 4, 5}, "value at bytes 4..5 is outside the 5-byte frame"},
		{"0:4:float", []byte{1, 2}, "float at bytes 0..3 is outside the 2-byte frame"},
		{"0:-1:string", []byte{0x80}, "byte 0x80 at 0 is not ascii"},
		{"0:-1:string:utf-8", []byte{0xff}, "not valid utf-8"},
		{"6:-1:int", []byte{1, 2}, "value starts at byte 6 of a 2-byte frame"},
		{"0:-1:int", make([]byte, 12), "integer of 12 bytes (want 1..8)"},
	}
	for _, c := range cases {
		v := mustValue(t, c.spec)
		_, err := v.Extract(c.data)
		if err == nil || !errors.Is(err, ErrConvert) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: got %v, want ErrConvert containing %q", c.spec, err, c.want)
		}
	}
}

func TestValueSpecDictEqualsString(t *testing.T) {
	cfg := loadOK(t, `{"channel":"c","devices":[{"name":"d","timeseries":[
		{"key":"a","nodeId":1,"value":{"start":1,"length":2,"byteorder":"little","type":"int","signed":true}},
		{"key":"b","nodeId":1,"value":"1:2:little:int:signed"}]}]}`)
	a, b := cfg.Devices[0].Timeseries[0].Value, cfg.Devices[0].Timeseries[1].Value
	if a != b {
		t.Fatalf("dict %+v != string %+v", a, b)
	}
}

func loadOK(t testing.TB, js string) *Config {
	t.Helper()
	cfg, _, err := Load("can.json", []byte(js))
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	return cfg
}

// The upstream integration test: "4:2:little:int" with value*10, and
// command-selected values on the same nodeId.
func TestDecodeUpstreamCommandCase(t *testing.T) {
	cfg := loadOK(t, `{"interface":"virtual","channel":"t","devices":[{"name":"Car","timeseries":[
		{"key":"rpm","nodeId":418119424,"isExtendedId":true,"command":"2:2:big:48059","value":"4:2:little:int","expression":"value * 10"},
		{"key":"milliage","nodeId":418119424,"isExtendedId":true,"command":"2:2:big:48060","value":"4:4:little:int"},
		{"key":"speed","nodeId":258,"value":"0:1:int"}],
		"attributes":[{"key":"raw","nodeId":418119424,"isExtendedId":true,"value":"0:2:raw"}]}]}`)
	d := NewDecoder(cfg)
	f := Frame{ID: 418119424, Extended: true, Data: []byte{0x01, 0x02, 0xbb, 0xbb, 0xd2, 0x04, 0, 0}}
	got, matched, err := d.Decode(f, nil)
	if err != nil || !matched {
		t.Fatalf("decode: %v matched=%v", err, matched)
	}
	want := map[string]protocols.Value{"raw": protocols.String("0102"), "rpm": protocols.Int(12340)}
	checkReadings(t, got, want)

	f.Data = []byte{0xff, 0xff, 0xbb, 0xbc, 0x40, 0xe2, 0x01, 0x00}
	got, _, err = d.Decode(f, got[:0])
	if err != nil {
		t.Fatal(err)
	}
	checkReadings(t, got, map[string]protocols.Value{"raw": protocols.String("ffff"), "milliage": protocols.Int(123456)})

	// Unknown command: only the command-less key; unknown id: not matched.
	f.Data = []byte{0, 0, 0, 1, 0, 0, 0, 0}
	got, matched, _ = d.Decode(f, got[:0])
	checkReadings(t, got, map[string]protocols.Value{"raw": protocols.String("0000")})
	if !matched {
		t.Error("command-less key should match")
	}
	if _, matched, _ = d.Decode(Frame{ID: 77, Data: []byte{1}}, nil); matched {
		t.Error("id 77 matched")
	}
}

func TestDecodeKeepsGoodKeysOnError(t *testing.T) {
	cfg := loadOK(t, `{"channel":"t","devices":[{"name":"D","timeseries":[
		{"key":"a","nodeId":5,"value":"0:1:int"},{"key":"b","nodeId":5,"value":"2:4:float"}]}]}`)
	got, matched, err := NewDecoder(cfg).Decode(Frame{ID: 5, Data: []byte{42}}, nil)
	checkReadings(t, got, map[string]protocols.Value{"a": protocols.Int(42)})
	if !matched || err == nil || !strings.Contains(err.Error(), `D key "b": can conversion failed: float at bytes 2..5 is outside the 1-byte frame`) {
		t.Errorf("matched=%v err=%v", matched, err)
	}
}

func checkReadings(t *testing.T, got []Reading, want map[string]protocols.Value) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("got %d readings %v, want %v", len(got), got, want)
	}
	for _, r := range got {
		if w, ok := want[r.Key.Key]; !ok || w != r.Value {
			t.Errorf("%s = %#v, want %#v", r.Key.Key, r.Value, w)
		}
	}
}

func TestExpressions(t *testing.T) {
	cases := []struct {
		value, expr string
		strict      bool
		data        []byte
		want        protocols.Value
	}{
		{"0:1:int", "value * 10", true, []byte{7}, protocols.Int(70)},
		{"0:1:int", "value / 4", true, []byte{10}, protocols.Float(2.5)},
		{"0:2:int", "can_data[0] + can_data[1]", true, []byte{1, 2}, protocols.Int(3)},
		{"0:1:bool", "value ? 'on' : 'off'", true, []byte{1}, protocols.String("on")},
		{"0:-1:string", "value + '!'", true, []byte("hi"), protocols.String("hi!")},
		{"0:4:float", "value > 10", true, f32be(12.5), protocols.Bool(true)},
		{"0:1:int", "abs(value - 20)", false, []byte{5}, protocols.Int(15)},
		{"0:1:int", "bool(value & 0b00000100)", false, []byte{4}, protocols.Bool(true)},
		{"0:1:bool", "'on' if value else 'off'", true, []byte{0}, protocols.String("off")},
		{"0:1:int", "value // 4", true, []byte{10}, protocols.Int(2)},
		{"0:2:int", "can_data[0] << 8 | can_data[1]", true, []byte{1, 2}, protocols.Int(258)},
		{"0:1:int", "value == true ? 1 : 0", true, []byte{1}, protocols.Int(0)}, // legacy: int == bool is false
	}
	for _, c := range cases {
		e, warn, err := compileUplink(c.expr, c.strict)
		if err != nil {
			t.Errorf("%q: %v", c.expr, err)
			continue
		}
		if legacy := strings.Contains(c.expr, "?"); legacy != e.Legacy() || legacy != (warn != "") {
			t.Errorf("%q: legacy %v, warning %q", c.expr, e.Legacy(), warn)
		}
		k := &KeyConfig{Value: mustValue(t, c.value), Expression: e}
		got, err := k.Convert(c.data)
		if err != nil || got != c.want {
			t.Errorf("%q on % x = %#v, %v; want %#v", c.expr, c.data, got, err, c.want)
		}
	}
	// strictEval: built-in functions are refused at load time; the key is skipped.
	_, probs, err := Load("can.json", []byte(`{"channel":"c","devices":[{"name":"d","timeseries":[
		{"key":"a","nodeId":1,"value":"0:1:int","expression":"abs(value)"}]}]}`))
	if err != nil || len(probs) != 1 || probs[0].String() != `error (entry skipped): can.json: devices[0].timeseries[0].expression: invalid expression "abs(value)": column 1: abs is a built-in function: strictEval (default true) disables them, as upstream; set "strictEval": false` {
		t.Errorf("strict: %v %v", err, probs)
	}
	// Runtime failure is an ErrConvert.
	e, _, _ := compileUplink("value.x", true)
	k := &KeyConfig{Value: mustValue(t, "0:1:int"), Expression: e}
	if _, err := k.Convert([]byte{1}); !errors.Is(err, ErrConvert) {
		t.Errorf("runtime error: %v", err)
	}
}

func num(s string) json.Number { return json.Number(s) }

func TestEncodeVectors(t *testing.T) {
	hexb := func(s string) []byte { b, _ := parseHex(s); return b }
	expr := func(s string) *Expression {
		e, _, err := compileDownlink(s, true)
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	cases := []struct {
		name string
		spec DownlinkSpec
		data any
		want []byte
	}{
		{"config dataInHex wins", DownlinkSpec{DataInHex: hexb("aa bb")}, map[string]any{"value": 5, "dataInHex": "01"}, []byte{0xaa, 0xbb}},
		{"data dataInHex wins over value", DownlinkSpec{DataLength: 1}, map[string]any{"value": 5, "dataInHex": "0102 03"}, []byte{1, 2, 3}},
		{"bool true is one byte", DownlinkSpec{DataLength: 4}, map[string]any{"value": true}, []byte{1}},
		{"bool false", DownlinkSpec{}, false, []byte{0}},
		{"int default length 1", DownlinkSpec{}, map[string]any{"value": num("200")}, []byte{200}},
		{"int big", DownlinkSpec{DataLength: 2}, map[string]any{"value": num("4660")}, []byte{0x12, 0x34}},
		{"int little", DownlinkSpec{DataLength: 2, DataByteorder: LittleEndian}, map[string]any{"value": num("4660")}, []byte{0x34, 0x12}},
		{"negative is signed", DownlinkSpec{DataLength: 2}, map[string]any{"value": num("-2")}, []byte{0xff, 0xfe}},
		{"signed", DownlinkSpec{DataLength: 4, DataSigned: true, DataByteorder: LittleEndian}, map[string]any{"value": -1000}, []byte{0x18, 0xfc, 0xff, 0xff}},
		{"float big", DownlinkSpec{}, map[string]any{"value": num("12.5")}, f32be(12.5)},
		{"float little", DownlinkSpec{DataByteorder: LittleEndian}, map[string]any{"value": 12.5}, []byte{0, 0, 0x48, 0x41}},
		{"integral float64 is int", DownlinkSpec{DataLength: 2}, map[string]any{"value": 3.0}, []byte{0, 3}},
		{"string ascii", DownlinkSpec{DataEncoding: "ascii"}, map[string]any{"value": "OK"}, []byte("OK")},
		{"string utf-8", DownlinkSpec{DataEncoding: "utf-8"}, "ü", []byte{0xc3, 0xbc}},
		{"before and after", DownlinkSpec{DataLength: 2, DataBefore: hexb("00 11"), DataAfter: hexb("ff")}, map[string]any{"value": 258}, []byte{0, 0x11, 1, 2, 0xff}},
		{"expression", DownlinkSpec{DataLength: 2, DataExpression: expr("userSpeed * 10")}, map[string]any{"userSpeed": num("30")}, []byte{0x01, 0x2c}},
		{"expression float", DownlinkSpec{DataExpression: expr("value / 2")}, map[string]any{"value": 5}, f32be(2.5)},
		{"expression bool", DownlinkSpec{DataExpression: expr("value == 'on'")}, map[string]any{"value": "on"}, []byte{1}},
	}
	for _, c := range cases {
		got, err := c.spec.Encode(c.data)
		if err != nil || !bytes.Equal(got, c.want) {
			t.Errorf("%s: got % x, %v; want % x", c.name, got, err, c.want)
		}
	}
}

func TestEncodeErrors(t *testing.T) {
	cases := []struct {
		spec DownlinkSpec
		data any
		want string
	}{
		{DownlinkSpec{}, map[string]any{"value": 256}, "256 does not fit in 1 unsigned byte(s)"},
		{DownlinkSpec{DataLength: 1}, map[string]any{"value": -129}, "-129 does not fit in 1 signed byte(s)"},
		{DownlinkSpec{DataLength: 1, DataSigned: true}, map[string]any{"value": 200}, "200 does not fit in 1 signed byte(s)"},
		{DownlinkSpec{}, map[string]any{"value": "é"}, `"é" is not ascii (set dataEncoding)`},
		{DownlinkSpec{}, map[string]any{"other": 1}, "no value, dataInHex or dataExpression to send"},
		{DownlinkSpec{}, map[string]any{"dataInHex": "zz"}, `dataInHex: "zz" is not hex data`},
		{DownlinkSpec{}, map[string]any{"value": []any{1}}, "cannot send a value of type []interface {}"},
	}
	for _, c := range cases {
		_, err := c.spec.Encode(c.data)
		if !errors.Is(err, ErrConvert) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: got %v, want %q", c.data, err, c.want)
		}
	}
}

func TestDownlinkFrameAndFD(t *testing.T) {
	cfg := loadOK(t, `{"channel":"c","devices":[{"name":"d","serverSideRpc":[
		{"method":"fd","nodeId":16,"isFd":true,"bitrateSwitch":true,"dataInHex":"00112233445566778899aabb"},
		{"method":"big","nodeId":17,"dataLength":8,"dataBefore":"0102"}]}]}`)
	rpc := cfg.Devices[0].RPC
	f, err := rpc[0].Frame(nil)
	if err != nil || !f.FD || !f.BRS || len(f.Data) != 12 {
		t.Fatalf("fd frame: %v %v", f, err)
	}
	if err := CheckClassic(f); !errors.Is(err, ErrFDUnsupported) ||
		err.Error() != "frame 0x10: CAN FD frames are not supported by this transport (isFd is set; SocketCAN via brutella/can and slcan send classic frames only)" {
		t.Errorf("CheckClassic: %v", err)
	}
	if _, err := rpc[1].Frame(map[string]any{"value": 1}); !errors.Is(err, ErrInvalidFrame) ||
		!strings.Contains(err.Error(), "10 data bytes, a classic frame carries at most 8") {
		t.Errorf("too long: %v", err)
	}
	if err := CheckClassic(Frame{ID: 0x800, Data: []byte{1}}); !errors.Is(err, ErrInvalidFrame) {
		t.Errorf("std id range: %v", err)
	}
}

func TestSetParams(t *testing.T) {
	dl, data, err := ParseSetParams("nodeId=0x123;isExtendedId=true;dataInHex=01 02 03;", true)
	if err != nil {
		t.Fatal(err)
	}
	f, err := dl.Frame(data)
	if err != nil || f.ID != 0x123 || !f.Extended || !bytes.Equal(f.Data, []byte{1, 2, 3}) {
		t.Errorf("frame %v %v", f, err)
	}
	dl, data, err = ParseSetParams("nodeId=5; value=513; dataLength=2; dataByteorder=little", true)
	if err != nil {
		t.Fatal(err)
	}
	if f, err = dl.Frame(data); err != nil || !bytes.Equal(f.Data, []byte{1, 2}) {
		t.Errorf("value frame % x %v", f.Data, err)
	}
	bad := map[string]string{
		"dataInHex=01":             `set params: nodeId: is required`,
		"nodeId=1":                 `set params: want dataInHex, dataExpression or value`,
		"nodeId=1;dataInHex=0g":    `set params: dataInHex: "0g" is not hex data: the byte at position 0 has one digit (two hex digits per byte)`,
		"nodeId=1;foo=2;value=1":   `set params: unknown key(s) "foo"`,
		"nodeId=4096;dataInHex=01": `set params: nodeId: 4096 is out of range for a standard id (want 0..2047, or set isExtendedId)`,
		"nodeId":                   `set params: "nodeId" is not key=value`,
	}
	for in, want := range bad {
		if _, _, err := ParseSetParams(in, true); err == nil || err.Error() != want {
			t.Errorf("%q: got %v, want %s", in, err, want)
		}
	}
}

func TestDecodeFDFrame(t *testing.T) {
	cfg := loadOK(t, `{"channel":"c","devices":[{"name":"d","timeseries":[
		{"key":"tail","nodeId":9,"isFd":true,"value":"60:-1:raw"},
		{"key":"v","nodeId":9,"isFd":true,"value":"56:8:little:long:signed","expression":"-value"}]}]}`)
	data := make([]byte, 64)
	data[56] = 5
	data[62] = 0xee
	got, _, err := NewDecoder(cfg).Decode(Frame{ID: 9, FD: true, Data: data}, nil)
	if err != nil {
		t.Fatal(err)
	}
	checkReadings(t, got, map[string]protocols.Value{"tail": protocols.String("0000ee00"), "v": protocols.Int(-(5 + 0xee<<48))})
}
