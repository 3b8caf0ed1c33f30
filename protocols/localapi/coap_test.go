package localapi

import (
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"strings"
	"testing"

	"github.com/industryos/gateway/protocols/kit/testpeer"
)

type coapResult struct {
	out string
	err error
}

// coapClient runs libcoap's coap-client (no TLS build) and returns what it
// printed: the response payload, and for an error code the code line.
func coapClient(bin string, args ...string) coapResult {
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, append([]string{"-B", "10"}, args...)...).CombinedOutput()
	return coapResult{strings.TrimSpace(string(out)), err}
}

// TestCoAPWithLibcoap: libcoap's coap-client as a device: a confirmable
// telemetry POST is answered (its ACK sent) only after the commit; an
// attribute post, an attribute read, an RPC reply and a client-side RPC;
// a wrong token is refused with 4.01 and counted.
func TestCoAPWithLibcoap(t *testing.T) {
	bin := needCoAPClient(t)
	c, rec := startAPI(t, map[string]any{"coap": map[string]any{"enabled": true, "address": "127.0.0.1:0"}})
	base := "coap://" + c.Addr("coap") + "/api/v1/"

	rec.Hold()
	res := make(chan coapResult, 1)
	go func() { res <- coapClient(bin, "-m", "post", "-e", `{"temperature":22.5}`, base+"TOKEN_A/telemetry") }()
	rec.Wait(t, wait, "the held push", func() bool { return rec.Pushed() == 1 })
	if r := coapClient(bin, "-m", "post", "-e", `{"x":1}`, base+"WRONG/telemetry"); !strings.Contains(r.out, "4.01") {
		t.Errorf("wrong token: %q (%v)", r.out, r.err)
	}
	select {
	case r := <-res:
		t.Fatalf("answered before the commit: %q", r.out)
	default:
	}
	rec.Release()
	if r := recv(t, res, "telemetry answer"); r.err != nil || strings.Contains(r.out, "4.") || strings.Contains(r.out, "5.") {
		t.Fatalf("telemetry: %q (%v)", r.out, r.err)
	}
	waitValues(t, rec, "Sensor A", "temperature", "22.5")
	if r := coapClient(bin, "-m", "post", "-e", `{"fw":"2.1"}`, base+"TOKEN_A/attributes"); r.err != nil || r.out != "" {
		t.Errorf("attributes: %q (%v)", r.out, r.err)
	}
	waitValues(t, rec, "Sensor A", "fw", "2.1")
	if r := coapClient(bin, "-m", "post", "-e", `not json`, base+"TOKEN_A/telemetry"); !strings.Contains(r.out, "4.00") {
		t.Errorf("bad JSON: %q", r.out)
	}
	if n := len(rec.RefusedReports()); n != 1 {
		t.Errorf("%d refusals, want 1", n)
	}

	rec.SetAttributes(map[string]json.RawMessage{"target": json.RawMessage(`7`)})
	if r := coapClient(bin, "-m", "get", base+"TOKEN_A/attributes?sharedKeys=target"); r.out != `{"shared":{"target":7}}` {
		t.Errorf("attribute read: %q (%v)", r.out, r.err)
	}
	// An RPC reply over CoAP (the request reached the device another way).
	out := rpc(c, "Sensor A", 5, "ping", ``, wait)
	testpeer.Eventually(t, wait, "the rpc to be queued", func() error {
		st := c.hub.byName["Sensor A"]
		st.mu.Lock()
		defer st.mu.Unlock()
		if len(st.queue) == 0 {
			return fmt.Errorf("not queued")
		}
		return nil
	})
	if p, ok := c.hub.byName["Sensor A"].poll(context.Background()); !ok || p.req.ID != 5 {
		t.Fatalf("queued rpc %v", p)
	}
	if r := coapClient(bin, "-m", "post", "-e", `{"pong":true}`, base+"TOKEN_A/rpc/5"); r.err != nil {
		t.Errorf("rpc reply: %q (%v)", r.out, r.err)
	}
	if got := recv(t, out, "rpc result"); got != `{"pong":true}` {
		t.Errorf("rpc result %s", got)
	}
	if r := coapClient(bin, "-m", "post", "-e", `{"method":"getCurrentTime","params":{}}`, base+"TOKEN_A/rpc"); len(r.out) < 13 {
		t.Errorf("client-side rpc: %q", r.out)
	}
}

// needCoAPClient finds libcoap's coap-client (Debian libcoap3-bin installs
// it as coap-client-notls and the TLS variants).
func needCoAPClient(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"coap-client-notls", "coap-client"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return testpeer.NeedProgram(t, "coap-client-notls", "libcoap3-bin")
}
