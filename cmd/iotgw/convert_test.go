//go:build !custom || protocols.mqtt || protocols.rest || protocols.request || protocols.socket || protocols.can

package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestConvertUplink(t *testing.T) {
	in := filepath.Join(t.TempDir(), "sample.txt")
	if err := os.WriteFile(in, []byte("0x1A2B3C4D05"), 0o644); err != nil {
		t.Fatal(err)
	}
	var out, errOut bytes.Buffer
	code := run([]string{"convert", "--script", "../../examples/scripts/custom_mqtt_uplink.star", "--input", in,
		"--topic", "custom/sensors/SN-1", "--config-json", `{"temperature": 2, "humidity": 2, "batteryLevel": 1}`, "--now", "1700000000000"}, &out, &errOut)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	want := `{"device":"SN-1","profile":"Thermostat","ts":1700000000000,"attributes":{},"telemetry":{"batteryLevel":5,"humidity":77,"temperature":43}}` + "\n"
	if out.String() != want {
		t.Fatalf("got  %s\nwant %s", out.String(), want)
	}
}

func TestConvertDownlink(t *testing.T) {
	dir := t.TempDir()
	cfg, cmd := filepath.Join(dir, "device.json"), filepath.Join(dir, "cmd.json")
	os.WriteFile(cfg, []byte(`{"serverSideRpc": [{"method": "setValue", "type": "int"}], "attributeUpdates": [{"attributeOnPlatform": "a", "stringToDevice": "a=${a}"}]}`), 0o644)
	os.WriteFile(cmd, []byte(`{"device": "d", "values": {"a": 5}}`), 0o644)
	var out, errOut bytes.Buffer
	if code := run([]string{"convert", "--script", "../../examples/scripts/custom_serial_downlink.star", "--config", cfg, "--input", cmd, "--downlink"}, &out, &errOut); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	if out.String() != `{"payload":"a=5"}`+"\n" {
		t.Fatalf("got %s", out.String())
	}
}

// A script that does not load, or fails, says where: file:line:column.
func TestConvertErrors(t *testing.T) {
	dir := t.TempDir()
	bad, raise, in := filepath.Join(dir, "bad.star"), filepath.Join(dir, "raise.star"), filepath.Join(dir, "in")
	os.WriteFile(bad, []byte("def uplink(msg):\n  return {'device': x}\n"), 0o644)
	os.WriteFile(raise, []byte("def uplink(msg):\n  fail('no')\n"), 0o644)
	os.WriteFile(in, []byte("{}"), 0o644)
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"--script", bad, "--input", in}, 1, bad + ":2:21: undefined: x"},
		{[]string{"--script", raise, "--input", in}, 1, raise + ":2:7: in uplink: fail: no"},
		{[]string{"--input", in}, 2, "--script is required"},
		{[]string{"--script", raise, "--input", filepath.Join(dir, "missing")}, 2, "--input: open"},
	} {
		var out, errOut bytes.Buffer
		code := run(append([]string{"convert"}, tc.args...), &out, &errOut)
		if code != tc.code || !strings.Contains(errOut.String(), tc.want) {
			t.Errorf("%v: exit %d, stderr %q; want %d and %q", tc.args, code, errOut.String(), tc.code, tc.want)
		}
	}
}

// --for picks the connector's output keys: a CAN frame prints its id and
// bytes; a key the connector does not read is an error naming the ones it does.
func TestConvertDownlinkFor(t *testing.T) {
	dir := t.TempDir()
	src, cmd := filepath.Join(dir, "can.star"), filepath.Join(dir, "cmd.json")
	os.WriteFile(src, []byte("def downlink(cmd):\n  return {'nodeId': 0x123, 'payload': binary.pack_int(cmd.params, 2)}\n"), 0o644)
	os.WriteFile(cmd, []byte(`{"device": "d", "method": "speed", "params": 1500}`), 0o644)
	var out, errOut bytes.Buffer
	if code := run([]string{"convert", "--script", src, "--input", cmd, "--downlink", "--for", "can"}, &out, &errOut); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	// Decoded: Go releases escape the replacement character differently.
	var got struct {
		NodeID  int    `json:"nodeId"`
		Payload string `json:"payload"`
		Hex     string `json:"payloadHex"`
	}
	if err := json.Unmarshal(out.Bytes(), &got); err != nil || got.NodeID != 0x123 || got.Payload != "\x05\ufffd" || got.Hex != "05 dc" {
		t.Fatalf("got %s (%v)", out.String(), err)
	}
	out.Reset()
	errOut.Reset()
	if code := run([]string{"convert", "--script", src, "--input", cmd, "--downlink", "--for", "request"}, &out, &errOut); code != 1 ||
		!strings.Contains(errOut.String(), `unknown key "nodeId" (want url, method, headers, payload, reply)`) {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
}
