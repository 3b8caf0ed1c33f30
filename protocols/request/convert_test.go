package request

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/industryos/gateway/protocols"
	"github.com/industryos/gateway/protocols/kit/jsonexpr"
)

func mapping(name, typ string, tel ...KeyConfig) *Mapping {
	return &Mapping{URL: "/last", Converter: ConverterConfig{Type: TypeJSON, DeviceName: name, DeviceType: typ, Telemetry: tel}}
}

func key(k, typ, v string) KeyConfig { return KeyConfig{Key: k, Type: typ, Value: v} }

func convert(t *testing.T, m *Mapping, body string) ([]Converted, error) {
	t.Helper()
	c, err := NewJSONConverter(m)
	if err != nil {
		t.Fatal(err)
	}
	return c.Convert([]byte(body), time.UnixMilli(1_700_000_000_000))
}

func values(c Converted) map[string]protocols.Value {
	out := map[string]protocols.Value{}
	for _, dp := range append(c.Telemetry, c.Attributes...) {
		out[dp.Key] = dp.Value
	}
	return out
}

// The cases of upstream's test_request_json_uplink_converter.py.
func TestUpstreamConverterCases(t *testing.T) {
	t.Run("jsonpath name and key", func(t *testing.T) {
		out, err := convert(t, mapping("${$.sensor}", "default", key("${$.name}", "int", "${$.value}")),
			`{"name":"Humidity","sensor":"aranet:358151000412:100886","time":"2020-03-17T16:16:03Z","unit":"%RH","value":"66"}`)
		if err != nil || len(out) != 1 {
			t.Fatalf("%v %v", out, err)
		}
		// Upstream keeps "66" a string despite type int (its get_values
		// skips the conversion); the configured type wins here.
		if out[0].Device != "aranet:358151000412:100886" || out[0].Profile != "default" || values(out[0])["Humidity"] != protocols.Int(66) {
			t.Fatalf("%+v", out[0])
		}
	})
	t.Run("missing placeholder is skipped", func(t *testing.T) {
		out, err := convert(t, mapping("SD8500", "default", key("temperature", "float", "${temperature}"), key("humidity", "float", "${humidity}")), `{"temperature":21.5}`)
		if !errors.Is(err, ErrMalformed) || !errors.Is(err, jsonexpr.ErrMissing) || !strings.Contains(err.Error(), `key "humidity"`) {
			t.Fatalf("err = %v", err)
		}
		if v := values(out[0]); len(v) != 1 || v["temperature"] != protocols.Float(21.5) {
			t.Fatalf("%v", v)
		}
	})
	t.Run("nested jsonpath missing is skipped", func(t *testing.T) {
		out, _ := convert(t, mapping("${$.meta.sensor}", "default", key("temperature", "float", "${$.data.temperature}"), key("humidity", "float", "${$.data.humidity}")),
			`{"meta":{"sensor":"aranet"},"data":{"temperature":21.5}}`)
		if v := values(out[0]); out[0].Device != "aranet" || len(v) != 1 || v["temperature"] != protocols.Float(21.5) {
			t.Fatalf("%+v", out)
		}
	})
	t.Run("list root jsonpath", func(t *testing.T) {
		// A list converts item by item; each item is the root of $.
		out, _ := convert(t, mapping("${sensor}", "default", key("temperature", "float", "${temperature}")), `[{"sensor":"SD8500","temperature":21.5},{"sensor":"SD8501","temperature":3}]`)
		if len(out) != 2 || out[1].Device != "SD8501" || values(out[1])["temperature"] != protocols.Float(3) {
			t.Fatalf("%+v", out)
		}
	})
	t.Run("list index into arrays", func(t *testing.T) {
		out, _ := convert(t, mapping("${$.meta[0].sensor}", "default", key("t", "int", "${$.data[1].v}")), `{"meta":[{"sensor":"SD"}],"data":[{"v":1},{"v":"2.9"}]}`)
		if out[0].Device != "SD" || values(out[0])["t"] != protocols.Int(2) {
			t.Fatalf("%+v", out)
		}
	})
	t.Run("partial template keeps the key with null", func(t *testing.T) {
		out, err := convert(t, mapping("SD8500", "default", key("developer_humidity", "string", "${Developer}:${hum}")), `{"Developer":"Tester"}`)
		if err != nil || values(out[0])["developer_humidity"] != protocols.String("Tester:null") {
			t.Fatalf("%+v %v", out, err)
		}
	})
	t.Run("template with everything missing is skipped", func(t *testing.T) {
		out, err := convert(t, mapping("SD8500", "default", key("developer_humidity", "string", "${Developer}:${hum}")), `{}`)
		if !errors.Is(err, jsonexpr.ErrMissing) || len(out[0].Telemetry) != 0 {
			t.Fatalf("%+v %v", out, err)
		}
	})
}

func TestConvertTypesAndTimestamps(t *testing.T) {
	m := mapping("${id}-${type}", "${type}",
		key("i", "int", "${n}"), key("f", "double", "${n}"), key("b", "bool", "${flag}"), key("s", "string", "${n}"),
		key("raw", "raw", "${obj}"), key("js", "json", "${text}"))
	m.Converter.Telemetry = append(m.Converter.Telemetry, KeyConfig{Key: "late", Type: "int", Value: "${n}", TsField: "${when}"})
	m.Converter.Attributes = []KeyConfig{key("model", "string", "${model}")}
	out, err := convert(t, m, `{"id":7,"type":"GridVis","n":"21.42","flag":"on","obj":{"b":1,"a":[true]},"text":"{\"x\":1}","model":"M1","ts":1700000001,"when":"2024-01-02T03:04:05Z"}`)
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != 2 || out[0].Device != "7-GridVis" || out[0].Profile != "GridVis" || out[0].Ts != 1_700_000_001_000 {
		t.Fatalf("%+v", out)
	}
	v := values(out[0])
	want := map[string]string{"i": "21", "f": "21.42", "b": "true", "s": `"21.42"`, "raw": `{"a":[true],"b":1}`, "js": `{"x":1}`, "model": `"M1"`}
	for k, w := range want {
		if got := string(v[k].AppendJSON(nil)); got != w {
			t.Errorf("%s = %s, want %s", k, got, w)
		}
	}
	if out[1].Ts != time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC).UnixMilli() || values(out[1])["late"] != protocols.Int(21) {
		t.Fatalf("%+v", out[1])
	}
}

func TestConvertErrors(t *testing.T) {
	for _, tc := range []struct{ name, body, want string }{
		{"not json", `<html>`, `mapping "/last": response is not JSON`},
		{"trailing data", `{} {}`, `response is not JSON: data after the JSON value`},
		{"no device", `{"t":1}`, `mapping "/last": device name: ${d}: missing key`},
		{"bad number", `{"d":"x","t":"abc"}`, `key "t": "abc" is not a number`},
		{"null", `{"d":"x","t":null}`, `key "t": null is not a float`},
		{"item of a list", `[{"d":"x","t":1},{"t":2}]`, `item [1]: mapping "/last": device name`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := convert(t, mapping("${d}", "", key("t", "float", "${t}")), tc.body)
			if err == nil || !strings.Contains(err.Error(), tc.want) || !errors.Is(err, ErrMalformed) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
		})
	}
}
