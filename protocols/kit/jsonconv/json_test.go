package jsonconv

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/industryos/gateway/protocols"
	"github.com/industryos/gateway/protocols/kit/spec"
)

var now = time.UnixMilli(1_700_000_000_000)

// mappingFrom parses one mapping entry the way the connector file would.
func mappingFrom(t testing.TB, js string) *Mapping {
	t.Helper()
	var ps spec.Problems
	o := spec.Parse(&ps, "mqtt.json", []byte(js))
	if o == nil {
		t.Fatal(ps.Err())
	}
	m := ParseMapping(o)
	if err := ps.Err(); err != nil {
		t.Fatal(err)
	}
	return m
}

func converterFrom(t testing.TB, js string) Converter {
	t.Helper()
	c, err := NewConverter(mappingFrom(t, js))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// render prints results compactly so expectations read as one line.
func render(cs []Converted) string {
	var b strings.Builder
	dps := func(name string, l []protocols.Datapoint) {
		b.WriteString(" " + name + "{")
		for i, d := range l {
			if i > 0 {
				b.WriteString(",")
			}
			fmt.Fprintf(&b, "%s=%s", d.Key, d.Value.AppendJSON(nil))
		}
		b.WriteString("}")
	}
	for i, c := range cs {
		if i > 0 {
			b.WriteString(" | ")
		}
		fmt.Fprintf(&b, "%s/%s@%d", c.Device, c.Profile, c.Ts)
		dps("attr", c.Attributes)
		dps("ts", c.Telemetry)
	}
	return b.String()
}

func TestJSONConvert(t *testing.T) {
	tests := []struct {
		name, mapping, topic, payload, want, err string
	}{
		{
			name: "name and profile from topic regexes",
			mapping: `{"topicFilter":"+/+","converter":{"deviceInfo":{"deviceNameExpressionSource":"topic","deviceNameExpression":"^([^/]*)/",
				"deviceProfileExpressionSource":"topic","deviceProfileExpression":"TestDevice/(.*)"},"timeseries":[{"type":"double","key":"t","value":"${t}"}]}}`,
			topic: "TestDevice/Thermometer", payload: `{"t":1}`,
			want: "TestDevice/Thermometer@1700000000000 attr{} ts{t=1}",
		},
		{
			name: "last capturing group wins",
			mapping: `{"topicFilter":"#","converter":{"deviceInfo":{"deviceNameExpressionSource":"topic","deviceNameExpression":"(plant)/(\\w+)/(\\w+)"},
				"timeseries":[{"key":"t","value":"${t}"}]}}`,
			topic: "plant/line1/press7", payload: `{"t":2}`,
			want: "press7/default@1700000000000 attr{} ts{t=2}",
		},
		{
			name: "whole match without a group",
			mapping: `{"topicFilter":"#","converter":{"deviceInfo":{"deviceNameExpressionSource":"topic","deviceNameExpression":"press\\d+"},
				"timeseries":[{"key":"t","value":"${t}"}]}}`,
			topic: "plant/line1/press7/data", payload: `{"t":2}`,
			want: "press7/default@1700000000000 attr{} ts{t=2}",
		},
		{
			name: "topic regex without match",
			mapping: `{"topicFilter":"#","converter":{"deviceInfo":{"deviceNameExpressionSource":"topic","deviceNameExpression":"^dev/(\\w+)"},
				"timeseries":[{"key":"t","value":"${t}"}]}}`,
			topic: "other/x", payload: `{"t":2}`,
			err: `mapping "#": device name: topic "other/x" does not match "^dev/(\\w+)"`,
		},
		{
			name: "name and profile from message, constant profile",
			mapping: `{"topicFilter":"d","converter":{"deviceInfo":{"deviceNameExpression":"${DeviceName}","deviceProfileExpressionSource":"constant","deviceProfileExpression":"Meter"},
				"attributes":[{"type":"string","key":"model","value":"${info.model}"}],"timeseries":[{"type":"int","key":"power","value":"${power}"}]}}`,
			topic: "d", payload: `{"DeviceName":"M-1","info":{"model":"X9"},"power":"21.420000"}`,
			want: "M-1/Meter@1700000000000 attr{model=\"X9\"} ts{power=21}",
		},
		{
			name:    "star copies the whole payload into both",
			mapping: `{"topicFilter":"d","converter":{"deviceInfo":{"deviceNameExpression":"${name}"},"attributes":"*","timeseries":"*"}}`,
			topic:   "d", payload: `{"name":"A","b":true,"n":3,"f":2.5,"o":{"x":1},"z":null}`,
			want: `A/default@1700000000000 attr{b=true,f=2.5,n=3,name="A",o={"x":1},z=null} ts{b=true,f=2.5,n=3,name="A",o={"x":1},z=null}`,
		},
		{
			name:    "nested objects and lists stay JSON, members sorted, numbers as sent",
			mapping: `{"topicFilter":"d","converter":{"deviceInfo":{"deviceNameExpression":"${name}"},"attributes":"*"}}`,
			topic:   "d", payload: `{"name":"A","o":{"z":[1, 2.50, {"q": "<\u00e9>"}], "a": null},"l":[],"e":{}}`,
			want: `A/default@1700000000000 attr{e={},l=[],name="A",o={"a":null,"z":[1,2.50,{"q":"<é>"}]}} ts{}`,
		},
		{
			name: "a referenced object or list: raw and json types send JSON, string sends its text",
			mapping: `{"topicFilter":"d","converter":{"deviceInfo":{"deviceNameExpression":"${name}"},
				"attributes":[{"key":"pos","value":"${pos}"},{"type":"json","key":"tags","value":"${tags}"},{"type":"string","key":"posText","value":"${pos}"}],
				"timeseries":[{"type":"json","key":"first","value":"${tags[0]}"},{"type":"raw","key":"deep","value":"${pos.lat}"}]}}`,
			topic: "d", payload: `{"name":"A","pos":{"lat":1.5,"lon":-2},"tags":[{"t":1},"b"]}`,
			want: `A/default@1700000000000 attr{pos={"lat":1.5,"lon":-2},tags=[{"t":1},"b"],posText="{\"lat\":1.5,\"lon\":-2}"} ts{first={"t":1},deep=1.5}`,
		},
		{
			name: "json type parses text that holds JSON, keeps other values",
			mapping: `{"topicFilter":"d","converter":{"deviceInfo":{"deviceNameExpression":"${name}"},
				"timeseries":[{"type":"json","key":"a","value":"${a}"},{"type":"json","key":"b","value":"${b}"},{"type":"json","key":"c","value":"${c}"},
					{"type":"json","key":"d","value":"{\"v\":${n}}"},{"type":"json","key":"n","value":"${n}"},{"type":"json","key":"q","value":"${q}"}]}}`,
			topic: "d", payload: `{"name":"A","a":"{\"x\": [1]}","b":"plain","c":"\"quoted\"","n":7,"q":null}`,
			want: `A/default@1700000000000 attr{} ts{a={"x":[1]},b="plain",c="\"quoted\"",d={"v":7},n=7,q=null}`,
		},
		{
			name: "key with a space, key and template expressions",
			mapping: `{"topicFilter":"d","converter":{"deviceInfo":{"deviceNameExpression":"${site}-${id}"},
				"timeseries":[{"type":"double","key":"${kind} temp","value":"${outdoor temp}"},{"type":"string","key":"combo","value":"${id}:${outdoor temp}"}]}}`,
			topic: "d", payload: `{"site":"north","id":7,"kind":"air","outdoor temp":-3.25}`,
			want: `north-7/default@1700000000000 attr{} ts{air temp=-3.25,combo="7:-3.25"}`,
		},
		{
			name: "key from topic",
			mapping: `{"topicFilter":"d/+","converter":{"deviceInfo":{"deviceNameExpressionSource":"constant","deviceNameExpression":"dev"},
				"timeseries":[{"keySource":"topic","key":"d/(\\w+)","value":"${v}"}]}}`,
			topic: "d/pressure", payload: `{"v":4}`,
			want: "dev/default@1700000000000 attr{} ts{pressure=4}",
		},
		{
			name:    "list payload, one result per device, merged",
			mapping: `{"topicFilter":"d","converter":{"deviceInfo":{"deviceNameExpression":"${dev}"},"timeseries":[{"type":"double","key":"t","value":"${t}"}]}}`,
			topic:   "d", payload: `[{"dev":"A","t":1},{"dev":"B","t":2},{"dev":"A","t":3}]`,
			want: "A/default@1700000000000 attr{} ts{t=1,t=3} | B/default@1700000000000 attr{} ts{t=2}",
		},
		{
			name:    "list ts: first element's ts applies to the rest, own ts wins",
			mapping: `{"topicFilter":"d","converter":{"deviceInfo":{"deviceNameExpression":"${dev}"},"timeseries":[{"key":"t","value":"${t}"}]}}`,
			topic:   "d", payload: `[{"dev":"A","t":1,"ts":1600000000000},{"dev":"B","t":2},{"dev":"C","t":3,"ts":1600000001}]`,
			want: "A/default@1600000000000 attr{} ts{t=1} | B/default@1600000000000 attr{} ts{t=2} | C/default@1600000001000 attr{} ts{t=3}",
		},
		{
			name: "tsField RFC 3339",
			mapping: `{"topicFilter":"d","converter":{"deviceInfo":{"deviceNameExpressionSource":"constant","deviceNameExpression":"d"},
				"timeseries":[{"key":"t","value":"${t}","tsField":"${time}"}]}}`,
			topic: "d", payload: `{"t":1,"time":"2024-01-02T03:04:05.678Z"}`,
			want: "d/default@1704164645678 attr{} ts{t=1}",
		},
		{
			name: "converter tsField seconds as string",
			mapping: `{"topicFilter":"d","converter":{"deviceInfo":{"deviceNameExpressionSource":"constant","deviceNameExpression":"d"},"tsField":"when",
				"timeseries":[{"key":"t","value":"${t}"}]}}`,
			topic: "d", payload: `{"t":1,"when":"1700000123.5"}`,
			want: "d/default@1700000123500 attr{} ts{t=1}",
		},
		{
			name:    "timestamp key in ms",
			mapping: `{"topicFilter":"d","converter":{"deviceInfo":{"deviceNameExpressionSource":"constant","deviceNameExpression":"d"},"timeseries":[{"key":"t","value":"${t}"}]}}`,
			topic:   "d", payload: `{"t":1,"timestamp":1690000000123}`,
			want: "d/default@1690000000123 attr{} ts{t=1}",
		},
		{
			name:    "useReceivedTs ignores the message ts",
			mapping: `{"topicFilter":"d","converter":{"deviceInfo":{"deviceNameExpressionSource":"constant","deviceNameExpression":"d"},"useReceivedTs":true,"timeseries":[{"key":"t","value":"${t}"}]}}`,
			topic:   "d", payload: `{"t":1,"ts":1690000000123}`,
			want: "d/default@1700000000000 attr{} ts{t=1}",
		},
		{
			name:    "missing key is skipped and reported",
			mapping: `{"topicFilter":"s/#","converter":{"deviceInfo":{"deviceNameExpression":"${sn}"},"timeseries":[{"type":"double","key":"temp","value":"${temp}"},{"type":"double","key":"hum","value":"${hum}"}]}}`,
			topic:   "s/1", payload: `{"sn":"S1","hum":40}`,
			want: "S1/default@1700000000000 attr{} ts{hum=40}",
			err:  `mapping "s/#": key "temp": ${temp}: missing key`,
		},
		{
			name:    "wrong type is skipped and reported",
			mapping: `{"topicFilter":"s","converter":{"deviceInfo":{"deviceNameExpression":"${sn}"},"timeseries":[{"type":"int","key":"temp","value":"${temp}"},{"type":"bool","key":"on","value":"${on}"}]}}`,
			topic:   "s", payload: `{"sn":"S1","temp":"hot","on":"maybe"}`,
			want: "S1/default@1700000000000 attr{} ts{}",
			err:  "mapping \"s\": key \"temp\": \"hot\" is not a number\nmapping \"s\": key \"on\": \"maybe\" is not a boolean",
		},
		{
			name:    "missing device name",
			mapping: `{"topicFilter":"s","converter":{"deviceInfo":{"deviceNameExpression":"${sn}"},"timeseries":[{"key":"t","value":"${t}"}]}}`,
			topic:   "s", payload: `{"t":1}`,
			err: `mapping "s": device name: ${sn}: missing key`,
		},
		{
			name:    "bad JSON",
			mapping: `{"topicFilter":"s","converter":{"deviceInfo":{"deviceNameExpression":"${sn}"}}}`,
			topic:   "s", payload: `{"sn":`,
			err: `mapping "s": invalid JSON: unexpected EOF`,
		},
		{
			name:    "trailing garbage",
			mapping: `{"topicFilter":"s","converter":{"deviceInfo":{"deviceNameExpression":"${sn}"}}}`,
			topic:   "s", payload: `{"sn":"a"} x`,
			err: `mapping "s": invalid JSON: unexpected data after the JSON value`,
		},
		{
			name:    "scalar payload",
			mapping: `{"topicFilter":"s","converter":{"deviceInfo":{"deviceNameExpression":"${sn}"}}}`,
			topic:   "s", payload: `42`,
			err: `mapping "s": payload: expected a JSON object or list, got a number`,
		},
		{
			name:    "list with a non-object",
			mapping: `{"topicFilter":"s","converter":{"deviceInfo":{"deviceNameExpression":"${sn}"},"timeseries":"*"}}`,
			topic:   "s", payload: `[{"sn":"a"},5]`,
			want: `a/default@1700000000000 attr{} ts{sn="a"}`,
			err:  `mapping "s": element [1]: expected an object, got a number`,
		},
		{
			name:    "bad ts falls back to receive time",
			mapping: `{"topicFilter":"s","converter":{"deviceInfo":{"deviceNameExpression":"${sn}"}}}`,
			topic:   "s", payload: `{"sn":"a","ts":"yesterday"}`,
			want: "a/default@1700000000000 attr{} ts{}",
			err:  `mapping "s": ts: "yesterday" is not a timestamp`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := converterFrom(t, tt.mapping)
			got, err := c.Convert(tt.topic, []byte(tt.payload), now)
			if gs := render(got); gs != tt.want {
				t.Errorf("got  %s\nwant %s", gs, tt.want)
			}
			ge := ""
			if err != nil {
				ge = err.Error()
				if !errors.Is(err, ErrMalformed) {
					t.Errorf("error %v is not ErrMalformed", err)
				}
			}
			if ge != tt.err {
				t.Errorf("err  %q\nwant %q", ge, tt.err)
			}
		})
	}
}

