package script

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/industryos/gateway/protocols"
)

// The ports of upstream's custom converters in examples/scripts, each run
// on the input its upstream class takes.

const examples = "../../../examples/scripts"

// upstreamCorpus holds upstream's default connector files, when present.
const upstreamCorpus = "../../../../shared/upstream-configs/thingsboard_gateway/config"

func loadExample(t *testing.T, name string, config string) *Script {
	t.Helper()
	s, err := Load(filepath.Join(examples, name), Options{Config: json.RawMessage(config)})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestExampleMQTT(t *testing.T) {
	const cfg = `{"temperature": 2, "humidity": 2, "batteryLevel": 1}`
	for _, tc := range []struct{ name, config, topic, payload, want string }{
		// Each key consumes its bytes and reports the last one, as upstream.
		{"extensionConfig", cfg, "custom/sensors/SN-1", "0x1A2B3C4D05", "SN-1/Thermostat@1700000000000 attr{} ts{batteryLevel=5,humidity=77,temperature=43}"},
		{"spaces and Bytes suffix", `{"temperatureBytes": 1, "humidityBytes": 1}`, "custom/sensors/SN-2", "15 28", "SN-2/Thermostat@1700000000000 attr{} ts{humidity=40,temperature=21}"},
		{"bytes run out", cfg, "custom/sensors/SN-3", "0x0102", "SN-3/Thermostat@1700000000000 attr{} ts{batteryLevel=2,humidity=2,temperature=2}"},
		{"no extensionConfig", "", "custom/sensors/SN-4", "0x1f", "SN-4/Thermostat@1700000000000 attr{} ts{data=31}"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := loadExample(t, "custom_mqtt_uplink.star", tc.config)
			got, err := s.Uplink(Message{Topic: tc.topic, Payload: []byte(tc.payload), Now: now})
			if err != nil {
				t.Fatal(err)
			}
			if r := render(got); r != tc.want {
				t.Fatalf("got  %s\nwant %s", r, tc.want)
			}
		})
	}
	// Upstream's own mqtt.json names this converter with its extensionConfig.
	raw, err := os.ReadFile(filepath.Join(upstreamCorpus, "mqtt.json"))
	if err != nil {
		t.Skip("upstream config corpus not found")
	}
	var file struct {
		Mapping []struct {
			Converter struct {
				Extension       string          `json:"extension"`
				ExtensionConfig json.RawMessage `json:"extensionConfig"`
			} `json:"converter"`
		} `json:"mapping"`
	}
	if err := json.Unmarshal(raw, &file); err != nil {
		t.Fatal(err)
	}
	found := false
	for _, m := range file.Mapping {
		if m.Converter.Extension != "CustomMqttUplinkConverter" {
			continue
		}
		found = true
		s := loadExample(t, "custom_mqtt_uplink.star", string(m.Converter.ExtensionConfig))
		got, err := s.Uplink(Message{Topic: "custom/sensors/SN-5", Payload: []byte("0x1A2B3C4D05"), Now: now})
		if err != nil {
			t.Fatal(err)
		}
		if r, want := render(got), "SN-5/Thermostat@1700000000000 attr{} ts{batteryLevel=5,humidity=77,temperature=43}"; r != want {
			t.Fatalf("with upstream's extensionConfig: got %s, want %s", r, want)
		}
	}
	if !found {
		t.Fatal("upstream's mqtt.json has no CustomMqttUplinkConverter mapping")
	}
}

// serialDevice is the device entry of upstream's custom_serial.json.
const serialDevice = `{
  "name": "SerialDevice1", "type": "default", "port": "/dev/ttysUSB0", "baudrate": 9600,
  "converter": "SerialUplinkConverter", "downlink_converter": "SerialDownlinkConverter",
  "telemetry": [{"type": "float", "key": "humidity", "untilDelimiter": "\r"}],
  "attributes": [{"key": "SerialNumber", "type": "string", "fromByte": 4, "toByte": -1}],
  "attributeUpdates": [{"attributeOnPlatform": "attr1", "stringToDevice": "value = ${attr1}\n"}],
  "serverSideRpc": [
    {"method": "setValue", "type": "int", "withResponse": true, "responseType": "string", "responseUntilDelimiter": "\r", "responseTimeoutSec": 5},
    {"method": "getValue", "type": "string", "withResponse": false},
    {"method": "setRatio", "type": "float"}
  ]
}`

