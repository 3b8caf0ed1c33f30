package socket

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"
)

func ip(n int) *int { return &n }

func TestSliceIsPythons(t *testing.T) {
	b := []byte("0123456789")
	for _, tc := range []struct {
		s    Slice
		want string
	}{
		{Slice{}, "0123456789"},
		{Slice{ip(0), ip(2)}, "01"},
		{Slice{ip(2), ip(4)}, "23"},
		{Slice{ip(3), nil}, "3456789"},
		{Slice{nil, ip(-1)}, "012345678"},
		{Slice{ip(-3), nil}, "789"},
		{Slice{ip(8), ip(20)}, "89"},
		{Slice{ip(20), ip(30)}, ""},
		{Slice{ip(5), ip(2)}, ""},
		{Slice{ip(-30), ip(2)}, "01"},
	} {
		if got := string(tc.s.Of(b)); got != tc.want {
			t.Errorf("%s: %q, want %q", tc.s, got, tc.want)
		}
	}
}

func TestParseSlice(t *testing.T) {
	for in, want := range map[string]string{"0:3": "[0:3]", "3:": "[3:]", ":-1": "[:-1]", "5": "[5:6]", "-1": "[-1:]", ":": "[:]"} {
		s, err := ParseSlice(in)
		if err != nil || s.String() != want {
			t.Errorf("%q: %v %v, want %s", in, s, err, want)
		}
	}
	for _, bad := range []string{"a:b", "1:2:3", "", "99999999999"} {
		if _, err := ParseSlice(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestEncodings(t *testing.T) {
	for _, tc := range []struct {
		enc  string
		in   []byte
		want string
		bad  bool
	}{
		{"utf-8", []byte("héllo\x00"), "héllo", false},
		{"UTF_8", []byte("ok"), "ok", false},
		{"utf-8", []byte{0xff, 0xfe}, "", true},
		{"ascii", []byte("abc"), "abc", false},
		{"ascii", []byte{0xe9}, "", true},
		{"latin-1", []byte{0x68, 0xe9}, "hé", false},
		{"utf-16", []byte{0xff, 0xfe, 'h', 0, 'i', 0}, "hi", false},
		{"utf-16", []byte{0xfe, 0xff, 0, 'h', 0, 'i'}, "hi", false},
		{"utf-16", []byte{'h', 0, 'i', 0}, "hi", false},
		{"utf-16-be", []byte{0, 'h', 0, 0, 0, 'i'}, "hi", false},
		{"utf-16-le", []byte{'h', 0, 'i'}, "", true},
		{"hex", []byte{0, 0xab, 0x10}, "00ab10", false},
	} {
		e, err := LookupEncoding(tc.enc)
		if err != nil {
			t.Fatal(err)
		}
		got, err := e.Decode(tc.in)
		if (err != nil) != tc.bad || got != tc.want {
			t.Errorf("%s % x: %q %v, want %q bad=%v", tc.enc, tc.in, got, err, tc.want, tc.bad)
		}
		if err != nil && !errors.Is(err, ErrDecode) {
			t.Errorf("%s: %v is not ErrDecode", tc.enc, err)
		}
	}
	for _, tc := range []struct{ enc, in, want string }{
		{"utf-16", "hi", "\xff\xfeh\x00i\x00"},
		{"utf-16-be", "hi", "\x00h\x00i"},
		{"hex", "01 ab", "\x01\xab"},
		{"latin-1", "hé", "h\xe9"},
	} {
		e, _ := LookupEncoding(tc.enc)
		got, err := e.Encode(tc.in)
		if err != nil || string(got) != tc.want {
			t.Errorf("encode %s %q: % x %v", tc.enc, tc.in, got, err)
		}
	}
	if _, err := LookupEncoding("ebcdic"); err == nil || !strings.Contains(err.Error(), "supported: utf-8") {
		t.Errorf("unknown encoding: %v", err)
	}
}

// Upstream's default device: every key is the text of its bytes.
func TestConvertUpstreamDevice(t *testing.T) {
	cfg, _, err := Load("socket.json", upstreamFile(t, "thingsboard_gateway/config/socket.json"))
	if err != nil {
		t.Fatal(err)
	}
	d := cfg.Devices[0]
	r, errs := d.Convert([]byte("23.5"), nil)
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	got := map[string]string{}
	for _, dp := range r.Telemetry {
		got["ts."+dp.Key] = dp.Value.S
	}
	for _, dp := range r.Attributes {
		got["attr."+dp.Key] = dp.Value.S
	}
	want := map[string]string{"ts.temp": "23.5", "ts.hum": "23", "attr.name": "23.5", "attr.num": ".5"}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %q, want %q (all %v)", k, got[k], v, got)
		}
	}
	// A key whose bytes do not decode is left out and reported; the others stay.
	r, errs = d.Convert([]byte{'2', '3', 0xff}, nil)
	if len(errs) != 3 || len(r.Telemetry) != 1 || r.Telemetry[0].Value.S != "23" {
		t.Errorf("bad bytes: %v %+v", errs, r)
	}
	ar := d.Requests[0]
	if !ar.Matches([]byte("atrsharedName")) || ar.Matches([]byte("at")) || ar.Matches([]byte("xyzabc")) {
		t.Error("request match")
	}
	keys, err := ar.Keys([]byte("atrsharedName\r"))
	if err != nil || len(keys) != 1 || keys[0] != "sharedName" {
		t.Errorf("keys %v %v", keys, err)
	}
}

func frames(t *testing.T, f Framer) (msgs []string, errs []error) {
	t.Helper()
	for range 1000 {
		m, err := f.Next()
		if errors.Is(err, ErrTooLong) {
			errs = append(errs, err)
			continue
		}
		if err != nil {
			if !errors.Is(err, io.EOF) {
				errs = append(errs, err)
			}
			return msgs, errs
		}
		msgs = append(msgs, string(m))
	}
	t.Fatal("framer does not end")
	return
}

// Partial reads (one byte at a time) and coalesced writes give the same messages.
func TestFramers(t *testing.T) {
	stream := "a1\r\nb22\n\n" + strings.Repeat("x", 20) + "\nc3"
	for _, oneByte := range []bool{false, true} {
		var r io.Reader = strings.NewReader(stream)
		if oneByte {
			r = iotest.OneByteReader(r)
		}
		msgs, errs := frames(t, NewFramer(FramingLine, r, 8))
		if strings.Join(msgs, "|") != "a1|b22|c3" || len(errs) != 1 || !errors.Is(errs[0], ErrTooLong) {
			t.Errorf("line oneByte=%v: %q %v", oneByte, msgs, errs)
		}
		r = strings.NewReader("abcdefgh12")
		if oneByte {
			r = iotest.OneByteReader(r)
		}
		msgs, errs = frames(t, NewFramer(FramingFixed, r, 4))
		if strings.Join(msgs, "|") != "abcd|efgh" || len(errs) != 1 || !errors.Is(errs[0], io.ErrUnexpectedEOF) {
			t.Errorf("fixed oneByte=%v: %q %v", oneByte, msgs, errs)
		}
	}
	msgs, _ := frames(t, NewFramer(FramingRead, bytes.NewReader([]byte("abcdefghij")), 4))
	if strings.Join(msgs, "|") != "abcd|efgh|ij" {
		t.Errorf("read: %q", msgs)
	}
}

func TestParseSetParams(t *testing.T) {
	s, err := ParseSetParams([]byte(`"address=127.0.0.1;port=5000;value=a=b c;encoding=utf-16;"`))
	if err != nil || s.Address != "127.0.0.1" || s.Port != 5000 || s.Value != "a=b c" || s.Encoding.Name != "utf-16" {
		t.Errorf("%+v %v", s, err)
	}
	s, err = ParseSetParams([]byte(`"value=42;"`))
	if err != nil || s.Address != "" || s.Value != "42" {
		t.Errorf("%+v %v", s, err)
	}
	for _, bad := range []string{`{"value":1}`, `"port=1;value=2"`, `"address=x;port=0;value=1"`, `"address=x;port=1"`, `"foo=1;value=1"`, `"junk"`} {
		if _, err := ParseSetParams([]byte(bad)); err == nil {
			t.Errorf("%s accepted", bad)
		}
	}
}
