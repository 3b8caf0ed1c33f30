package localapi

import (
	"testing"
	"time"

	"github.com/industryos/gateway/protocols/kit/spec"
)

// TestParseReportAndDefaults: loopback defaults, the section's report
// strategy inherited by devices that set none, a device's own winning.
func TestParseReportAndDefaults(t *testing.T) {
	ps := &spec.Problems{}
	c := Parse(spec.New(ps, "tb_gateway.json", Section, map[string]any{
		"mqtt":           map[string]any{"enabled": true},
		"reportStrategy": map[string]any{"type": "ON_CHANGE"},
		"devices": []any{
			map[string]any{"name": "a", "accessToken": "A"},
			map[string]any{"name": "b", "accessToken": "B", "reportStrategy": map[string]any{"type": "ON_REPORT_PERIOD", "reportPeriod": 5000}},
			map[string]any{"name": "c", "certificateFingerprint": "AA:" + "bb" + "00112233445566778899aabbccddeeff00112233445566778899aabbccdd"},
		},
	}), ".")
	if ps.Err() == nil {
		t.Fatal("an X.509 device without MQTT TLS was accepted")
	}
	if got := ps.Errors()[0].String(); got != `tb_gateway.json: localApi.devices[2].certificateFingerprint: X.509 devices need mqtt.enabled with mqtt.certificate and mqtt.privateKey (TLS)` {
		t.Errorf("error %q", got)
	}
	if c.MQTT.Address != DefaultMQTTAddress || c.HTTP.Enabled || c.MaxBody != DefaultMaxBody {
		t.Errorf("defaults %+v", c)
	}
	if len(c.Devices) != 3 || c.Devices[0].Report.Type != "ON_CHANGE" || c.Devices[1].Report.Type != "ON_REPORT_PERIOD" || c.Devices[1].Report.Period != 5*time.Second {
		t.Errorf("report strategies %+v %+v", c.Devices[0].Report, c.Devices[1].Report)
	}
	if c.Devices[2].Fingerprint != "aabb00112233445566778899aabbccddeeff00112233445566778899aabbccdd" || c.Devices[0].Profile != "default" {
		t.Errorf("device %+v", c.Devices[2])
	}
}
