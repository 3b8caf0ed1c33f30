package jsonconv

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// benchScript does what benchConverter's mapping does, the way a site
// would write it: device and profile from the message, ten values typed
// by hand, the device's ts.
const benchScript = `
KEYS = [("k0", "v0", float), ("k1", "v1", int), ("k2", "v2", float), ("k3", "v3", bool), ("k4", "v4", int),
        ("k5", "v5", float), ("k6", "v6", int), ("k7", "v7", bool), ("k8", "v8", int), ("k9", "v9", float)]

def uplink(msg):
    d = msg.json()
    t = {}
    for key, src, conv in KEYS:
        v = d[src]
        if conv == bool and type(v) == "string":
            v = v.lower() in ("true", "on", "1")
        t[key] = conv(v)
    return {"device": d["serialNumber"], "profile": d["sensorType"], "ts": d["ts"], "telemetry": t}
`

// hexScript is the ported upstream MQTT example: a hex payload cut into
// values by extensionConfig.
const hexScript = `
def uplink(msg):
    data = binary.fromhex(msg.text)
    t = {}
    for key, n in msg.config.items():
        t[key] = binary.int(data[:n])
        data = data[n:]
    return {"device": msg.topic.split("/")[-1], "profile": "Thermostat", "telemetry": t}
`

func scriptMapping(t testing.TB, src, extra string) *Mapping {
	t.Helper()
	path := filepath.Join(t.TempDir(), "conv.star")
	if err := os.WriteFile(path, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	return mappingFrom(t, `{"topicFilter":"sensor/+","converter":{"type":"script","script":"`+path+`"`+extra+`}}`)
}

func TestScriptConverter(t *testing.T) {
	c, err := NewConverter(scriptMapping(t, benchScript, ""))
	if err != nil {
		t.Fatal(err)
	}
	out, err := c.Convert("sensor/data", []byte(benchPayload), now)
	want := "SN-001/Thermometer@1700000000000 attr{} ts{k0=1.5,k1=2,k2=3.25,k3=true,k4=-7,k5=10.125,k6=0,k7=true,k8=42,k9=3.14159}"
	if err != nil || render(out) != want {
		t.Fatalf("got  %s %v\nwant %s", render(out), err, want)
	}
	// The JSON converter reads the same message to the same values.
	if j, _ := benchConverter(t).Convert("sensor/data", []byte(benchPayload), now); render(j) != want {
		t.Fatalf("json converter: %s", render(j))
	}
	_, err = c.Convert("sensor/data", []byte(`{"serialNumber":"x"}`), now)
	if err == nil || !strings.HasPrefix(err.Error(), `mapping "sensor/+": script: `) || !strings.Contains(err.Error(), `conv.star:9:14: in uplink: key "v0" not in dict`) {
		t.Fatalf("err = %v", err)
	}
	h, err := NewConverter(scriptMapping(t, hexScript, `,"extensionConfig":{"temperature":2,"humidity":1}`))
	if err != nil {
		t.Fatal(err)
	}
	if out, err := h.Convert("sensor/SN-9", []byte("0x00D728"), now); err != nil || render(out) != "SN-9/Thermostat@1700000000000 attr{} ts{humidity=40,temperature=215}" {
		t.Fatalf("hex: %s %v", render(out), err)
	}
}

// BenchmarkScriptConvert is BenchmarkJSONConvert's message through a
// script that does the same; BenchmarkScriptHex is the ported upstream
// example on a 5-byte hex payload.
func BenchmarkScriptConvert(b *testing.B) {
	benchScriptConv(b, scriptMapping(b, benchScript, ""), "sensor/data", benchPayload, 10)
}

func BenchmarkScriptHex(b *testing.B) {
	benchScriptConv(b, scriptMapping(b, hexScript, `,"extensionConfig":{"temperature":2,"humidity":2,"batteryLevel":1}`), "sensor/SN-1", "0x1A2B3C4D05", 3)
}

func benchScriptConv(b *testing.B, m *Mapping, topic, payload string, values int) {
	c, err := NewConverter(m)
	if err != nil {
		b.Fatal(err)
	}
	p := []byte(payload)
	if out, err := c.Convert(topic, p, now); err != nil || len(out) != 1 || len(out[0].Telemetry) != values {
		b.Fatalf("%s %v", render(out), err)
	}
	b.ReportAllocs()
	b.SetBytes(int64(len(p)))
	start := time.Now()
	for b.Loop() {
		if _, err := c.Convert(topic, p, now); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msgs/s")
	b.ReportMetric(float64(b.N*values)/time.Since(start).Seconds(), "values/s")
}
