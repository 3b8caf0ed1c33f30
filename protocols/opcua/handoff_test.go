package opcua

import (
	"context"
	"testing"
	"time"

	"github.com/industryos/gateway/protocols"
)

func pushOf(dev string, kv ...any) protocols.Push {
	p := protocols.Push{Device: dev, Ts: time.Unix(int64(len(kv)), 0)}
	for i := 0; i < len(kv); i += 2 {
		p.Reading.Telemetry = append(p.Reading.Telemetry, protocols.Datapoint{Key: kv[i].(string), Value: protocols.Int(int64(kv[i+1].(int)))})
	}
	return p
}

func TestHandoffKeepsOrderAndFoldsWhenFull(t *testing.T) {
	h := newHandoff(3)
	if n := h.offer(pushOf("a", "x", 1, "y", 1)); n != 0 {
		t.Fatal(n)
	}
	if n := h.offer(pushOf("b", "x", 1)); n != 0 {
		t.Fatal(n)
	}
	// Full: folded into a's queued push, x superseded, z added.
	if n := h.offer(pushOf("a", "x", 2, "z", 2)); n != 1 {
		t.Fatalf("superseded = %d, want 1", n)
	}
	// Full and no queued push of c: queued anyway (bounded by devices).
	if n := h.offer(pushOf("c", "x", 3)); n != 0 {
		t.Fatal(n)
	}
	ctx := context.Background()
	want := []string{"a:x=2,y=1,z=2", "b:x=1", "c:x=3"}
	for _, w := range want {
		p, err := h.take(ctx)
		if err != nil {
			t.Fatal(err)
		}
		got := p.Device + ":"
		for i, dp := range p.Reading.Telemetry {
			if i > 0 {
				got += ","
			}
			got += dp.Key + "=" + dp.Value.String()
		}
		if got != w {
			t.Fatalf("took %s, want %s", got, w)
		}
	}
	if h.pending() != 0 {
		t.Fatal(h.pending())
	}
	// After a take, a device's old slot is not merged into.
	h.offer(pushOf("a", "x", 1, "y", 1, "z", 1))
	p, _ := h.take(ctx)
	h.offer(pushOf("a", "x", 5))
	if p2, _ := h.take(ctx); p2.Reading.Telemetry[0].Value.String() != "5" || len(p.Reading.Telemetry) != 3 {
		t.Fatal("stale merge")
	}
}

func TestHandoffPutBlocksUntilTaken(t *testing.T) {
	h := newHandoff(1)
	ctx := context.Background()
	if err := h.put(ctx, pushOf("a", "x", 1)); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- h.put(ctx, pushOf("a", "x", 2)) }()
	select {
	case <-done:
		t.Fatal("put did not wait for room")
	case <-time.After(50 * time.Millisecond):
	}
	if _, err := h.take(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if err := h.put(cctx, pushOf("a", "x", 3)); err == nil {
		t.Fatal("put on a full hand-off ignored ctx")
	}
}
