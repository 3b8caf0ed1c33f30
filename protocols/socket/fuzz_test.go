package socket

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/industryos/gateway/protocols/kit/spec"
)

var fuzzDevice = `{"socket":{"port":0},"devices":[{"address":"*:*","deviceName":"d","encoding":"%s",
  "telemetry":[{"key":"a","byteFrom":0,"byteTo":-1},{"key":"b","byteFrom":-3},{"key":"c","byteFrom":2,"byteTo":4}],
  "attributes":[{"key":"d","byteTo":-2}],
  "attributeRequests":[{"type":"client","requestExpression":"${[0:3]==atr}","attributeNameExpression":"[3:6][6:]"}]}]}`

// FuzzConvert: any message under any supported encoding converts without
// a panic; every value is valid UTF-8 text and keys are never duplicated.
func FuzzConvert(f *testing.F) {
	var devs []*DeviceConfig
	for _, enc := range Encodings {
		cfg, _, err := Load("fuzz.json", []byte(strings.Replace(fuzzDevice, "%s", enc, 1)))
		if err != nil {
			f.Fatal(err)
		}
		devs = append(devs, cfg.Devices[0])
	}
	for _, s := range []string{"", "23.5", "atrabcdef", "\x00\xff\xfe", "\xff\xfeh\x00", "héllo wörld"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, msg []byte) {
		for _, d := range devs {
			r, errs := d.Convert(msg, nil)
			if len(r.Telemetry)+len(r.Attributes)+len(errs) != 4 {
				t.Fatalf("%s: %d values and %d errors for 4 keys", d.Encoding.Name, len(r.Telemetry)+len(r.Attributes), len(errs))
			}
			for _, dp := range append(r.Telemetry, r.Attributes...) {
				if strings.ContainsRune(dp.Value.S, 0) || !utfValid(dp.Value.S) {
					t.Fatalf("%s: value %q", d.Encoding.Name, dp.Value.S)
				}
			}
			for _, e := range errs {
				if !errors.Is(e.Err, ErrDecode) {
					t.Fatalf("%s: %v", d.Encoding.Name, e)
				}
			}
			ar := d.Requests[0]
			if ar.Matches(msg) {
				_, _ = ar.Keys(msg)
			}
		}
	})
}

func utfValid(s string) bool { return strings.ToValidUTF8(s, "\ufffd") == s }

// FuzzFramer: line framing yields the same messages however the stream is
// cut into reads, never a message longer than bufferSize or holding "\n".
func FuzzFramer(f *testing.F) {
	f.Add([]byte("a\nbb\r\n\ncc"), uint8(3), uint8(4))
	f.Add([]byte(strings.Repeat("x", 40)+"\ny"), uint8(1), uint8(8))
	f.Fuzz(func(t *testing.T, stream []byte, cut, size uint8) {
		bufSize := int(size%32) + 1
		collect := func(r io.Reader) []string {
			var out []string
			fr := NewFramer(FramingLine, r, bufSize)
			for range len(stream) + 2 {
				m, err := fr.Next()
				if errors.Is(err, ErrTooLong) {
					out = append(out, "<too long>")
					continue
				}
				if err != nil {
					return out
				}
				if len(m) > bufSize || bytes.IndexByte(m, '\n') >= 0 {
					t.Fatalf("message %q (bufferSize %d)", m, bufSize)
				}
				out = append(out, string(m))
			}
			t.Fatal("framer does not end")
			return nil
		}
		whole := collect(bytes.NewReader(stream))
		pieces := collect(&chunkReader{b: stream, n: int(cut%7) + 1})
		if strings.Join(whole, "\x00") != strings.Join(pieces, "\x00") {
			t.Fatalf("whole %q, in pieces %q", whole, pieces)
		}
	})
}

type chunkReader struct {
	b []byte
	n int
}

func (c *chunkReader) Read(p []byte) (int, error) {
	if len(c.b) == 0 {
		return 0, io.EOF
	}
	n := copy(p[:min(len(p), c.n)], c.b)
	c.b = c.b[n:]
	return n, nil
}

// FuzzConfig: any file either loads or is refused with problems naming
// paths; never a panic. Set params and slices are parsed on the way.
func FuzzConfig(f *testing.F) {
	f.Add([]byte(Sample), "address=1.2.3.4;port=5;value=x;")
	f.Add([]byte(strings.Replace(fuzzDevice, "%s", "hex", 1)), "value=;encoding=utf-16")
	f.Add([]byte(`{"type":"UDP","port":"7","devices":[{"addressFilter":"[","deviceName":"x"}]}`), ";;=;")
	f.Fuzz(func(t *testing.T, raw []byte, set string) {
		ps := &spec.Problems{}
		if root := spec.Parse(ps, "f.json", raw); root != nil {
			cfg := Parse(root)
			if ps.Err() == nil {
				for _, d := range cfg.Devices {
					_, _ = d.Matches("127.0.0.1:5000")
					_, _ = d.Convert(raw, nil)
				}
			}
		}
		_, _ = ParseSetParams([]byte(`"` + strings.NewReplacer(`"`, ``, `\`, ``).Replace(set) + `"`))
		_, _ = ParseSlice(set)
	})
}
