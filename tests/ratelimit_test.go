package tests

import (
	"encoding/json"
	"fmt"
	"sort"
	"sync/atomic"
	"testing"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/industryos/gateway/persistence"
	"github.com/industryos/gateway/protocols"
	"github.com/industryos/gateway/protocols/kit/testpeer"
)

// TestPlatformRateLimits has a platform announce tight gatewayRateLimits and
// a backlog waiting in the journal: what arrives must respect the limits in
// every window, and all of it must arrive.
//
// The check counts by arrival time, so it sees what a platform sees. The
// gateway keeps 80 % of each limit in any window of its length by send time;
// the check allows the full limit in any arrival window shortened by a
// fifth, which absorbs delivery jitter of up to a fifth of the window
// without a timing assertion. Without enforcement the whole backlog would
// arrive within a few milliseconds, far over the limit.
func TestPlatformRateLimits(t *testing.T) {
	const (
		devices, perDevice, values = 4, 12, 2 // 96 datapoints, 4 connects
		msgLimit, dpLimit          = 5, 40    // per second, as the platform states them
		window                     = time.Second
	)
	limits := fmt.Sprintf(`{"maxPayloadSize":65536,"maxInflightMessages":100,"rateLimits":{},`+
		`"gatewayRateLimits":{"messages":"%d:1","telemetryMessages":"","telemetryDataPoints":"%d:1"}}`, msgLimit, dpLimit)

	platform := testpeer.StartMosquitto(t)
	testpeer.AnswerSessionLimits(t, platform.Addr(), limits)
	sub := testpeer.Subscribe(t, platform.Addr(), "v1/gateway/#")
	sub.WaitReady(t, 10*time.Second)

	j, want := backlog(t, devices, perDevice, values)
	dir := t.TempDir()
	path := writeConfig(t, dir, platform.Addr(), `{"type": "memory"}`, nil)
	g := startGateway(t, path, j)

	msgs := sub.WaitFor(t, 60*time.Second, func(m []testpeer.Msg) bool {
		got, err := telemetry(m)
		return err == nil && len(missing(want, got)) == 0
	})
	got, err := telemetry(msgs)
	if err != nil {
		t.Fatal(err)
	}
	for p, vals := range got {
		if !want[p] || len(vals) != values {
			t.Errorf("unexpected point %v: %v", p, vals)
		}
	}

	// What each arrival counts against the platform's limits.
	type arrival struct {
		at         time.Time
		messages   int
		datapoints int
	}
	var arrivals []arrival
	for _, m := range msgs {
		a := arrival{at: m.Received, messages: 1}
		if m.Topic == "v1/gateway/telemetry" {
			var body map[string][]struct {
				Values map[string]json.RawMessage `json:"values"`
			}
			if err := json.Unmarshal(m.Payload, &body); err != nil {
				t.Fatal(err)
			}
			for _, entries := range body {
				for _, e := range entries {
					a.datapoints += len(e.Values)
				}
			}
			if a.datapoints > dpLimit*8/10 {
				t.Errorf("a message carries %d datapoints, more than the %d a window admits", a.datapoints, dpLimit*8/10)
			}
		}
		arrivals = append(arrivals, a)
	}
	sort.Slice(arrivals, func(i, k int) bool { return arrivals[i].at.Before(arrivals[k].at) })
	span := window - window/5
	for i, first := range arrivals {
		var n, dp int
		for _, a := range arrivals[i:] {
			if a.at.Sub(first.at) >= span {
				break
			}
			n += a.messages
			dp += a.datapoints
		}
		if n > msgLimit || dp > dpLimit {
			t.Fatalf("%d messages and %d datapoints arrived within %v from %v; limits %d and %d per %v",
				n, dp, span, first.at.Format("15:04:05.000"), msgLimit, dpLimit, window)
		}
	}
	// The backlog needs several windows at these limits; had it all come
	// in one, the limits were not in force.
	if d := arrivals[len(arrivals)-1].at.Sub(arrivals[0].at); d < window {
		t.Fatalf("everything arrived within %v", d)
	}
	testpeer.Eventually(t, 10*time.Second, "the journal to be acknowledged", func() error {
		if c, l := g.Journal().Cursor(), g.Journal().LastSeq(); c < l {
			return fmt.Errorf("journal acknowledged up to %d of %d", c, l)
		}
		return nil
	})
	if c := g.Counters(); c.PlatformRejected.Load() != 0 {
		t.Errorf("%d messages rejected", c.PlatformRejected.Load())
	}
	st := g.PlatformStats()
	if st.RateLimited == 0 || st.RateLimitWait <= 0 {
		t.Errorf("no publish waited for the rate limits: %+v", st)
	}
}

