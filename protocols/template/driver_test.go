package template

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/industryos/gateway/protocols"
	"github.com/industryos/gateway/protocols/kit/spec"
)

func newTestConnector(t *testing.T, raw string) (*Connector, error) {
	t.Helper()
	var ps spec.Problems
	o := spec.Parse(&ps, file, []byte(raw))
	return NewConnector(protocols.ConnectorConfig{Type: "template", Config: o, Logger: zerolog.Nop()})
}

func TestSampleLoads(t *testing.T) {
	c, err := newTestConnector(t, string(Sample))
	if err != nil {
		t.Fatal(err)
	}
	if c.Name() != "Template Connector" || len(c.Devices()) != 1 {
		t.Fatalf("name %q, %d devices", c.Name(), len(c.Devices()))
	}
}

func TestPollAndWrite(t *testing.T) {
	c, err := newTestConnector(t, `{"devices": [{"deviceName": "D", "address": "fake://poll-and-write",
		"timeseries": [{"key": "t", "register": "temp"}, {"key": "sp", "register": "setpoint"}],
		"attributeUpdates": [{"key": "setpoint", "register": "setpoint"}]}]}`)
	if err != nil {
		t.Fatal(err)
	}
	// The fake lives as long as the process; -count reruns start afresh.
	t.Cleanup(func() { forgetFake("poll-and-write") })
	d := c.Devices()[0]
	defer d.Close()
	r, err := d.Poll(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Telemetry) != 1 || r.Telemetry[0].Key != "t" {
		t.Fatalf("telemetry %+v, want t only (setpoint is not set yet)", r.Telemetry)
	}
	cmd := d.(protocols.Commander)
	ignored, err := cmd.UpdateAttributes(context.Background(), map[string]json.RawMessage{"setpoint": json.RawMessage(`40`), "other": json.RawMessage(`1`)})
	if err != nil || len(ignored) != 1 || ignored[0] != "other" {
		t.Fatalf("ignored %v, err %v", ignored, err)
	}
	res, err := cmd.RPC(context.Background(), protocols.RPCRequest{Method: "get", Params: json.RawMessage(`{"register": "setpoint"}`)})
	if err != nil || string(res) != `{"result":{"value":40}}` {
		t.Fatalf("rpc get: %s, %v", res, err)
	}
	if _, err := cmd.RPC(context.Background(), protocols.RPCRequest{Method: "reboot"}); err == nil || !strings.Contains(err.Error(), "unknown rpc method") {
		t.Fatalf("rpc reboot: %v", err)
	}
}

func TestBadConfig(t *testing.T) {
	_, err := newTestConnector(t, `{"devices": [{"address": "fake://x", "pollPeriod": 0}]}`)
	if err == nil {
		t.Fatal("want an error")
	}
	for _, want := range []string{"devices[0].deviceName: is required", "devices[0].pollPeriod: 0 must be a positive number of milliseconds"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
}

// forgetFake drops the fake device at fake://<name>, so the next open
// starts from the initial registers.
func forgetFake(name string) {
	fakesMu.Lock()
	defer fakesMu.Unlock()
	delete(fakes, name)
}
