package localapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"testing"

	"github.com/industryos/gateway/protocols/kit/testpeer"
)

// curlResult is one curl run: the status code and body.
type curlResult struct {
	code int
	body string
	err  error
}

// curl runs curl and returns the HTTP status and body.
func curl(bin string, args ...string) curlResult {
	out, err := exec.Command(bin, append([]string{"-sS", "-w", "\n%{http_code}"}, args...)...).Output()
	if err != nil {
		return curlResult{err: fmt.Errorf("curl %v: %w", args, err)}
	}
	s := string(out)
	i := strings.LastIndexByte(s, '\n')
	var code int
	fmt.Sscan(s[i+1:], &code)
	return curlResult{code: code, body: s[:i]}
}

func curlAsync(bin string, args ...string) <-chan curlResult {
	ch := make(chan curlResult, 1)
	go func() { ch <- curl(bin, args...) }()
	return ch
}

// TestHTTPWithCurl: curl as a device. A telemetry post is answered 200
// only after the commit (while it is held the request is still open, and
// it completes after the release); attributes, the attribute read, a
// long-poll RPC with its reply, a client-side RPC, a wrong token (401), an
// oversized body (413) and bad JSON (400, JSON error).
func TestHTTPWithCurl(t *testing.T) {
	bin := testpeer.NeedProgram(t, "curl", "curl")
	c, rec := startAPI(t, map[string]any{"maxPayloadBytes": 256})
	base := "http://" + c.Addr("http") + "/api/v1/"

	rec.Hold()
	res := curlAsync(bin, "-X", "POST", "-H", "Content-Type: application/json", "-d", `{"temperature":20.5}`, base+"TOKEN_A/telemetry")
	rec.Wait(t, wait, "the held push", func() bool { return rec.Pushed() == 1 })
	// The request is open while uncommitted: another request on the API
	// completes meanwhile, this one does not.
	if r := curl(bin, base+"NOPE/attributes"); r.code != 401 {
		t.Errorf("wrong token: %d %s (%v)", r.code, r.body, r.err)
	}
	select {
	case r := <-res:
		t.Fatalf("answered %d before the commit", r.code)
	default:
	}
	rec.Release()
	if r := recv(t, res, "telemetry answer"); r.code != 200 {
		t.Fatalf("telemetry: %d %s (%v)", r.code, r.body, r.err)
	}
	waitValues(t, rec, "Sensor A", "temperature", "20.5")

	if r := curl(bin, "-X", "POST", "-d", `{"ts":1700000000000,"values":{"temperature":19}}`, base+"TOKEN_A/telemetry"); r.code != 200 {
		t.Errorf("ts telemetry: %d %s", r.code, r.body)
	}
	if r := curl(bin, "-X", "POST", "-d", `{"serial":"X1"}`, base+"TOKEN_A/attributes"); r.code != 200 {
		t.Errorf("attributes: %d %s", r.code, r.body)
	}
	waitValues(t, rec, "Sensor A", "serial", "X1")
	waitValues(t, rec, "Sensor A", "temperature", "20.5,19")

	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"-X", "POST", "-d", `{"x":1}`, base + "WRONG/telemetry"}, 401, `{"error":"unknown access token"}`},
		{[]string{"-X", "POST", "-d", `{"x":"` + strings.Repeat("a", 300) + `"}`, base + "TOKEN_A/telemetry"}, 413, `{"error":"body larger than 256 bytes"}`},
		{[]string{"-X", "POST", "-d", `{"x":`, base + "TOKEN_A/telemetry"}, 400, `{"error":"invalid JSON: unexpected EOF"}`},
		{[]string{"-X", "POST", "-d", `[1]`, base + "TOKEN_A/attributes"}, 400, `{"error":"attributes: expected a JSON object, got a list"}`},
		{[]string{base + "TOKEN_A/rpc?timeout=abc"}, 400, `{"error":"timeout \"abc\" is not milliseconds"}`},
		{[]string{base + "TOKEN_A/rpc?timeout=1"}, 408, ``},
		{[]string{"-X", "POST", "-d", `{}`, base + "TOKEN_A/rpc/99"}, 404, `{"error":"device \"Sensor A\": rpc 99: no pending rpc with this id"}`},
		{[]string{base + "TOKEN_A/nothing"}, 404, `{"error":"not a device API resource: GET /api/v1/TOKEN_A/nothing"}`},
	} {
		r := curl(bin, tc.args...)
		if r.err != nil || r.code != tc.code || r.body != tc.want {
			t.Errorf("%v: %d %s (%v), want %d %s", tc.args, r.code, r.body, r.err, tc.code, tc.want)
		}
	}
	if n := len(rec.RefusedReports()); n != 2 {
		t.Errorf("%d refusals, want 2", n)
	}

	rec.SetAttributes(map[string]json.RawMessage{"serial": json.RawMessage(`"X1"`), "target": json.RawMessage(`7`)})
	if r := curl(bin, base+"TOKEN_A/attributes?clientKeys=serial&sharedKeys=target,missing"); r.code != 200 || r.body != `{"client":{"serial":"X1"},"shared":{"target":7}}` {
		t.Errorf("attribute read: %d %s", r.code, r.body)
	}
	if r := curl(bin, base+"TOKEN_A/attributes"); r.code != 400 || !strings.Contains(r.body, "only by key") {
		t.Errorf("attribute read without keys: %d %s", r.code, r.body)
	}

	// Long poll: the device waits first, then the platform's RPC arrives.
	poll := curlAsync(bin, base+"TOKEN_B/rpc?timeout=20000")
	testpeer.Eventually(t, wait, "the long poll to wait", func() error {
		if c.hub.byName["Sensor B"].pollers.Load() == 0 {
			return fmt.Errorf("no poller yet")
		}
		return nil
	})
	out := rpc(c, "Sensor B", 42, "setLight", `{"on":1}`, wait)
	r := recv(t, poll, "long poll")
	if r.code != 200 || r.body != `{"id":42,"method":"setLight","params":{"on":1}}` {
		t.Fatalf("long poll: %d %s (%v)", r.code, r.body, r.err)
	}
	if r := curl(bin, "-X", "POST", "-d", `{"light":"on"}`, base+"TOKEN_B/rpc/42"); r.code != 200 {
		t.Errorf("rpc reply: %d %s", r.code, r.body)
	}
	if got := recv(t, out, "rpc result"); got != `{"light":"on"}` {
		t.Errorf("rpc result %s", got)
	}
	// An RPC that came before the poll waits for it.
	out = rpc(c, "Sensor B", 43, "ping", ``, wait)
	testpeer.Eventually(t, wait, "the rpc to be queued", func() error {
		st := c.hub.byName["Sensor B"]
		st.mu.Lock()
		defer st.mu.Unlock()
		if len(st.queue) == 0 {
			return fmt.Errorf("not queued")
		}
		return nil
	})
	if r := curl(bin, base+"TOKEN_B/rpc?timeout=5000"); r.code != 200 || r.body != `{"id":43,"method":"ping"}` {
		t.Errorf("poll of a queued rpc: %d %s", r.code, r.body)
	}
	if r := curl(bin, "-X", "POST", "-d", `pong`, base+"TOKEN_B/rpc/43"); r.code != 200 {
		t.Errorf("rpc reply: %d %s", r.code, r.body)
	}
	if got := recv(t, out, "rpc result"); got != `"pong"` {
		t.Errorf("non-JSON reply becomes a JSON string, got %s", got)
	}

	// Shared-attribute updates: kept for the next long poll, and a poll
	// that waits gets the next one.
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if _, err := c.Commander("Sensor B", "").UpdateAttributes(ctx, map[string]json.RawMessage{"mode": json.RawMessage(`"eco"`)}); err != nil {
		t.Fatal(err)
	}
	if r := curl(bin, base+"TOKEN_B/attributes/updates?timeout=5000"); r.code != 200 || r.body != `{"mode":"eco"}` {
		t.Errorf("attribute update poll: %d %s", r.code, r.body)
	}
	if r := curl(bin, base+"TOKEN_B/attributes/updates?timeout=1"); r.code != 408 {
		t.Errorf("empty attribute update poll: %d %s", r.code, r.body)
	}
	for i := range maxUpdates + 2 {
		if _, err := c.Commander("Sensor B", "").UpdateAttributes(ctx, map[string]json.RawMessage{"n": json.RawMessage(fmt.Sprint(i))}); err != nil {
			t.Fatal(err)
		}
	}
	if r := curl(bin, base+"TOKEN_B/attributes/updates?timeout=5000"); r.code != 200 || r.body != `{"n":2}` {
		t.Errorf("after overflow the oldest kept is n=2: %d %s", r.code, r.body)
	}
	if got := rec.DroppedTotal(); got != 2 {
		t.Errorf("%d updates counted as dropped, want 2", got)
	}

	if r := curl(bin, "-X", "POST", "-d", `{"method":"getCurrentTime","params":{}}`, base+"TOKEN_A/rpc"); r.code != 200 || len(r.body) < 13 {
		t.Errorf("client-side rpc: %d %s", r.code, r.body)
	}
}

