package mqtt

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
)

func TestParseSample(t *testing.T) {
	c, warns, err := ParseFile("mqtt.json", Sample)
	if err != nil {
		t.Fatal(err)
	}
	if len(warns) != 0 {
		t.Fatalf("warnings: %v", warns)
	}
	if c.Broker.Host != "127.0.0.1" || c.Broker.Port != 1883 || c.Broker.Version != 5 || c.Broker.Security.Type != SecurityAnonymous {
		t.Fatalf("broker = %+v", c.Broker)
	}
	if len(c.Mapping) != 4 {
		t.Fatalf("mappings = %d", len(c.Mapping))
	}
	if !c.Mapping[1].Converter.AllAttributes || c.Mapping[1].Converter.DeviceInfo.NameSource != SourceTopic {
		t.Fatalf("mapping[1] = %+v", c.Mapping[1].Converter)
	}
	if c.Mapping[3].Converter.Extension != "CustomMqttUplinkConverter" || string(c.Mapping[3].Converter.ExtensionConfig) != `{"temperature": 2, "humidity": 2}` {
		t.Fatalf("mapping[3] = %+v", c.Mapping[3].Converter)
	}
	if !strings.Contains(string(c.RequestsMapping), "serverSideRpc") {
		t.Fatalf("requestsMapping = %s", c.RequestsMapping)
	}
	for _, m := range c.Mapping[:3] {
		if _, err := NewConverter(m); err != nil {
			t.Errorf("%s: %v", m.TopicFilter, err)
		}
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name, cfg string
		errs      []string
		warns     []string
	}{
		{
			name: "bad converter type",
			cfg: `{"broker":{"host":"h"},"mapping":[
				{"topicFilter":"a","converter":{"type":"json","deviceInfo":{"deviceNameExpression":"x"}}},
				{"topicFilter":"b","converter":{"type":"json","deviceInfo":{"deviceNameExpression":"x"}}},
				{"topicFilter":"c","converter":{"type":"xml","deviceInfo":{"deviceNameExpression":"x"}}}]}`,
			errs: []string{`mqtt.json: mapping[2].converter.type: unknown value "xml" (want one of: json, bytes, custom, script)`},
		},
		{
			name: "broker problems collected",
			cfg:  `{"broker":{"port":70000,"version":6,"security":{"type":"basic"}},"mapping":[]}`,
			errs: []string{
				`mqtt.json: broker.host: is required`,
				`mqtt.json: broker.port: 70000 is out of range (want 1..65535)`,
				`mqtt.json: broker.version: 6 is not an MQTT version (want 3, 4 or 5)`,
				`mqtt.json: broker.security.username: is required`,
			},
		},
		{
			name: "missing broker",
			cfg:  `{"mapping":[]}`,
			errs: []string{`mqtt.json: broker: is required`},
		},
		{
			name: "mapping problems",
			cfg: `{"broker":{"host":"h"},"mapping":[{"topicFilter":"a/#/b","subscriptionQos":3,"converter":{
				"deviceInfo":{"deviceNameExpressionSource":"topic","deviceNameExpression":"(x"},
				"attributes":"all","timeseries":[{"type":"int","key":"t","value":"${a"}]}}]}`,
			errs: []string{
				`mqtt.json: mapping[0].topicFilter: "a/#/b" has '#' before the last level`,
				`mqtt.json: mapping[0].subscriptionQos: 3 is out of range (want 0..2)`,
				"mqtt.json: mapping[0].converter.deviceInfo.deviceNameExpression: \"(x\" is not a valid regular expression: error parsing regexp: missing closing ) in `(x`",
				`mqtt.json: mapping[0].converter.attributes: "all" is neither a list nor "*"`,
				`mqtt.json: mapping[0].converter.timeseries[0].value: expression "${a": unclosed ${`,
			},
		},
		{
			name: "bytes slices",
			cfg: `{"broker":{"host":"h"},"mapping":[{"topicFilter":"a","converter":{"type":"bytes",
				"deviceInfo":{"deviceNameExpression":"[0:x]"},"timeseries":[{"key":"t","value":"${t}"}]}}]}`,
			errs: []string{
				`mqtt.json: mapping[0].converter.deviceInfo.deviceNameExpression: "[0:x]" has a bad bound "x"`,
				`mqtt.json: mapping[0].converter.timeseries[0].value: "${t}" is not a slice expression like [0:4]`,
			},
		},
		{
			name: "custom needs extension",
			cfg:  `{"broker":{"host":"h"},"mapping":[{"topicFilter":"a","converter":{"type":"custom"}}]}`,
			errs: []string{`mqtt.json: mapping[0].converter.extension: is required for a custom converter (or "script": a Starlark file)`},
		},
		{
			name:  "unknown keys warn",
			cfg:   `{"broker":{"host":"h","hots":1},"mapping":[{"topicFilter":"a","colour":1,"converter":{"deviceInfo":{"deviceNameExpression":"x"}}}]}`,
			warns: []string{`warning: mqtt.json: broker.hots: unknown key, ignored (did you mean "host"?)`, `warning: mqtt.json: mapping[0].colour: unknown key, ignored`},
		},
		{
			name: "bad json",
			cfg:  "{\n\"broker\": }",
			errs: []string{`mqtt.json: invalid JSON: line 2 column 11: invalid character '}' looking for beginning of value`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, warns, err := ParseFile("mqtt.json", []byte(tt.cfg))
			var got []string
			if err != nil {
				got = strings.Split(err.Error(), "\n")
			}
			if !reflect.DeepEqual(got, tt.errs) {
				t.Errorf("errors:\n got %q\nwant %q", got, tt.errs)
			}
			var gw []string
			for _, w := range warns {
				gw = append(gw, w.String())
			}
			if !reflect.DeepEqual(gw, tt.warns) {
				t.Errorf("warnings:\n got %q\nwant %q", gw, tt.warns)
			}
		})
	}
}

