package mqttpublish

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/industryos/gateway/actors/automation/handler"
	"github.com/industryos/gateway/protocols/kit/testpeer"
)

// Publishes at QoS 1 to a real broker, JSON payloads encoded, and reports
// a broker that is not there as a retryable error.
func TestPublish(t *testing.T) {
	b := testpeer.StartMochi(t)
	sub := testpeer.Subscribe(t, b.Addr(), "plant/#")
	h := New(handler.Env{}).(*Handler)
	defer h.Close()
	params := map[string]any{"broker": "tcp://" + b.Addr(), "topic": "plant/alarm", "payload": map[string]any{"t": 85.0}}
	if errs := h.Validate(params); len(errs) > 0 {
		t.Fatal(errs)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := h.Run(ctx, handler.Action{Key: "k", Params: params}); err != nil {
		t.Fatal(err)
	}
	msgs := sub.WaitTopic(t, 10*time.Second, "plant/alarm", 1)
	if string(msgs[0].Payload) != `{"t":85}` {
		t.Fatalf("payload %s", msgs[0].Payload)
	}
	down := map[string]any{"broker": fmt.Sprintf("tcp://127.0.0.1:%d", testpeer.FreePort(t)), "topic": "x"}
	err := h.Run(ctx, handler.Action{Key: "k2", Params: down})
	if err == nil || errors.Is(err, handler.ErrPermanent) || !strings.Contains(err.Error(), "connect to") {
		t.Fatalf("broker down: %v", err)
	}
}

func TestValidate(t *testing.T) {
	errs := New(handler.Env{}).Validate(map[string]any{"broker": "http://x", "topic": "a/#", "qos": 2.0, "retain": "yes", "bogus": 1})
	var all []string
	for _, e := range errs {
		all = append(all, e.Error())
	}
	got := strings.Join(all, "\n")
	for _, want := range []string{"params.broker:", "params.topic:", "params.qos:", "params.retain:", "params.bogus: unknown param"} {
		if !strings.Contains(got, want) {
			t.Errorf("missing %q in\n%s", want, got)
		}
	}
}