func TestExampleSerialUplink(t *testing.T) {
	for _, tc := range []struct{ name, config, payload, want string }{
		{"upstream's device", serialDevice, "40.5\rSN-0042\r", "SerialDevice1/default@1700000000000 attr{SerialNumber=SN-0042} ts{humidity=40.5}"},
		{"types and ranges", `{"deviceName": "meter", "deviceType": "power", "timeseries": [
			{"key": "kw", "type": "int", "fromByte": 0, "toByte": 3},
			{"key": "on", "type": "bool", "fromDelimiter": "on=", "untilDelimiter": ";"},
			{"key": "raw", "type": "hex", "fromByte": 8},
			{"key": "bad", "type": "float", "untilDelimiter": ";"}],
			"attributes": [{"key": "cfg", "type": "json", "fromDelimiter": "{"}]}`,
			// As upstream, a fromDelimiter stays in the part: "on=1" is not "1".
			`123on=1;AB{"a":1}`, `meter/power@1700000000000 attr{cfg={"a":1}} ts{kw=123,on=false,raw=41427b2261223a317d}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := loadExample(t, "custom_serial_uplink.star", tc.config)
			got, err := s.Uplink(Message{Payload: []byte(tc.payload), Now: now})
			if err != nil {
				t.Fatal(err)
			}
			if r := render(got); r != tc.want {
				t.Fatalf("got  %s\nwant %s", r, tc.want)
			}
		})
	}
}

func TestExampleSerialDownlink(t *testing.T) {
	s := loadExample(t, "custom_serial_downlink.star", serialDevice)
	for _, tc := range []struct {
		name string
		cmd  Command
		want []string
	}{
		{"int", RPCCommand(protocols.RPCRequest{Device: "SerialDevice1", Method: "setValue", Params: json.RawMessage(`258`)}), []string{"\x01\x02"}},
		{"string", RPCCommand(protocols.RPCRequest{Device: "SerialDevice1", Method: "getValue", Params: json.RawMessage(`"status"`)}), []string{"status"}},
		{"float single", RPCCommand(protocols.RPCRequest{Device: "SerialDevice1", Method: "setRatio", Params: json.RawMessage(`1.5`)}), []string{"\x3f\xc0\x00\x00"}},
		{"float double", RPCCommand(protocols.RPCRequest{Device: "SerialDevice1", Method: "setRatio", Params: json.RawMessage(`0.1`)}), []string{"\x3f\xb9\x99\x99\x99\x99\x99\x9a"}},
		{"attribute", AttributesCommand(protocols.AttributeUpdate{Device: "SerialDevice1", Values: map[string]json.RawMessage{"attr1": json.RawMessage(`7`), "other": json.RawMessage(`1`)}}), []string{"value = 7\n"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := s.Downlink(tc.cmd)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, o := range out {
				got = append(got, string(o.Payload))
			}
			if len(got) != len(tc.want) || (len(got) > 0 && got[0] != tc.want[0]) {
				t.Fatalf("got %q, want %q", got, tc.want)
			}
		})
	}
	_, err := s.Downlink(RPCCommand(protocols.RPCRequest{Device: "SerialDevice1", Method: "reboot"}))
	if err == nil || err.Error() != `../../../examples/scripts/custom_serial_downlink.star:40:13: in downlink: fail: no serverSideRpc entry for method "reboot"` {
		t.Fatalf("err = %v", err)
	}
}

func TestExampleFTP(t *testing.T) {
	s := loadExample(t, "custom_ftp_uplink.star", `{"attributes": ["firmware"], "profile": "boiler"}`)
	csv := "ts,device,temperature,humidity,firmware,state\n1700000000000,boiler-1,71.5,30,2.1.0,ok\n\n1700000060000,boiler-1,72,,2.1.0,-\n1700000000000,boiler-2,-3.5,41,1.9,ok\n"
	got, err := s.Uplink(Message{Topic: "/data/boilers.csv", Payload: []byte(csv), Now: now})
	if err != nil {
		t.Fatal(err)
	}
	want := "boiler-1/boiler@1700000000000 attr{firmware=2.1.0} ts{humidity=30,state=ok,temperature=71.5}" +
		" | boiler-1/boiler@1700000060000 attr{firmware=2.1.0} ts{state=-,temperature=72}" +
		" | boiler-2/boiler@1700000000000 attr{firmware=1.9} ts{humidity=41,state=ok,temperature=-3.5}"
	if r := render(got); r != want {
		t.Fatalf("got  %s\nwant %s", r, want)
	}
	// Without a device column the file's name names the device.
	s = loadExample(t, "custom_ftp_uplink.star", `{"delimiter": ";"}`)
	got, err = s.Uplink(Message{Topic: "/data/pump-7.csv", Payload: []byte("ts;rpm\n5;1200\n"), Now: now})
	if err != nil {
		t.Fatal(err)
	}
	if r := render(got); r != "pump-7/default@5 attr{} ts{rpm=1200}" {
		t.Fatalf("got %s", r)
	}
}
