package jsonconv

import (
	"errors"
	"testing"
)

func TestSlice(t *testing.T) {
	data := []byte("ABCDEFGH")
	tests := []struct{ expr, want, err string }{
		{"[0:4]", "ABCD", ""},
		{"[4:]", "EFGH", ""},
		{"[:]", "ABCDEFGH", ""},
		{"[:2]", "AB", ""},
		{"[-3:]", "FGH", ""},
		{"[2:-2]", "CDEF", ""},
		{"[6:100]", "GH", ""},
		{"[5:2]", "", ""},
		{"[3]", "D", ""},
		{"${[1:3]}", "BC", ""},
		{"[ 1 : 3 ]", "BC", ""},
		{"0:4", "", "is not a slice expression like [0:4]"},
		{"[]", "", "is not a slice expression like [0:4]"},
		{"[a:1]", "", `has a bad bound "a"`},
		{"[1:2:3]", "", `has a bad bound "2:3"`},
	}
	for _, tt := range tests {
		s, err := parseSlice(tt.expr)
		ge := ""
		if err != nil {
			ge = err.Error()
		}
		if ge != tt.err {
			t.Errorf("%q: err %q, want %q", tt.expr, ge, tt.err)
			continue
		}
		if err != nil {
			continue
		}
		got, _ := s.apply(data)
		if string(got) != tt.want {
			t.Errorf("%q = %q, want %q", tt.expr, got, tt.want)
		}
	}
	s, _ := parseSlice("[9]")
	if _, ok := s.apply(data); ok {
		t.Error("[9] on 8 bytes should not be found")
	}
}

func TestBytesConvert(t *testing.T) {
	tests := []struct {
		name, mapping, topic, payload, want, err string
	}{
		{
			name: "utf8 name and values",
			mapping: `{"topicFilter":"raw","converter":{"type":"bytes","deviceInfo":{"deviceNameExpression":"[0:4]","deviceProfileExpressionSource":"constant","deviceProfileExpression":"Counter"},
				"attributes":[{"type":"string","key":"fw","value":"[4:7]"}],"timeseries":[{"type":"raw","key":"rawData","value":"[:]"},{"type":"int","key":"count","value":"[7:]"}]}}`,
			topic: "raw", payload: "DEV1v2x42",
			want: `DEV1/Counter@1700000000000 attr{fw="v2x"} ts{rawData="DEV1v2x42",count=42}`,
		},
		{
			name: "json type parses the slice as JSON, like upstream's json type",
			mapping: `{"topicFilter":"raw","converter":{"type":"bytes","deviceInfo":{"deviceNameExpression":"[0:2]"},
				"timeseries":[{"type":"json","key":"doc","value":"[2:]"},{"type":"json","key":"n","value":"[2:3]"}]}}`,
			topic: "raw", payload: `AB{"x": [1, 2]}`,
			want: `AB/default@1700000000000 attr{} ts{doc={"x":[1,2]},n="{"}`,
		},
		{
			name: "hex mode",
			mapping: `{"topicFilter":"raw","converter":{"type":"bytes","hexMode":true,"deviceInfo":{"deviceNameExpression":"[0:2]"},
				"timeseries":[{"key":"payload","value":"[2:]"}]}}`,
			topic: "raw", payload: "\x01\xff\x00\x10",
			want: `01ff/default@1700000000000 attr{} ts{payload="0010"}`,
		},
		{
			name: "Python lookaround for the name and a key from the topic",
			mapping: `{"topicFilter":"raw/+/+","converter":{"type":"bytes","deviceInfo":{"deviceNameExpressionSource":"topic","deviceNameExpression":"(?<=raw/)[^/]+"},
				"timeseries":[{"type":"int","keySource":"topic","key":"(?<=/)[a-z]+$","value":"[:]"}]}}`,
			topic: "raw/m7/level", payload: "12",
			want: `m7/default@1700000000000 attr{} ts{level=12}`,
		},
		{
			name:    "name from topic, star",
			mapping: `{"topicFilter":"raw/+","converter":{"type":"bytes","deviceInfo":{"deviceNameExpressionSource":"topic","deviceNameExpression":"raw/(.+)"},"timeseries":"*"}}`,
			topic:   "raw/m7", payload: "hello",
			want: `m7/default@1700000000000 attr{} ts{data="hello"}`,
		},
		{
			name:    "invalid utf8 is replaced",
			mapping: `{"topicFilter":"raw","converter":{"type":"bytes","deviceInfo":{"deviceNameExpressionSource":"constant","deviceNameExpression":"d"},"timeseries":[{"key":"v","value":"[:]"}]}}`,
			topic:   "raw", payload: "a\xffb",
			want: `d/default@1700000000000 attr{} ts{v="a` + "\uFFFD" + `b"}`,
		},
		{
			name:    "empty payload gives an empty name",
			mapping: `{"topicFilter":"raw","converter":{"type":"bytes","deviceInfo":{"deviceNameExpression":"[0:4]"}}}`,
			topic:   "raw", payload: "",
			err: `mapping "raw": device name: is empty`,
		},
		{
			name: "index out of range",
			mapping: `{"topicFilter":"raw","converter":{"type":"bytes","deviceInfo":{"deviceNameExpressionSource":"constant","deviceNameExpression":"d"},
				"timeseries":[{"key":"b","value":"[5]"},{"type":"int","key":"n","value":"[0:2]"}]}}`,
			topic: "raw", payload: "abc",
			want: `d/default@1700000000000 attr{} ts{}`,
			err:  "mapping \"raw\": key \"b\": [5] is out of range for 3 bytes\nmapping \"raw\": key \"n\": \"ab\" is not a number",
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
					t.Errorf("%v is not ErrMalformed", err)
				}
			}
			if ge != tt.err {
				t.Errorf("err  %q\nwant %q", ge, tt.err)
			}
		})
	}
}

// Name and profile expressions of the bytes converter are upstream's
// templates: slices of the payload inside literal text.
func TestBytesTemplates(t *testing.T) {
	payload := []byte("ABCD1234")
	c := &BytesConverter{}
	for expr, want := range map[string]string{
		"[0:4]":       "ABCD",
		"default":     "default",
		"dev-[0:2]-x": "dev-AB-x",
		"[4:][0]":     "1234A",
		"a[b]c":       "a[b]c",
		"[-2:]":       "34",
	} {
		s, err := newBytesSource(SourceMessage, expr)
		if err != nil {
			t.Fatalf("%q: %v", expr, err)
		}
		got, err := c.resolve(&s, "t", payload)
		if err != nil || got != want {
			t.Errorf("%q: got %q, %v; want %q", expr, got, err, want)
		}
	}
	if _, err := newBytesSource(SourceMessage, "[0:x]"); err == nil {
		t.Error("a slice with a bad bound must be refused")
	}
	s, _ := newBytesSource(SourceMessage, "id-[20]")
	if _, err := c.resolve(&s, "t", payload); err == nil {
		t.Error("an index past the payload must fail the message")
	}
}
