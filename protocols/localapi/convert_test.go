package localapi

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

func show(samples []Sample) string {
	var b strings.Builder
	for _, s := range samples {
		if s.Ts.IsZero() {
			b.WriteString("now:")
		} else {
			fmt.Fprintf(&b, "%d:", s.Ts.UnixMilli())
		}
		for _, dp := range s.Values {
			fmt.Fprintf(&b, " %s=%s(%d)", dp.Key, dp.Value.AppendJSON(nil), dp.Value.Kind)
		}
		b.WriteString("\n")
	}
	return b.String()
}

func TestParseTelemetry(t *testing.T) {
	for _, tc := range []struct{ in, want, err string }{
		{in: `{"temperature":42,"humidity":7.5,"on":true,"s":"x"}`, want: "now: humidity=7.5(4) on=true(1) s=\"x\"(5) temperature=42(2)\n"},
		{in: `{"ts":1700000000000,"values":{"a":1}}`, want: "1700000000000: a=1(2)\n"},
		{in: `[{"ts":1700000000000,"values":{"a":1}},{"b":{"x":[1,2]}},{"ts":1700000000001,"values":{"a":2}}]`,
			want: "1700000000000: a=1(2)\nnow: b={\"x\":[1,2]}(6)\n1700000000001: a=2(2)\n"},
		// A "ts" key next to ordinary values is a value, as the platform takes it.
		{in: `{"ts":5,"v":1}`, want: "now: ts=5(2) v=1(2)\n"},
		{in: `{"big":18446744073709551615,"e":1e3}`, want: "now: big=18446744073709551615(3) e=1000(4)\n"},
		{in: `{"ts":"x","values":{"a":1}}`, err: "telemetry[0]: ts: expected milliseconds, got a string"},
		{in: `{"ts":-1,"values":{"a":1}}`, err: "telemetry[0]: ts: -1 is not a time after 1970"},
		{in: `[1]`, err: "telemetry[0]: expected a JSON object, got a number"},
		{in: `"x"`, err: "telemetry: expected a JSON object or a list of objects, got a string"},
		{in: `{}`, err: "telemetry: no values"},
		{in: `{"a":1} {"b":2}`, err: "invalid JSON: data after the document"},
		{in: `{"a":`, err: "invalid JSON: unexpected EOF"},
	} {
		got, err := ParseTelemetry([]byte(tc.in))
		if tc.err != "" {
			if err == nil || err.Error() != tc.err {
				t.Errorf("%s: err %v, want %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", tc.in, err)
			continue
		}
		if s := show(got); s != tc.want {
			t.Errorf("%s:\n got %q\nwant %q", tc.in, s, tc.want)
		}
	}
}

func TestParseAttributes(t *testing.T) {
	dps, err := ParseAttributes([]byte(`{"fw":"1.2","n":3}`))
	if err != nil || len(dps) != 2 || dps[0].Key != "fw" || dps[1].Value.I != 3 {
		t.Fatalf("got %v, %v", dps, err)
	}
	if _, err := ParseAttributes([]byte(`[{"a":1}]`)); !errors.Is(err, ErrNotObject) {
		t.Errorf("list: %v", err)
	}
}

func TestClientRPC(t *testing.T) {
	now := time.UnixMilli(1700000000123)
	if got := string(clientRPC([]byte(`{"method":"getCurrentTime","params":{}}`), now)); got != "1700000000123" {
		t.Errorf("getCurrentTime: %s", got)
	}
	if got := string(clientRPC([]byte(`{"method":"getWeather"}`), now)); !strings.Contains(got, `"error"`) {
		t.Errorf("other: %s", got)
	}
}

// FuzzParseTelemetry: any payload is parsed or refused, never a panic, and
// every sample it returns has values.
func FuzzParseTelemetry(f *testing.F) {
	for _, s := range []string{`{"a":1}`, `[{"ts":1,"values":{"a":null}}]`, `{"ts":1e300,"values":{}}`, `[]`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		samples, err := ParseTelemetry(b)
		if err != nil {
			return
		}
		for _, s := range samples {
			if len(s.Values) == 0 {
				t.Fatalf("empty sample from %q", b)
			}
		}
	})
}