// backlog returns a journal holding a connect and perDevice telemetry
// events of values datapoints for each device, and the points it holds.
func backlog(t *testing.T, devices, perDevice, values int) (persistence.Journal, map[point]bool) {
	t.Helper()
	j := newMemoryJournal()
	var recs [][]byte
	want := map[point]bool{}
	for d := range devices {
		dev := fmt.Sprintf("rl-%d", d)
		ev := protocols.Event{Kind: protocols.EventConnect, Device: dev, DeviceType: "RateLimited"}
		recs = append(recs, ev.AppendBinary(nil))
		for i := range perDevice {
			ts := int64(1_700_000_000_000 + i)
			ev := protocols.Event{Kind: protocols.EventTelemetry, Device: dev, Ts: ts}
			for v := range values {
				ev.Values = append(ev.Values, protocols.Datapoint{Key: fmt.Sprintf("v%d", v), Value: protocols.Int(int64(i))})
			}
			recs = append(recs, ev.AppendBinary(nil))
			want[point{dev, ts}] = true
		}
	}
	if _, _, err := j.Append(recs); err != nil {
		t.Fatal(err)
	}
	return j, want
}

// quotaHook refuses the first publishes on v1/gateway/telemetry with PUBACK
// 0x97 "quota exceeded", as a platform over its limits does.
type quotaHook struct {
	mqtt.HookBase
	refuse atomic.Int32
}

func (h *quotaHook) ID() string           { return "quota" }
func (h *quotaHook) Provides(b byte) bool { return b == mqtt.OnPublish }
func (h *quotaHook) OnPublish(_ *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	if pk.TopicName == "v1/gateway/telemetry" && h.refuse.Add(-1) >= 0 {
		return pk, packets.ErrQuotaExceeded
	}
	return pk, nil
}

// TestPlatformQuotaRefusalsAreResent: telemetry the platform refuses for
// its quota is sent again after the window, never dropped, and the journal
// is acknowledged only once all of it arrived.
func TestPlatformQuotaRefusalsAreResent(t *testing.T) {
	platform := testpeer.StartMochi(t)
	hook := &quotaHook{}
	hook.refuse.Store(3)
	if err := platform.Server.AddHook(hook, nil); err != nil {
		t.Fatal(err)
	}
	testpeer.AnswerSessionLimits(t, platform.Addr(), `{"maxPayloadSize":65536,"maxInflightMessages":100,`+
		`"rateLimits":{},"gatewayRateLimits":{"messages":"100:1","telemetryMessages":"","telemetryDataPoints":""}}`)
	sub := testpeer.Subscribe(t, platform.Addr(), "v1/gateway/#")
	sub.WaitReady(t, 10*time.Second)

	j, want := backlog(t, 3, 5, 2)
	path := writeConfig(t, t.TempDir(), platform.Addr(), `{"type": "memory"}`, nil)
	g := startGateway(t, path, j)
	sub.WaitFor(t, 30*time.Second, func(m []testpeer.Msg) bool {
		got, err := telemetry(m)
		return err == nil && len(missing(want, got)) == 0
	})
	testpeer.Eventually(t, 10*time.Second, "the journal to be acknowledged", func() error {
		if c, l := g.Journal().Cursor(), g.Journal().LastSeq(); c < l {
			return fmt.Errorf("journal acknowledged up to %d of %d", c, l)
		}
		return nil
	})
	if n := hook.refuse.Load(); n >= 0 {
		t.Fatalf("the platform saw only %d telemetry publishes, refusing the first 3", 3-n)
	}
	if c := g.Counters(); c.PlatformRejected.Load() != 0 {
		t.Errorf("%d messages dropped as rejected", c.PlatformRejected.Load())
	}
	if st := g.PlatformStats(); st.QuotaExceeded < 1 || st.Rejected != 0 {
		t.Errorf("stats %+v", st)
	}
}
