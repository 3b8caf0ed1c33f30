package jsonconv

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"reflect"
	"testing"
)

func FuzzJSONConvert(f *testing.F) {
	for _, s := range []string{benchPayload, `[{"serialNumber":"a","v0":1},{"serialNumber":"b","ts":"2024-01-02T03:04:05Z"}]`, `{"serialNumber":null}`, `[]`, `"x"`, `{"v1":"1e400","v2":{"a":[1]}}`, `{"serialNumber":"s","o":{"b":[1,{"c":"\u00e9"}],"a":null},"l":[[],{}]}`} {
		f.Add("sensor/data", []byte(s))
	}
	cs := []Converter{
		benchConverter(f),
		converterFrom(f, `{"topicFilter":"#","converter":{"deviceInfo":{"deviceNameExpressionSource":"topic","deviceNameExpression":"([^/]+)$"},"attributes":"*","timeseries":"*","tsField":"${a.b[0]}"}}`),
	}
	f.Fuzz(func(t *testing.T, topic string, payload []byte) {
		for _, c := range cs {
			out, _ := c.Convert(topic, payload, now)
			for _, o := range out {
				if o.Device == "" {
					t.Fatalf("empty device name for %q", payload)
				}
				// Every value, nested JSON included, must reach the
				// platform as valid JSON.
				for _, dp := range append(o.Attributes[:len(o.Attributes):len(o.Attributes)], o.Telemetry...) {
					if j := dp.Value.AppendJSON(nil); !json.Valid(j) {
						t.Fatalf("key %q: invalid JSON %s for %q", dp.Key, j, payload)
					}
				}
			}
		}
	})
}

func FuzzBytesConvert(f *testing.F) {
	f.Add("raw/x", []byte("DEV1v2x42"))
	f.Add("raw/", []byte{})
	f.Add("raw/\xff", []byte{0xff, 0, 1})
	cs := []Converter{
		converterFrom(f, `{"topicFilter":"raw/+","converter":{"type":"bytes","deviceInfo":{"deviceNameExpression":"[0:4]","deviceProfileExpressionSource":"topic","deviceProfileExpression":"raw/(.*)"},
			"attributes":[{"key":"a","value":"[-3:]"},{"type":"bool","key":"b","value":"[3]"}],"timeseries":[{"type":"int","key":"n","value":"[4:]"},{"type":"double","key":"d","value":"[:-1]"},{"type":"json","key":"j","value":"[4:]"}]}}`),
		converterFrom(f, `{"topicFilter":"raw/+","converter":{"type":"bytes","hexMode":true,"deviceInfo":{"deviceNameExpression":"[:]"},"timeseries":"*"}}`),
	}
	f.Fuzz(func(t *testing.T, topic string, payload []byte) {
		for _, c := range cs {
			c.Convert(topic, payload, now)
		}
	})
}

func FuzzExpr(f *testing.F) {
	f.Add("${a.b[0].c}", []byte(`{"a":{"b":[{"c":1}]}}`))
	f.Add("${$[1]}-x-${k y}", []byte(`[1,2]`))
	f.Add("${$['q']}", []byte(`{"q":null}`))
	f.Add("plain", []byte(`{}`))
	f.Fuzz(func(t *testing.T, expr string, msg []byte) {
		e, err := Compile(expr)
		if err != nil {
			return
		}
		if e.String() != expr {
			t.Fatalf("String() = %q, want %q", e.String(), expr)
		}
		v, err := DecodeJSON(msg)
		if err != nil {
			return
		}
		e.Eval(v)
		e.EvalString(v)
		if s, err := parseSlice(expr); err == nil {
			s.apply(msg)
		}
	})
}

// FuzzDecodeJSON checks the hand-written decoder against encoding/json.
func FuzzDecodeJSON(f *testing.F) {
	for _, s := range []string{benchPayload, `[1,-0.5e+3,"a\u00e9\ud83d\ude00\"",{"":null}]`, `"\ud800x"`, `"\udc00\ud800"`, "\"\xff\"", `{"a":1,"a":2}`, ` 0 `, `01`, `[1,]`, `tru`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		got, err := DecodeJSON(b)
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.UseNumber()
		var want any
		werr := dec.Decode(&want)
		if werr == nil && dec.More() {
			werr = errors.New("trailing data")
		}
		if werr == nil {
			if _, terr := dec.Token(); terr != io.EOF {
				werr = errors.New("trailing data")
			}
		}
		if (err == nil) != (werr == nil) {
			t.Fatalf("%q: err %v, encoding/json err %v", b, err, werr)
		}
		if err == nil && !reflect.DeepEqual(got, want) {
			t.Fatalf("%q: got %#v, want %#v", b, got, want)
		}
	})
}
