package snmp

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/industryos/gateway/protocols"
	"github.com/industryos/gateway/protocols/kit/spec"
	"github.com/industryos/gateway/protocols/kit/testpeer"
)

// startSnmpd runs snmpd with a v3 authPriv user besides the v2c
// communities.
func startSnmpd(t *testing.T) int {
	t.Helper()
	return testpeer.StartSnmpd(t, `createUser gateway SHA-256 "auth-secret-1" AES "priv-secret-1"`, "rwuser gateway priv")
}

func parse(t *testing.T, js string) *Connector {
	t.Helper()
	ps := &spec.Problems{}
	root := spec.Parse(ps, "snmp.json", []byte(js))
	c, err := NewConnector(protocols.ConnectorConfig{Name: "snmp", Type: "snmp", Config: root})
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	return c
}

func deviceJSON(port int, version, extra string) string {
	return fmt.Sprintf(`{"devices":[{"deviceName":"d","ip":"127.0.0.1","port":%d,"community":"public","version":%q,"timeout":2%s,
 "attributes":[{"key":"descr","method":"get","oid":"1.3.6.1.2.1.1.1.0"},
   {"key":"multi","method":"multiget","oid":["1.3.6.1.2.1.1.5.0","1.3.6.1.2.1.1.2.0"]},
   {"key":"next","method":"getnext","oid":"1.3.6.1.2.1.1.1.0"}],
 "telemetry":[{"key":"uptime","method":"get","oid":"1.3.6.1.2.1.1.3.0","timeout":1},
   {"key":"walk","method":"walk","oid":"1.3.6.1.2.1.1.9.1.2"},
   {"key":"bulkwalk","method":"bulkwalk","oid":["1.3.6.1.2.1.1.9.1.3"]},
   {"key":"bulkget","method":"bulkget","scalarOid":["1.3.6.1.2.1.1.4"],"repeatingOid":["1.3.6.1.2.1.1.9.1.2"],"maxListSize":3},
   {"key":"table","method":"table","oid":"1.3.6.1.2.1.1.9"}],
 "attributeUpdateRequests":[{"attributeFilter":"location","method":"set","oid":"1.3.6.1.2.1.1.6.0"},
   {"attributeFilter":"contact","method":"multiset","mappings":{"1.3.6.1.2.1.1.4.0":"${attribute}","1.3.6.1.2.1.1.5.0":"fixed-name"}}],
 "serverSideRpcRequests":[{"requestFilter":"setContact","method":"set","oid":"1.3.6.1.2.1.1.4.0"},
   {"requestFilter":"getContact","method":"get","oid":"1.3.6.1.2.1.1.4.0"}]}]}`, port, version, extra)
}

