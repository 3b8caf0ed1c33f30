package tests

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/gosnmp/gosnmp"

	"github.com/industryos/gateway/protocols/kit/testpeer"
)

// startSnmpd runs snmpd (v2c communities public/private) and a client of
// it.
func startSnmpd(t *testing.T) (int, *gosnmp.GoSNMP) {
	t.Helper()
	port := testpeer.StartSnmpd(t)
	g := &gosnmp.GoSNMP{Target: "127.0.0.1", Port: uint16(port), Version: gosnmp.Version2c, Community: "public", Timeout: 200 * time.Millisecond}
	if err := g.Connect(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.Conn.Close() })
	return port, g
}

// TestSNMPEndToEnd: snmpd → gateway → mosquitto for polled values, and
// platform → gateway → snmpd for an attribute update and RPC.
func TestSNMPEndToEnd(t *testing.T) {
	m := testpeer.StartMosquitto(t)
	port, g := startSnmpd(t)
	conf := fmt.Sprintf(`{"devices": [{"deviceName": "router", "deviceType": "snmp", "ip": "127.0.0.1", "port": %d,
	  "pollPeriod": 200, "community": "private", "version": "2c", "timeout": 1,
	  "telemetry": [{"key": "uptime", "method": "get", "oid": "1.3.6.1.2.1.1.3.0"},
	    {"key": "system", "method": "walk", "oid": "1.3.6.1.2.1.1.9.1.2"}],
	  "attributeUpdateRequests": [{"attributeFilter": "location", "method": "set", "oid": "1.3.6.1.2.1.1.6.0"}],
	  "serverSideRpcRequests": [{"requestFilter": "setName", "method": "set", "oid": "1.3.6.1.2.1.1.5.0"},
	    {"requestFilter": "getName", "method": "get", "oid": "1.3.6.1.2.1.1.5.0"}]}]}`, port)
	sub := testpeer.Subscribe(t, m.Addr(), "v1/gateway/rpc", "v1/gateway/telemetry")
	path := writeConfig(t, t.TempDir(), m.Addr(), `{"type": "memory"}`, map[string][]byte{"snmp": []byte(conf)},
		map[string]any{"syncDevicesSharedAttributesOnConnect": false})
	startGateway(t, path, nil)
	sub.WaitFor(t, 20*time.Second, func(msgs []testpeer.Msg) bool {
		for _, msg := range msgs {
			if msg.Topic == "v1/gateway/telemetry" && strings.Contains(string(msg.Payload), `"uptime":`) &&
				strings.Contains(string(msg.Payload), `"system":{"1.3.6.1.2.1.1.9.1.2.1":`) {
				return true
			}
		}
		return false
	})
	send := func(topic, body string) {
		t.Helper()
		if err := sub.Publish(context.Background(), topic, []byte(body), 1); err != nil {
			t.Fatal(err)
		}
	}
	send("v1/gateway/rpc", `{"device":"router","data":{"id":1,"method":"setName","params":"gw-e2e"}}`)
	if r := waitReply(t, sub, "v1/gateway/rpc", hasID("1")); string(r["data"]) != `{"result":{"value":"gw-e2e"}}` {
		t.Errorf("setName: %s", r["data"])
	}
	send("v1/gateway/rpc", `{"device":"router","data":{"id":2,"method":"getName","params":null}}`)
	if r := waitReply(t, sub, "v1/gateway/rpc", hasID("2")); string(r["data"]) != `{"result":{"value":"gw-e2e"}}` {
		t.Errorf("getName: %s", r["data"])
	}
	send("v1/gateway/attributes", `{"device":"router","data":{"location":"hall 3"}}`)
	testpeer.Eventually(t, 10*time.Second, "sysLocation to be set", func() error {
		p, err := g.Get([]string{".1.3.6.1.2.1.1.6.0"})
		if err != nil {
			return err
		}
		if b, _ := p.Variables[0].Value.([]byte); string(b) != "hall 3" {
			return fmt.Errorf("sysLocation = %q", b)
		}
		return nil
	})
}