func TestLegacyDataMapping(t *testing.T) {
	c, _, err := ParseFile("mqtt.json", []byte(`{"broker":{"host":"h","version":3,"cleanSession":false},
		"dataMapping":[{"topicFilter":"a","converter":{"deviceInfo":{"deviceNameExpression":"x"}}}]}`))
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Mapping) != 1 || c.Broker.Version != 3 || c.Broker.CleanSession {
		t.Fatalf("%+v", c)
	}
}

func TestConvertOldMapping(t *testing.T) {
	tests := []struct{ name, old, want string }{
		{
			name: "json from message",
			old:  `{"topicFilter":"s/data","converter":{"type":"json","deviceNameJsonExpression":"${serialNumber}","deviceTypeJsonExpression":"${sensorType}","timeout":60000,"attributes":[],"timeseries":[]}}`,
			want: `{"converter":{"attributes":[],"deviceInfo":{"deviceNameExpression":"${serialNumber}","deviceNameExpressionSource":"message","deviceProfileExpression":"${sensorType}","deviceProfileExpressionSource":"message"},"timeout":60000,"timeseries":[],"type":"json"},"topicFilter":"s/data"}`,
		},
		{
			name: "json from topic",
			old:  `{"topicFilter":"s/+/data","converter":{"type":"json","deviceNameTopicExpression":"s/(.*)/data","deviceTypeTopicExpression":"(s)/"}}`,
			want: `{"converter":{"deviceInfo":{"deviceNameExpression":"s/(.*)/data","deviceNameExpressionSource":"topic","deviceProfileExpression":"(s)/","deviceProfileExpressionSource":"topic"},"type":"json"},"topicFilter":"s/+/data"}`,
		},
		{
			name: "no type defaults",
			old:  `{"topicFilter":"a","converter":{"deviceNameTopicExpression":"a"}}`,
			want: `{"converter":{"deviceInfo":{"deviceNameExpression":"a","deviceNameExpressionSource":"topic","deviceProfileExpression":"default","deviceProfileExpressionSource":"constant"}},"topicFilter":"a"}`,
		},
		{
			name: "bytes",
			old:  `{"topicFilter":"raw","converter":{"type":"bytes","deviceNameExpression":"[0:4]","deviceTypeExpression":"[4:6]"}}`,
			want: `{"converter":{"deviceInfo":{"deviceNameExpression":"[0:4]","deviceNameExpressionSource":"message","deviceProfileExpression":"[4:6]","deviceProfileExpressionSource":"message"},"type":"bytes"},"topicFilter":"raw"}`,
		},
		{
			name: "new format untouched",
			old:  `{"topicFilter":"a","converter":{"deviceInfo":{"deviceNameExpression":"x"}}}`,
			want: `{"converter":{"deviceInfo":{"deviceNameExpression":"x"}},"topicFilter":"a"}`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var m map[string]any
			if err := json.Unmarshal([]byte(tt.old), &m); err != nil {
				t.Fatal(err)
			}
			before, _ := json.Marshal(m)
			got, _ := json.Marshal(ConvertOldMapping(m))
			if string(got) != tt.want {
				t.Errorf("got  %s\nwant %s", got, tt.want)
			}
			after, _ := json.Marshal(m)
			if string(before) != string(after) {
				t.Error("input was mutated")
			}
		})
	}
}

func TestParseOldFormatFile(t *testing.T) {
	c, warns, err := ParseFile("mqtt.json", []byte(`{"broker":{"host":"h"},"mapping":[{"topicFilter":"s/data","converter":{"type":"json","deviceNameJsonExpression":"${sn}","timeseries":[{"type":"int","key":"t","value":"${t}"}]}}]}`))
	if err != nil || len(warns) != 0 {
		t.Fatal(err, warns)
	}
	di := c.Mapping[0].Converter.DeviceInfo
	if di != (DeviceInfo{NameSource: SourceMessage, Name: "${sn}", ProfileSource: SourceConstant, Profile: "default"}) {
		t.Fatalf("%+v", di)
	}
}