func TestConvertValue(t *testing.T) {
	tests := []struct {
		typ  string
		in   any
		want string
		err  string
	}{
		{"int", "21.420000", "21", ""},
		{"integer", json.Number("-3.9"), "-3", ""},
		{"long", true, "1", ""},
		{"int", json.Number("1e300"), "", "1e300 is out of the integer range"},
		// Large integers stay exact, and 2^63 (which a float64 reads
		// MaxInt64 as) is out of range rather than wrapping to MinInt64.
		{"int", json.Number("9007199254740993"), "9007199254740993", ""},
		{"long", json.Number("9223372036854775807"), "9223372036854775807", ""},
		{"long", json.Number("-9223372036854775808"), "-9223372036854775808", ""},
		{"int", " 9223372036854775807 ", "9223372036854775807", ""},
		{"int", json.Number("9223372036854775808"), "", "9223372036854775808 is out of the integer range"},
		{"int", json.Number("9.3e18"), "", "9.3e18 is out of the integer range"},
		{"int", 9223372036854775807.0, "", "a number is out of the integer range"},
		{"int", "NaN", "", `"NaN" is not a number`},
		{"int", map[string]any{}, "", "an object is not a number"},
		{"double", "2.5", "2.5", ""},
		{"float", json.Number("7"), "7", ""},
		{"bool", "Yes", "true", ""},
		{"boolean", "off", "false", ""},
		{"bool", json.Number("1"), "true", ""},
		{"bool", json.Number("2"), "", "2 is not a boolean"},
		{"bool", false, "false", ""},
		{"string", json.Number("12.50"), `"12.50"`, ""},
		{"string", true, `"true"`, ""},
		{"string", []any{json.Number("1")}, `"[1]"`, ""},
		{"string", nil, "", "null is not a string"},
		{"raw", json.Number("12345678901234567"), "12345678901234567", ""},
		{"raw", json.Number("1.5"), "1.5", ""},
		{"raw", json.Number("99999999999999999999"), "1e+20", ""},
		{"raw", "s", `"s"`, ""},
		{"raw", nil, "null", ""},
	}
	for _, tt := range tests {
		v, err := convertValue(tt.typ, tt.in)
		ge := ""
		if err != nil {
			ge = err.Error()
		}
		if ge != tt.err {
			t.Errorf("%s(%v): err %q, want %q", tt.typ, tt.in, ge, tt.err)
			continue
		}
		if err == nil {
			if got := string(v.AppendJSON(nil)); got != tt.want {
				t.Errorf("%s(%v) = %s, want %s", tt.typ, tt.in, got, tt.want)
			}
		}
	}
}

