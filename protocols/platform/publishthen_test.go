package platform

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/industryos/gateway/protocols/kit/testpeer"
)

// pubackGate holds the broker's PUBACK for telemetry until released: mochi
// acknowledges only after OnPublish returns.
type pubackGate struct {
	mqtt.HookBase
	release chan struct{}
}

func (g *pubackGate) ID() string           { return "puback-gate" }
func (g *pubackGate) Provides(b byte) bool { return b == mqtt.OnPublish }
func (g *pubackGate) OnPublish(_ *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	if pk.TopicName == TopicTelemetry {
		<-g.release
	}
	return pk, nil
}

// TestPublishThenSentBeforePuback: sent runs once the PUBLISH is written,
// while its PUBACK is still withheld, and exactly once; a publish that
// cannot be written calls it once too.
func TestPublishThenSentBeforePuback(t *testing.T) {
	b := testpeer.StartMochi(t, testpeer.AllowAll())
	gate := &pubackGate{release: make(chan struct{})}
	if err := b.Server.AddHook(gate, nil); err != nil {
		t.Fatal(err)
	}
	h := startClient(t, testConfig(b.Addr()))
	h.waitUp(10 * time.Second)

	var calls atomic.Int32
	sent := make(chan struct{}, 2)
	done := make(chan error, 1)
	go func() {
		done <- h.c.PublishThen(context.Background(), TopicTelemetry, []byte(`{"d":[{"ts":1,"values":{"v":1}}]}`), 1, func() {
			calls.Add(1)
			sent <- struct{}{}
		})
	}()
	select {
	case <-sent:
	case err := <-done:
		t.Fatalf("publish returned (%v) before sent ran", err)
	case <-time.After(testpeer.Timeout(10 * time.Second)):
		t.Fatal("sent never ran while the PUBACK was withheld")
	}
	select {
	case err := <-done:
		t.Fatalf("publish returned (%v) while its PUBACK was withheld", err)
	default:
	}
	close(gate.release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if n := calls.Load(); n != 1 {
		t.Fatalf("sent ran %d times", n)
	}

	if err := h.c.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	calls.Store(0)
	err := h.c.PublishThen(context.Background(), TopicTelemetry, []byte(`{}`), 1, func() { calls.Add(1) })
	if !errors.Is(err, ErrClosed) && !errors.Is(err, ErrNotConnected) {
		t.Fatalf("publish on a closed client: %v", err)
	}
	if n := calls.Load(); n != 1 {
		t.Fatalf("sent ran %d times for a publish never written", n)
	}
}
