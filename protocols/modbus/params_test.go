package modbus

import (
	"encoding/json"
	"errors"
	"maps"
	"strings"
	"testing"
)

func TestParseReservedParams(t *testing.T) {
	upstream := map[string]string{"type": "16int", "functionCode": "3", "objectsCount": "1", "address": "2"}
	cases := []struct {
		in   string
		want map[string]string
		err  string
	}{
		{in: "type=16int;functionCode=3;objectsCount=1;address=2;", want: upstream},
		{in: "type=16int;functionCode=3;objectsCount=1;address=2", want: upstream},
		{in: " type = 16int ; functionCode= 3;objectsCount =1 ;  address=2 ;; ", want: upstream},
		{in: "type=string;functionCode=6;objectsCount=2;address=0;value=a=b;", want: map[string]string{
			"type": "string", "functionCode": "6", "objectsCount": "2", "address": "0", "value": "a=b"}},
		{in: "", err: `params are empty (want e.g. "type=16int;functionCode=3;objectsCount=1;address=2;")`},
		{in: " ; ;", err: `params are empty (want e.g. "type=16int;functionCode=3;objectsCount=1;address=2;")`},
		{in: "garbage", err: `"garbage" is not key=value (want e.g. "type=16int;functionCode=3;objectsCount=1;address=2;")`},
		{in: "type=16int;=3", err: `"=3" has no key`},
		{in: "type=16int;address=", err: `address has no value`},
		{in: "address=1;address=2", err: `address is given twice`},
	}
	for _, c := range cases {
		got, err := ParseReservedParams(c.in)
		if c.err != "" {
			if err == nil || err.Error() != c.err || !errors.Is(err, ErrParams) {
				t.Errorf("%q: error %v, want %q", c.in, err, c.err)
			}
			continue
		}
		if err != nil || !maps.Equal(got, c.want) {
			t.Errorf("%q = %v, %v; want %v", c.in, got, err, c.want)
		}
	}
}