func TestParseTs(t *testing.T) {
	for in, want := range map[string]int64{
		`1700000000`:                  1700000000000,
		`1700000000123`:               1700000000123,
		`"1700000000"`:                1700000000000,
		`"2024-01-02T03:04:05Z"`:      1704164645000,
		`"2024-01-02T05:04:05+02:00"`: 1704164645000,
		`"2024-01-02 03:04:05"`:       1704164645000,
		`"2024-01-02T03:04:05"`:       1704164645000,
	} {
		v, err := DecodeJSON([]byte(in))
		if err != nil {
			t.Fatal(err)
		}
		got, err := parseTs(v)
		if err != nil || got != want {
			t.Errorf("%s: got %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{`-1`, `"x"`, `true`, `1e300`} {
		v, _ := DecodeJSON([]byte(in))
		if _, err := parseTs(v); err == nil {
			t.Errorf("%s: no error", in)
		}
	}
}

// Upstream's expressions are Python re patterns: lookaround works, on the
// fast path and the general one, for names, profiles and topic keys.
func TestTopicLookaround(t *testing.T) {
	c := converterFrom(t, `{"topicFilter":"sensor/+/data","converter":{"type":"json","deviceInfo":{
		"deviceNameExpressionSource":"topic","deviceNameExpression":"(?<=sensor/)(.*?)(?=/data)",
		"deviceProfileExpressionSource":"topic","deviceProfileExpression":"(?<=sensor/)([A-Z]+)(?=-)"},
		"timeseries":[{"type":"double","key":"temp","value":"${t}"},
		{"type":"string","keySource":"topic","key":"(?<=/)[^/]+$","value":"${t}"}]}}`)
	jc := c.(*JSONConverter)
	if jc.fast == nil {
		t.Fatal("mapping did not take the fast path")
	}
	for _, path := range []string{"fast", "general"} {
		var out []Converted
		var err error
		if path == "fast" {
			out, err = jc.Convert("sensor/SN-001/data", []byte(`{"t":21.5}`), now)
		} else {
			out, err = jc.convertGeneral(nil, "sensor/SN-001/data", `{"t":21.5}`, now)
		}
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if len(out) != 1 || out[0].Device != "SN-001" || out[0].Profile != "SN" || len(out[0].Telemetry) != 2 {
			t.Fatalf("%s: %s", path, render(out))
		}
		if got := render(out); !strings.Contains(got, "data") {
			t.Errorf("%s: topic key missing: %s", path, got)
		}
	}
	if _, err := c.Convert("sensor/SN-001/other", []byte(`{"t":1}`), now); err == nil ||
		!strings.Contains(err.Error(), `does not match "(?<=sensor/)(.*?)(?=/data)"`) {
		t.Fatalf("unmatched topic: %v", err)
	}
}

const benchPayload = `{"serialNumber":"SN-001","sensorType":"Thermometer","ts":1700000000000,"v0":1.5,"v1":2,"v2":"3.25","v3":true,"v4":-7,"v5":10.125,"v6":0,"v7":"on","v8":42,"v9":3.14159}`

func benchConverter(b testing.TB) Converter {
	var ts []string
	types := []string{"double", "int", "double", "bool", "int", "double", "int", "bool", "long", "float"}
	for i, typ := range types {
		ts = append(ts, fmt.Sprintf(`{"type":%q,"key":"k%d","value":"${v%d}"}`, typ, i, i))
	}
	return converterFrom(b, `{"topicFilter":"sensor/data","converter":{"type":"json","deviceInfo":{"deviceNameExpression":"${serialNumber}",
		"deviceProfileExpressionSource":"message","deviceProfileExpression":"${sensorType}"},"timeseries":[`+strings.Join(ts, ",")+`]}}`)
}

func BenchmarkJSONConvert(b *testing.B) {
	c := benchConverter(b)
	payload := []byte(benchPayload)
	if out, err := c.Convert("sensor/data", payload, now); err != nil || len(out) != 1 || len(out[0].Telemetry) != 10 {
		b.Fatalf("%s %v", render(out), err)
	}
	b.ReportAllocs()
	b.SetBytes(int64(len(payload)))
	start := time.Now()
	for b.Loop() {
		if _, err := c.Convert("sensor/data", payload, now); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msgs/s")
	b.ReportMetric(float64(b.N*10)/time.Since(start).Seconds(), "values/s")
}
