package opcua

import (
	"errors"
	"testing"
)

func TestParseNodeID(t *testing.T) {
	g := [16]byte{0x72, 0x96, 0x2B, 0x91, 0xFA, 0x75, 0x4A, 0xE6, 0x8D, 0x28, 0xB4, 0x04, 0xDC, 0x7D, 0xAF, 0x63}
	tests := []struct {
		in   string
		want NodeID
		str  string
	}{
		{"ns=3;i=8", NodeID{Namespace: 3, Kind: Numeric, Numeric: 8}, "ns=3;i=8"},
		{"i=85", NodeID{Kind: Numeric, Numeric: 85}, "i=85"},
		{"ns=0;i=85", NodeID{Kind: Numeric, Numeric: 85}, "i=85"},
		{" ns=2; i=13 ", NodeID{Namespace: 2, Kind: Numeric, Numeric: 13}, "ns=2;i=13"},
		{"ns=4;s=TempSensor_S", NodeID{Namespace: 4, Kind: StringID, Str: "TempSensor_S"}, "ns=4;s=TempSensor_S"},
		{"ns=2;s=a;b=c d", NodeID{Namespace: 2, Kind: StringID, Str: "a;b=c d"}, "ns=2;s=a;b=c d"},
		{"ns=1;g=72962b91-fa75-4ae6-8d28-b404dc7daf63", NodeID{Namespace: 1, Kind: GUID, GUID: g}, "ns=1;g=72962B91-FA75-4AE6-8D28-B404DC7DAF63"},
		{"ns=65535;b=AQID", NodeID{Namespace: 65535, Kind: Opaque, Opaque: []byte{1, 2, 3}}, "ns=65535;b=AQID"},
		{"i=4294967295", NodeID{Kind: Numeric, Numeric: 4294967295}, "i=4294967295"},
	}
	for _, tc := range tests {
		got, err := ParseNodeID(tc.in)
		if err != nil {
			t.Errorf("ParseNodeID(%q): %v", tc.in, err)
			continue
		}
		if !got.Equal(tc.want) {
			t.Errorf("ParseNodeID(%q) = %#v, want %#v", tc.in, got, tc.want)
		}
		if s := got.String(); s != tc.str {
			t.Errorf("ParseNodeID(%q).String() = %q, want %q", tc.in, s, tc.str)
		}
	}
}

func TestParseNodeIDErrors(t *testing.T) {
	tests := []struct{ in, want string }{
		{"ns=x;i=8", `invalid node id "ns=x;i=8": namespace "x" is not a number`},
		{"ns=70000;i=8", `invalid node id "ns=70000;i=8": namespace 70000 is out of range (want 0..65535)`},
		{"ns=2", `invalid node id "ns=2": missing ";" after the namespace`},
		{"", `invalid node id "": empty`},
		{"ns=2;", `invalid node id "ns=2;": missing identifier (want i=, s=, g= or b=)`},
		{"ns=2;x=1", `invalid node id "ns=2;x=1": unknown identifier type "x" (want i, s, g or b)`},
		{"i=-1", `invalid node id "i=-1": numeric identifier "-1" is not a number in 0..4294967295`},
		{"i=4294967296", `invalid node id "i=4294967296": numeric identifier "4294967296" is not a number in 0..4294967295`},
		{"ns=1;s=", `invalid node id "ns=1;s=": empty string identifier`},
		{"g=1234", `invalid node id "g=1234": guid identifier "1234" is not of the form XXXXXXXX-XXXX-XXXX-XXXX-XXXXXXXXXXXX`},
		{"b=!!", `invalid node id "b=!!": opaque identifier "!!" is not base64`},
		{"b=", `invalid node id "b=": empty opaque identifier`},
		{"nsu=urn:x;i=1", `invalid node id "nsu=urn:x;i=1": namespace URIs (nsu=) are not supported, use ns=<index>`},
	}
	for _, tc := range tests {
		_, err := ParseNodeID(tc.in)
		if err == nil || err.Error() != tc.want {
			t.Errorf("ParseNodeID(%q) error = %v, want %s", tc.in, err, tc.want)
			continue
		}
		if !errors.Is(err, ErrInvalidNodeID) {
			t.Errorf("ParseNodeID(%q): error does not wrap ErrInvalidNodeID", tc.in)
		}
	}
}

func FuzzParseNodeID(f *testing.F) {
	for _, s := range []string{"ns=3;i=8", "i=85", "ns=2;s=x y", "ns=1;g=72962B91-FA75-4AE6-8D28-B404DC7DAF63", "b=AQID", "ns=x;i=1", " s=\tq", "ns=1; s= a"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		id, err := ParseNodeID(s)
		if err != nil {
			return
		}
		again, err := ParseNodeID(id.String())
		if err != nil {
			t.Fatalf("ParseNodeID(%q) = %q, which does not parse: %v", s, id.String(), err)
		}
		if !again.Equal(id) {
			t.Fatalf("round trip of %q: %#v != %#v", s, again, id)
		}
	})
}
