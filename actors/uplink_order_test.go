package actors

import (
	"context"
	"encoding/json"
	"fmt"
	"runtime"
	"sync"
	"testing"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
	"github.com/rs/zerolog"

	"github.com/industryos/gateway/persistence"
	"github.com/industryos/gateway/protocols"
	"github.com/industryos/gateway/protocols/kit/testpeer"
	"github.com/industryos/gateway/protocols/platform"
)

// orderHook records the attribute values of device "ordered" in the order
// the broker reads them from the gateway's connection.
type orderHook struct {
	mqtt.HookBase
	mu  sync.Mutex
	got []int64
}

func (h *orderHook) ID() string           { return "order" }
func (h *orderHook) Provides(b byte) bool { return b == mqtt.OnPublish }
func (h *orderHook) OnPublish(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	if pk.TopicName != "v1/gateway/attributes" {
		return pk, nil
	}
	var m map[string]map[string]int64
	if err := json.Unmarshal(pk.Payload, &m); err == nil {
		if v, ok := m["ordered"]["n"]; ok {
			h.mu.Lock()
			h.got = append(h.got, v)
			h.mu.Unlock()
		}
	}
	return pk, nil
}

// TestUplinkKeepsWireOrder: journaled updates of one attribute leave in the
// journal's order although the uplink's workers publish them side by side,
// one message each, so the platform keeps the last value, not an older one.
// Messages that bypass the journal (statistics, RPC answers) are published
// meanwhile, as they are at a gateway's start.
func TestUplinkKeepsWireOrder(t *testing.T) {
	const n = 3000
	b := testpeer.StartMochi(t, testpeer.AllowAll())
	hook := &orderHook{}
	if err := b.Server.AddHook(hook, nil); err != nil {
		t.Fatal(err)
	}
	j := persistence.OpenMemory(persistence.Options{})
	recs := make([][]byte, n)
	for i := range recs {
		ev := protocols.Event{Kind: protocols.EventAttributes, Device: "ordered", Ts: int64(i + 1),
			Values: []protocols.Datapoint{{Key: "n", Value: protocols.Int(int64(i + 1))}}}
		recs[i] = ev.AppendBinary(nil)
	}
	if _, _, err := j.Append(recs); err != nil {
		t.Fatal(err)
	}
	cfg := testConfig(t, b.Addr(), &counterDevice{})
	cfg.Storage.ReadBatch = 1 // one record per chunk: many messages in flight at once
	gw := startGateway(t, Options{Config: cfg, Logger: zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.WarnLevel), Journal: j})
	stop := make(chan struct{})
	var direct sync.WaitGroup
	direct.Add(1)
	go func() {
		defer direct.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			if gw.PublishDirect(context.Background(), platform.TopicMeTelemetry, []byte(`{"x":1}`), 0) != nil {
				runtime.Gosched() // not connected yet
			}
		}
	}()
	defer direct.Wait()
	defer close(stop)
	testpeer.Eventually(t, 60*time.Second, fmt.Sprintf("%d attribute updates at the broker", n), func() error {
		hook.mu.Lock()
		defer hook.mu.Unlock()
		if len(hook.got) < n {
			return fmt.Errorf("%d so far", len(hook.got))
		}
		return nil
	})
	hook.mu.Lock()
	defer hook.mu.Unlock()
	out := 0
	for i := 1; i < len(hook.got); i++ {
		if hook.got[i] <= hook.got[i-1] {
			if out < 5 {
				t.Errorf("update %d arrived after %d", hook.got[i], hook.got[i-1])
			}
			out++
		}
	}
	if out > 0 {
		t.Fatalf("%d of %d updates overtaken", out, len(hook.got))
	}
}