func TestPollAndWriteAgainstSnmpd(t *testing.T) {
	port := startSnmpd(t)
	ctx := context.Background()
	for _, tc := range []struct{ name, version, extra string }{
		{"v1", "1", `,"community":"private"`},
		{"v2c", "2c", `,"community":"private"`},
		{"v3", "3", `,"user":"gateway","authProtocol":"SHA256","authKey":"auth-secret-1","privacyProtocol":"AES","privacyKey":"priv-secret-1"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			js := deviceJSON(port, tc.version, "")
			js = strings.Replace(js, `"community":"public",`, "", 1)
			js = strings.Replace(js, `"timeout":2`, `"timeout":2`+tc.extra, 1)
			c := parse(t, js)
			defer c.Close()
			d := c.Device("d")
			r, err := d.Poll(ctx)
			if err != nil {
				t.Fatalf("poll: %v", err)
			}
			got := map[string]protocols.Value{}
			for _, dp := range append(r.Attributes, r.Telemetry...) {
				got[dp.Key] = dp.Value
			}
			if v := got["descr"]; v.Kind != protocols.KindString || !strings.Contains(v.S, "Linux") {
				t.Errorf("descr = %+v", v)
			}
			if v := got["uptime"]; v.Kind != protocols.KindUint {
				t.Errorf("uptime = %+v", v)
			}
			if v := got["multi"]; v.Kind != protocols.KindString || !strings.Contains(v.S, ",") {
				t.Errorf("multi = %+v", v)
			}
			for _, k := range []string{"next", "walk", "bulkwalk", "bulkget", "table"} {
				if v := got[k]; v.Kind != protocols.KindJSON || len(v.S) < 5 {
					t.Errorf("%s = %+v", k, v)
				}
			}
			want := "loc-" + tc.name
			ign, err := d.UpdateAttributes(ctx, map[string]json.RawMessage{"location": json.RawMessage(`"` + want + `"`), "other": json.RawMessage(`1`)})
			if err != nil || len(ign) != 1 || ign[0] != "other" {
				t.Fatalf("update: ignored %v, %v", ign, err)
			}
			v, err := d.ReadKey(ctx, &KeyConfig{Key: "loc", Method: "get", OIDs: []string{".1.3.6.1.2.1.1.6.0"}, Timeout: time.Second})
			if err != nil || v.S != want {
				t.Fatalf("location after set = %+v, %v", v, err)
			}
			if _, err := d.UpdateAttributes(ctx, map[string]json.RawMessage{"contact": json.RawMessage(`"multi-` + tc.name + `"`)}); err != nil {
				t.Fatalf("multiset: %v", err)
			}
			v, err = d.ReadKey(ctx, &KeyConfig{Key: "m", Method: "multiget", OIDs: []string{".1.3.6.1.2.1.1.4.0", ".1.3.6.1.2.1.1.5.0"}, Timeout: time.Second})
			if err != nil || v.S != "multi-"+tc.name+",fixed-name" {
				t.Fatalf("after multiset = %+v, %v", v, err)
			}
			res, err := d.RPC(ctx, protocols.RPCRequest{Method: "setContact", Params: json.RawMessage(`"ops-` + tc.name + `"`)})
			if err != nil || string(res) != `{"result":{"value":"ops-`+tc.name+`"}}` {
				t.Fatalf("setContact = %s, %v", res, err)
			}
			res, err = d.RPC(ctx, protocols.RPCRequest{Method: "getContact"})
			if err != nil || string(res) != `{"result":{"value":"ops-`+tc.name+`"}}` {
				t.Fatalf("getContact = %s, %v", res, err)
			}
			res, err = d.RPC(ctx, protocols.RPCRequest{Method: "set", Params: json.RawMessage(`"oid=1.3.6.1.2.1.1.5.0;value=name-` + tc.name + `;"`)})
			if err != nil {
				t.Fatalf("reserved set: %v", err)
			}
			res, err = d.RPC(ctx, protocols.RPCRequest{Method: "get", Params: json.RawMessage(`"oid=1.3.6.1.2.1.1.5.0;"`)})
			if err != nil || string(res) != `{"result":{"value":"name-`+tc.name+`"}}` {
				t.Fatalf("reserved get = %s, %v", res, err)
			}
			if _, err := d.RPC(ctx, protocols.RPCRequest{Method: "nope"}); err == nil {
				t.Fatal("unknown method: no error")
			}
		})
	}
}

func TestAgentErrorKeepsOtherKeys(t *testing.T) {
	port := startSnmpd(t)
	c := parse(t, fmt.Sprintf(`{"devices":[{"deviceName":"d","ip":"127.0.0.1","port":%d,"community":"public","version":"2c","timeout":1,
 "telemetry":[{"key":"missing","method":"get","oid":"1.3.6.1.2.1.1.99.0"},{"key":"uptime","method":"get","oid":"1.3.6.1.2.1.1.3.0"}]}]}`, port))
	defer c.Close()
	r, err := c.Device("d").Poll(context.Background())
	if err == nil || protocols.ErrorKind(err) != protocols.KindException {
		t.Fatalf("err = %v", err)
	}
	if len(r.Telemetry) != 1 || r.Telemetry[0].Key != "uptime" {
		t.Fatalf("telemetry = %+v", r.Telemetry)
	}
}

func TestDeadAgentTimesOut(t *testing.T) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0") // bound, never answers
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	c := parse(t, fmt.Sprintf(`{"devices":[{"deviceName":"d","ip":"127.0.0.1","port":%d,"community":"public","timeout":0.2,
 "telemetry":[{"key":"a","method":"get","oid":"1.3.6.1.2.1.1.3.0"},{"key":"b","method":"get","oid":"1.3.6.1.2.1.1.3.0"}]}]}`, pc.LocalAddr().(*net.UDPAddr).Port))
	defer c.Close()
	_, err = c.Device("d").Poll(context.Background())
	if protocols.ErrorKind(err) != protocols.KindTimeout {
		t.Fatalf("err = %v (kind %q)", err, protocols.ErrorKind(err))
	}
}
