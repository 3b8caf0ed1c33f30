package actors

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
	"github.com/rs/zerolog"

	"github.com/industryos/gateway/persistence"
	"github.com/industryos/gateway/protocols"
	"github.com/industryos/gateway/protocols/config"
	"github.com/industryos/gateway/protocols/kit/testpeer"
)

// holdHook withholds PUBACKs for the gateway's telemetry: mochi sends the
// PUBACK only after OnPublish returns.
type holdHook struct {
	mqtt.HookBase
	release chan struct{}
	seen    chan struct{}
	once    sync.Once
}

func (h *holdHook) ID() string { return "hold-puback" }
func (h *holdHook) Provides(b byte) bool {
	return b == mqtt.OnPublish
}
func (h *holdHook) OnPublish(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	if pk.TopicName == "v1/gateway/telemetry" {
		h.once.Do(func() { close(h.seen) })
		<-h.release
	}
	return pk, nil
}

type counterDevice struct{ n atomic.Int64 }

func (d *counterDevice) Info() protocols.DeviceInfo {
	return protocols.DeviceInfo{Name: "counter", Type: "test", PollPeriod: 20 * time.Millisecond, ConnectAttemptCount: 2}
}
func (d *counterDevice) Poll(context.Context) (protocols.Reading, error) {
	return protocols.Reading{Telemetry: []protocols.Datapoint{{Key: "n", Value: protocols.Int(d.n.Add(1))}}}, nil
}
func (d *counterDevice) Close() error { return nil }

type oneDevice struct{ d protocols.Device }

func (c oneDevice) Devices() []protocols.Device { return []protocols.Device{c.d} }
func (c oneDevice) Close() error                { return nil }

func testConfig(t *testing.T, addr string, dev protocols.Device) *config.Gateway {
	host, port, _ := net.SplitHostPort(addr)
	p, _ := strconv.Atoi(port)
	conn := oneDevice{dev}
	return &config.Gateway{
		ThingsBoard: config.ThingsBoard{Host: host, Port: p, QoS: 1, KeepAlive: time.Minute, MaxPayloadSize: 8196,
			Security: config.Security{Type: "accessToken", AccessToken: "t"}},
		Storage:    config.Storage{ReadBatch: 100},
		Connectors: []config.Connector{{Name: "test", Type: "test", Connector: conn, Build: func() (protocols.Connector, error) { return conn, nil }}},
	}
}

// TestAckOnlyAfterPuback: while the broker withholds PUBACKs nothing is
// acknowledged in the journal; once they flow, the cursor advances.
func TestAckOnlyAfterPuback(t *testing.T) {
	b := testpeer.StartMochi(t, testpeer.AllowAll())
	hook := &holdHook{release: make(chan struct{}), seen: make(chan struct{})}
	if err := b.Server.AddHook(hook, nil); err != nil {
		t.Fatal(err)
	}
	released := false
	defer func() {
		if !released {
			close(hook.release)
		}
	}()
	j := persistence.OpenMemory(persistence.Options{})
	gw := startGateway(t, Options{Config: testConfig(t, b.Addr(), &counterDevice{}), Logger: zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.WarnLevel), Journal: j})
	select {
	case <-hook.seen:
	case <-time.After(20 * time.Second):
		t.Fatal("the gateway never published telemetry")
	}
	// The broker has the message but has not acknowledged it: nothing may be acked.
	testpeer.Eventually(t, 10*time.Second, "10 journaled records", func() error {
		if j.LastSeq() < 10 {
			return fmt.Errorf("only %d records journaled", j.LastSeq())
		}
		return nil
	})
	if c := j.Cursor(); c != 0 {
		t.Fatalf("journal acked up to %d while every PUBACK was withheld", c)
	}
	close(hook.release)
	released = true
	testpeer.Eventually(t, 20*time.Second, "the cursor to pass the PUBACKed records", func() error {
		if c := j.Cursor(); c < 10 {
			return fmt.Errorf("cursor %d after PUBACKs resumed", c)
		}
		return nil
	})
	if d := gw.Counters().ValuesDelivered.Load(); d == 0 {
		t.Fatal("no delivered values counted")
	}
}
