package localapi

import (
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"strconv"
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
	if r := coapClient(bin, "-m", "get", base+"TOKEN_A/attributes"); !strings.Contains(r.out, "4.00") {
		t.Errorf("attribute read without keys: %q (%v)", r.out, r.err)
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

// coapObserve runs coap-client observing url for dur seconds (-s) and
// hands each payload it prints (-w ends each with a newline) to a channel.
func coapObserve(t *testing.T, bin, url string, dur int) <-chan string {
	t.Helper()
	lines := testpeer.Lines(t, exec.Command(bin, "-w", "-B", strconv.Itoa(dur), "-s", strconv.Itoa(dur), url))
	payloads := make(chan string, 16)
	go func() {
		defer close(payloads)
		for l := range lines {
			if l = strings.TrimSpace(l); l != "" {
				payloads <- l
			}
		}
	}()
	return payloads
}

func waitObserving(t *testing.T, c *Connector, device string, what observed) {
	t.Helper()
	testpeer.Eventually(t, wait, "the coap observation", func() error {
		if !c.hub.byName[device].observing(what) {
			return fmt.Errorf("%s not observing %d", device, what)
		}
		return nil
	})
}

// TestCoAPObserve: coap-client -s observes a device's attributes and rpc.
// An update kept while nobody observed is sent on registration, a later
// one is pushed; a server-side RPC is pushed as a notification and the
// reply (POST rpc/{id}) returns to the caller. When the observer is gone
// (its process killed, so the notification's ACK never comes) the RPC
// waits for the next poll instead.
func TestCoAPObserve(t *testing.T) {
	bin := needCoAPClient(t)
	c, _ := startAPI(t, map[string]any{"coap": map[string]any{"enabled": true, "address": "127.0.0.1:0"}})
	base := "coap://" + c.Addr("coap") + "/api/v1/TOKEN_A/"
	cmd := c.Commander("Sensor A", "")

	if _, err := cmd.UpdateAttributes(context.Background(), map[string]json.RawMessage{"kept": json.RawMessage(`1`)}); err != nil {
		t.Fatal(err)
	}
	attrs := coapObserve(t, bin, base+"attributes", 30)
	waitObserving(t, c, "Sensor A", observeAttributes)
	if got := recv(t, attrs, "kept update"); got != `{"kept":1}` {
		t.Fatalf("kept update: %q", got)
	}
	if _, err := cmd.UpdateAttributes(context.Background(), map[string]json.RawMessage{"target": json.RawMessage(`8`)}); err != nil {
		t.Fatal(err)
	}
	if got := recv(t, attrs, "pushed update"); got != `{"target":8}` {
		t.Fatalf("pushed update: %q", got)
	}

	rpcs := coapObserve(t, bin, base+"rpc", 30)
	waitObserving(t, c, "Sensor A", observeRPC)
	out := rpc(c, "Sensor A", 6, "setValve", `{"open":true}`, wait)
	if got := recv(t, rpcs, "rpc notification"); got != `{"id":6,"method":"setValve","params":{"open":true}}` {
		t.Fatalf("rpc notification: %q", got)
	}
	if r := coapClient(bin, "-m", "post", "-e", `{"open":true}`, base+"rpc/6"); r.err != nil || r.out != "" {
		t.Fatalf("rpc reply: %q (%v)", r.out, r.err)
	}
	if got := recv(t, out, "rpc result"); got != `{"open":true}` {
		t.Fatalf("rpc result %s", got)
	}
}

// TestCoAPOverDTLS: with a certificate the CoAP listener speaks DTLS;
// libcoap's OpenSSL client, checking the server against its CA, posts
// telemetry (acknowledged after the commit) and reads an attribute.
func TestCoAPOverDTLS(t *testing.T) {
	bin := testpeer.NeedProgram(t, "coap-client-openssl", "libcoap3-bin")
	files := testpeer.GenerateTLS(t, "127.0.0.1")
	c, rec := startAPI(t, map[string]any{"coap": map[string]any{"enabled": true, "address": "127.0.0.1:0",
		"certificate": files.ServerCert, "privateKey": files.ServerKey}})
	base := "coaps://" + c.Addr("coap") + "/api/v1/"
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, "-v", "6", "-B", "10", "-R", files.CACert, "-m", "post", "-e", `{"temperature":19.5}`,
		base+"TOKEN_A/telemetry").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "t:ACK c:2.04") {
		t.Fatalf("dtls telemetry: %v\n%s", err, out)
	}
	waitValues(t, rec, "Sensor A", "temperature", "19.5")
	rec.SetAttributes(map[string]json.RawMessage{"target": json.RawMessage(`3`)})
	if out, err := exec.CommandContext(ctx, bin, "-B", "10", "-R", files.CACert, "-m", "get", base+"TOKEN_A/attributes?sharedKeys=target").CombinedOutput(); err != nil || strings.TrimSpace(string(out)) != `{"shared":{"target":3}}` {
		t.Fatalf("dtls attribute read: %v %s", err, out)
	}
	// A client trusting another CA does not get through the handshake.
	other := testpeer.GenerateTLS(t, "127.0.0.1")
	if out, _ := exec.CommandContext(ctx, bin, "-v", "6", "-B", "3", "-R", other.CACert, "-m", "post", "-e", `{"x":2}`,
		base+"TOKEN_A/telemetry").CombinedOutput(); strings.Contains(string(out), "c:2.04") {
		t.Errorf("server certificate not checked by the client test: %s", out)
	}
	// Plain CoAP to the DTLS port gets no answer (-B bounds the wait).
	if r := coapClient(needCoAPClient(t), "-v", "6", "-B", "2", "-m", "post", "-e", `{"x":1}`, "coap://"+c.Addr("coap")+"/api/v1/TOKEN_A/telemetry"); strings.Contains(r.out, "c:2.04") {
		t.Errorf("plain coap answered on the dtls port: %q", r.out)
	}
}
