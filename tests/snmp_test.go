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

// TestSNMPBinaryEndToEnd runs the built gateway with a Badger journal:
// snmpd is polled and the connector's trap receiver takes a v2c inform
// (answered only after the commit) and a v2c trap from Debian's snmp
// tools; all of it reaches mosquitto decoded, on the polled device. The
// reserved set and get RPCs reach snmpd and their replies the platform.
func TestSNMPBinaryEndToEnd(t *testing.T) {
	m := testpeer.StartMosquitto(t)
	port, g := startSnmpd(t)
	trapPort := testpeer.FreeUDPPort(t)
	conf := fmt.Sprintf(`{"devices": [{"deviceName": "router", "deviceType": "snmp", "ip": "127.0.0.1", "port": %d,
	  "pollPeriod": 300, "community": "private", "version": "2c", "timeout": 1,
	  "telemetry": [{"key": "uptime", "method": "get", "oid": "1.3.6.1.2.1.1.3.0"}]}],
	 "traps": {"port": %d, "communities": ["public"],
	  "mapping": [{"trapOid": "1.3.6.1.6.3.1.1.5.3", "trapKey": "lastTrap",
	    "telemetry": [{"key": "ifIndex", "oid": "1.3.6.1.2.1.2.2.1.1"}, {"key": "ifDescr", "oid": "1.3.6.1.2.1.2.2.1.2"}]}]}}`, port, trapPort)
	sub := testpeer.Subscribe(t, m.Addr(), "v1/gateway/rpc", "v1/gateway/telemetry")
	dir := t.TempDir()
	path := writeConfig(t, dir, m.Addr(), `{"type": "file", "data_folder_path": "journal"}`, map[string][]byte{"snmp": []byte(conf)},
		map[string]any{"syncDevicesSharedAttributesOnConnect": false})
	startBinary(t, path)

	hasTelemetry := func(device string, want map[string]string) func([]testpeer.Msg) bool {
		return func(msgs []testpeer.Msg) bool {
			got, err := telemetry(msgs)
			if err != nil {
				t.Error(err)
				return false
			}
			for p, values := range got {
				if p.Device != device {
					continue
				}
				ok := true
				for k, v := range want {
					ok = ok && (v == "" && values[k] != nil || v != "" && string(values[k]) == v)
				}
				if ok {
					return true
				}
			}
			return false
		}
	}
	sub.WaitFor(t, 30*time.Second, hasTelemetry("router", map[string]string{"uptime": ""}))

	target := fmt.Sprintf("127.0.0.1:%d", trapPort)
	notification := func(index int, descr string) []string {
		return []string{target, "", "1.3.6.1.6.3.1.1.5.3",
			"1.3.6.1.2.1.2.2.1.1." + fmt.Sprint(index), "i", fmt.Sprint(index), "1.3.6.1.2.1.2.2.1.2." + fmt.Sprint(index), "s", descr}
	}
	// The answer to an inform says its data is committed; until the
	// receiver listens there is none, so the sender tries again.
	testpeer.Eventually(t, 30*time.Second, "snmpinform to be answered", func() error {
		cmd := testpeer.SnmpCommand(t, "snmpinform", append([]string{"-v", "2c", "-c", "public", "-t", "1", "-r", "0"}, notification(9, "eth9")...)...)
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("%v: %s", err, out)
		}
		return nil
	})
	sub.WaitFor(t, 20*time.Second, hasTelemetry("router", map[string]string{"ifIndex": "9", "ifDescr": `"eth9"`, "lastTrap": `"1.3.6.1.6.3.1.1.5.3"`}))
	cmd := testpeer.SnmpCommand(t, "snmptrap", append([]string{"-v", "2c", "-c", "public"}, notification(3, "eth3")...)...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("snmptrap: %v: %s", err, out)
	}
	sub.WaitFor(t, 20*time.Second, hasTelemetry("router", map[string]string{"ifIndex": "3", "ifDescr": `"eth3"`}))

	send := func(body string) {
		t.Helper()
		if err := sub.Publish(context.Background(), "v1/gateway/rpc", []byte(body), 1); err != nil {
			t.Fatal(err)
		}
	}
	send(`{"device":"router","data":{"id":11,"method":"set","params":"oid=1.3.6.1.2.1.1.5.0;value=gw-binary;"}}`)
	if r := waitReply(t, sub, "v1/gateway/rpc", hasID("11")); string(r["data"]) != `{"result":{"value":"gw-binary"}}` {
		t.Errorf("reserved set: %s", r["data"])
	}
	p, err := g.Get([]string{".1.3.6.1.2.1.1.5.0"})
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := p.Variables[0].Value.([]byte); string(b) != "gw-binary" {
		t.Errorf("snmpd sysName = %q after the reserved set", b)
	}
	send(`{"device":"router","data":{"id":12,"method":"get","params":"oid=1.3.6.1.2.1.1.5.0;"}}`)
	if r := waitReply(t, sub, "v1/gateway/rpc", hasID("12")); string(r["data"]) != `{"result":{"value":"gw-binary"}}` {
		t.Errorf("reserved get: %s", r["data"])
	}
}