// TestNotAcceptedIsNotAcknowledged: data the runtime does not take is
// answered 503 over HTTP, and over MQTT 3.1.1 the connection is closed
// without a PUBACK, so the device sends it again.
func TestNotAcceptedIsNotAcknowledged(t *testing.T) {
	bin := testpeer.NeedProgram(t, "curl", "curl")
	c, rec := startAPI(t, nil)
	rec.FailNext(errors.New("connector stopping"))
	r := curl(bin, "-X", "POST", "-d", `{"a":1}`, "http://"+c.Addr("http")+"/api/v1/TOKEN_A/telemetry")
	if r.code != 503 || r.body != `{"error":"not accepted: connector stopping"}` {
		t.Errorf("http: %d %s", r.code, r.body)
	}
	dev, err := connectV3(t, c.Addr("mqtt"), "a", "TOKEN_A", "")
	if err != nil {
		t.Fatal(err)
	}
	rec.FailNext(errors.New("connector stopping"))
	tok := dev.c.Publish("v1/devices/me/telemetry", 1, false, `{"a":2}`)
	testpeer.Eventually(t, wait, "the device to be disconnected", func() error {
		if dev.c.IsConnectionOpen() {
			return errors.New("still connected")
		}
		return nil
	})
	select {
	case <-tok.Done():
		if tok.Error() == nil {
			t.Error("PUBACK for data the runtime did not take")
		}
	default:
	}
	if n := rec.Pushed(); n != 0 {
		t.Errorf("%d pushes kept", n)
	}
}