func TestParseReserved(t *testing.T) {
	types := "(want one of: string, bytes, bits, 16int, 16uint, 16float, 32int, 32uint, 32float, 64int, 64uint, 64float)"
	cases := []struct {
		method, in string
		want       command
		err        string
	}{
		{method: "get", in: "type=16int;functionCode=3;objectsCount=1;address=2;", want: command{typ: TypeInt16, fc: 3, address: 2}},
		{method: "get", in: "type=32FLOAT;functionCode=4;address=10", want: command{typ: TypeFloat32, fc: 4, address: 10}},
		{method: "get", in: "type=string;functionCode=3;registersCount=4;address=0", want: command{typ: TypeString, fc: 3, count: 4}},
		{method: "get", in: "type=bits;functionCode=1;objectsCount=3;address=5", want: command{typ: TypeBits, fc: 1, count: 3, address: 5}},
		// upstream's set: the value is a string, as its parser leaves it
		{method: "set", in: "type=16int;functionCode=6;objectsCount=1;address=2;value=77;",
			want: command{typ: TypeInt16, fc: 6, address: 2, value: json.RawMessage(`"77"`)}},
		{method: "set", in: "type=16int;functionCode=6;objectsCount=1;address=2; 77",
			want: command{typ: TypeInt16, fc: 6, address: 2, value: json.RawMessage(`"77"`)}},
		{method: "set", in: "type=16int;functionCode=6;objectsCount=1;address=2; -5;",
			want: command{typ: TypeInt16, fc: 6, address: 2, value: json.RawMessage(`"-5"`)}},
		// a two-register value cannot go out with FC 6
		{method: "set", in: "type=32int;functionCode=6;objectsCount=2;address=2;value=1",
			want: command{typ: TypeInt32, fc: 16, address: 2, value: json.RawMessage(`"1"`)}},
		{method: "set", in: "type=bits;functionCode=5;objectsCount=4;address=0;value=[1,0,1,1]",
			want: command{typ: TypeBits, fc: 15, count: 4, value: json.RawMessage(`"[1,0,1,1]"`)}},

		{method: "get", in: "type=16int;functionCode=333;objectsCount=1;address=2;",
			err: "functionCode 333 is not supported (want 1, 2, 3, 4, 5, 6, 15 or 16)"},
		{method: "get", in: "type=16int;functionCode=6;objectsCount=1;address=2;",
			err: "functionCode 6 is not a read (want 1, 2, 3 or 4)"},
		{method: "set", in: "type=16int;functionCode=3;objectsCount=1;address=2;value=1",
			err: "functionCode 3 is not a write (want 5, 6, 15 or 16)"},
		{method: "set", in: "type=16int;functionCode=6;objectsCount=1;address=2;",
			err: "value is required for functionCode 6"},
		{method: "get", in: "type=int;functionCode=3;address=2", err: `type "int" is not supported ` + types},
		{method: "get", in: "functionCode=3;address=2", err: "type is required " + types},
		{method: "get", in: "type=16int;functionCode=three;address=x",
			err: `functionCode: "three" is not an integer; address: "x" is not an integer`},
		{method: "get", in: "type=16int;functionCode=3", err: "address is required"},
		{method: "get", in: "type=16int;functionCode=3;address=70000", err: "address 70000 is out of range (want 0..65535)"},
		{method: "get", in: "type=16int;functionCode=3;objectsCount=2;address=1", err: "objectsCount 2 does not fit 16int (want 1 register)"},
		{method: "get", in: "type=string;functionCode=3;objectsCount=0;address=1", err: "objectsCount 0 is out of range (want 1..2000)"},
		{method: "get", in: "type=string;functionCode=3;objectsCount=200;address=1", err: "objectsCount 200 is more than one request can carry (max 125 registers)"},
		{method: "get", in: "type=16int;functionCode=3;adress=2;value=1",
			err: `unknown key "adress", "value" (want type, functionCode, objectsCount, address)`},
		{method: "set", in: "type=16int;functionCode=6;address=2;value=1; 2", err: `the value is given twice (value=1 and "2")`},
		{method: "get", in: "nonsense", err: `"nonsense" is not key=value (want e.g. "type=16int;functionCode=3;objectsCount=1;address=2;")`},
	}
	for _, c := range cases {
		got, err := parseReserved(c.method, c.in)
		if c.err != "" {
			if err == nil || err.Error() != c.err || !errors.Is(err, ErrParams) {
				t.Errorf("%s %q: error %v, want %q", c.method, c.in, err, c.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s %q: %v", c.method, c.in, err)
			continue
		}
		if got.typ != c.want.typ || got.fc != c.want.fc || got.address != c.want.address || got.count != c.want.count || string(got.value) != string(c.want.value) {
			t.Errorf("%s %q = %+v (value %s), want %+v (value %s)", c.method, c.in, got, got.value, c.want, c.want.value)
		}
	}
}

func TestParseCommandObject(t *testing.T) {
	var p map[string]json.RawMessage
	_ = json.Unmarshal([]byte(`{"type":"32int","functionCode":16,"objectsCount":2,"address":4,"value":305419896,"connectorId":"x"}`), &p)
	c, err := parseCommand(p, opAny)
	if err != nil || c.typ != TypeInt32 || c.fc != 16 || c.address != 4 || string(c.value) != "305419896" {
		t.Fatalf("%+v %v", c, err)
	}
	p = nil
	_ = json.Unmarshal([]byte(`{"type":"16int","functionCode":3,"address":4,"value":1}`), &p)
	if c, err := parseCommand(p, opAny); err != nil || c.value != nil {
		t.Errorf("a read keeps no value: %+v %v", c, err)
	}
	p = nil
	_ = json.Unmarshal([]byte(`{"type":["x"],"functionCode":2.5,"address":-1}`), &p)
	_, err = parseCommand(p, opAny)
	want := `type: ["x"] is not a string; functionCode: 2.5 is not an integer; address -1 is out of range (want 0..65535)`
	if err == nil || err.Error() != want {
		t.Errorf("error %v, want %q", err, want)
	}
}

func FuzzReservedParams(f *testing.F) {
	for _, s := range []string{
		"type=16int;functionCode=3;objectsCount=1;address=2;",
		"type=16int;functionCode=6;objectsCount=1;address=2;value=77;",
		"type=32float;functionCode=16;address=0; 12.5",
		" a = b ;; c=d=e",
		"type=bits;functionCode=15;objectsCount=2000;address=65535;value=[1,0]",
		"=", ";", "",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		kv, err := ParseReservedParams(s)
		if err == nil {
			if len(kv) == 0 {
				t.Fatal("success with no keys")
			}
			for k, v := range kv {
				if k == "" || v == "" || k != strings.TrimSpace(k) || v != strings.TrimSpace(v) {
					t.Fatalf("bad pair %q=%q", k, v)
				}
			}
		} else if !errors.Is(err, ErrParams) {
			t.Fatalf("error without ErrParams: %v", err)
		}
		for _, m := range []string{"get", "set"} {
			c, err := parseReserved(m, s)
			if err != nil {
				continue
			}
			if c.fc == 0 || c.typ == TypeInvalid || c.address < 0 || c.address > 65535 {
				t.Fatalf("%s %q accepted as %+v", m, s, c)
			}
			if (m == "set") != (c.value != nil) {
				t.Fatalf("%s %q: value %q", m, s, c.value)
			}
		}
	})
}
