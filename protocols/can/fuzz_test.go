package can

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"strings"
	"testing"

	"github.com/industryos/gateway/protocols"
)

func FuzzValueSpec(f *testing.F) {
	for _, s := range []string{"0:1:bool", "4:2:little:int", "0:-1:string:utf-8", "0:8:big:long:signed", "1:4:float", "0:-1:raw", ":::", "99:99:big:double:x", "-1:-1:int", "0:2:middle:int"} {
		f.Add(s, []byte{1, 2, 3, 4, 5, 6, 7, 8})
	}
	f.Fuzz(func(t *testing.T, s string, data []byte) {
		v, err := ParseValueSpec(s)
		if err != nil {
			return
		}
		if v.Start < 0 || v.Length == 0 || v.Length < -1 || v.Type == 0 {
			t.Fatalf("%q parsed to invalid %+v", s, v)
		}
		_, _ = v.Extract(data)
		_, _ = ParseCommandSpec(s)
	})
}

var fuzzCfg = `{"channel":"f","devices":[{"name":"d","strictEval":false,"timeseries":[
	{"key":"a","nodeId":1,"value":"0:1:bool"},
	{"key":"b","nodeId":1,"value":"0:-1:little:long:signed"},
	{"key":"c","nodeId":1,"value":"2:4:float","expression":"value * 2"},
	{"key":"d","nodeId":1,"value":"0:-1:string:utf-8"},
	{"key":"e","nodeId":1,"value":"1:-1:raw","expression":"len(can_data) > 3 ? value : 'short'"},
	{"key":"f","nodeId":1,"command":"0:1:7","value":"0:8:little:double"},
	{"key":"g","nodeId":1,"command":"0:1:8","value":{"start":7,"length":1,"type":"int","signed":true}}]}]}`

func FuzzDecode(f *testing.F) {
	cfg, _, err := Load("fuzz.json", []byte(fuzzCfg))
	if err != nil {
		f.Fatal(err)
	}
	d := NewDecoder(cfg)
	f.Add([]byte{})
	f.Add([]byte{7, 1, 2, 3, 4, 5, 6, 7, 8})
	f.Add([]byte{8, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x80})
	f.Fuzz(func(t *testing.T, data []byte) {
		out, matched, _ := d.Decode(Frame{ID: 1, Data: data}, nil)
		if !matched && len(out) > 0 {
			t.Fatal("readings without a match")
		}
		for _, r := range out {
			_ = r.Value.AppendJSON(nil)
		}
		var spec DownlinkSpec
		_, _ = spec.Encode(map[string]any{"value": protocols.Value{}})
	})
}

// FuzzSlcanLine: whatever an adapter sends, the parser does not panic, a
// parsed frame is valid and survives a round trip through the encoder, and
// the stream reader makes progress on arbitrary bytes.
func FuzzSlcanLine(f *testing.F) {
	for _, s := range []string{"t1021AA", "T18EBFF002AABB", "r1032", "R01ABCDEF0", "t1031010123", "t7FF0",
		"t80010", "t1029", "T2000000010", "d1231", "z", "", "V1013", "t10250000ac412a", "t10210011X2"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		fr, ok, err := ParseSlcanLine(line)
		if err != nil && ok {
			t.Fatalf("%q: ok with error %v", line, err)
		}
		if ok {
			if verr := CheckClassic(fr); verr != nil {
				t.Fatalf("%q parsed to invalid %v: %v", line, fr, verr)
			}
			enc, eerr := AppendSlcan(nil, fr)
			if eerr != nil {
				t.Fatalf("%q: %v does not encode: %v", line, fr, eerr)
			}
			back, ok2, err2 := ParseSlcanLine(enc[:len(enc)-1])
			if !ok2 || err2 != nil || back.String() != fr.String() || back.Remote != fr.Remote {
				t.Fatalf("%q → %v → %q → %v %v", line, fr, enc, back, err2)
			}
		}
		b := NewSlcanBus("fuzz", &rwc{Reader: bytes.NewReader(line)})
		for i := 0; ; i++ {
			if i > len(line)+2 {
				t.Fatalf("%q: Recv does not make progress", line)
			}
			if _, err := b.Recv(context.Background()); err != nil && !errors.Is(err, ErrBadLine) {
				break
			}
		}
	})
}

// FuzzParseHex: dataInHex as Python's bytearray.fromhex reads it: white
// space only between two-digit bytes.
func FuzzParseHex(f *testing.F) {
	for _, s := range []string{"aa bb", "AB CD AB CD", "aaaa bbbb", "123", "cc d ee", " 01\t02\n", "", "0g", "a b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		b, err := parseHex(s)
		if err != nil {
			return
		}
		var digits strings.Builder
		for i := 0; i < len(s); i++ {
			if !isPySpace(s[i]) {
				digits.WriteByte(s[i])
			}
		}
		if got := hex.EncodeToString(b); got != strings.ToLower(digits.String()) {
			t.Fatalf("%q: % x", s, b)
		}
	})
}
