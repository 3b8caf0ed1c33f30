package platform

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
	"github.com/rs/zerolog"

	"github.com/industryos/gateway/protocols/kit/testpeer"
)

func hourly(n int) []RateLimit { return []RateLimit{{Count: n, Per: time.Hour}} }

// TestThrottleScopes checks which limits each topic counts against: the
// gateway's own topics the session's rateLimits, v1/gateway/* its
// gatewayRateLimits; telemetry and attributes also telemetryMessages and
// their datapoints.
func TestThrottleScopes(t *testing.T) {
	th := newThrottle(zerolog.Nop())
	th.set(SessionLimits{
		Device:  RateLimits{Messages: hourly(100), TelemetryMessages: hourly(100), TelemetryDataPoints: hourly(100)},
		Gateway: RateLimits{Messages: hourly(100), TelemetryMessages: hourly(100), TelemetryDataPoints: hourly(100)},
	})
	ctx := context.Background()
	for _, c := range []struct {
		topic  string
		values int
	}{{TopicTelemetry, 7}, {TopicAttributes, 3}, {TopicConnect, 0}, {TopicMeTelemetry, 5}, {TopicMeRPCResponsePrefix + "1", 0}} {
		if _, err := th.admit(ctx, c.topic, c.values); err != nil {
			t.Fatal(err)
		}
	}
	used := func(l interface {
		Delay(time.Time, int) time.Duration
	}) int {
		// The largest take that fits leaves the rest used.
		for k := 100; k > 0; k-- {
			if l.Delay(time.Now(), k) == 0 {
				return 100 - k
			}
		}
		return -1
	}
	got := map[string]int{}
	th.gate.Do(func(time.Time) {
		got["gw messages"] = used(th.gw.messages)
		got["gw telemetry"] = used(th.gw.telemetry)
		got["gw points"] = used(th.gw.points)
		got["dev messages"] = used(th.dev.messages)
		got["dev telemetry"] = used(th.dev.telemetry)
		got["dev points"] = used(th.dev.points)
	})
	want := map[string]int{"gw messages": 3, "gw telemetry": 2, "gw points": 10, "dev messages": 2, "dev telemetry": 1, "dev points": 5}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("used %v, want %v", got, want)
	}
	if st := th.waits.Load(); st != 0 {
		t.Fatalf("%d waits within the limits", st)
	}
}

func TestHostDefaultLimits(t *testing.T) {
	for host, limited := range map[string]bool{
		"thingsboard.cloud": true, "eu.thingsboard.cloud": true, "mytb.cloud.example": true,
		"demo.thingsboard.io": true, "localhost": false, "10.0.0.1": false, "thingsboard.example": false,
	} {
		l := effectiveLimits(DefaultMaxPayload, host, linkLimits{}, nil)
		if !limited {
			if l.Device.Messages != nil || l.Gateway.TelemetryDataPoints != nil || l.MaxInflight != defaultMaxInflight {
				t.Errorf("%s: limits %+v", host, l)
			}
			continue
		}
		msgs := []RateLimit{{Count: 8, Per: time.Second}, {Count: 48, Per: time.Minute}}
		points := []RateLimit{{Count: 8, Per: time.Second}, {Count: 240, Per: time.Minute}}
		for _, r := range []RateLimits{l.Device, l.Gateway} {
			if !reflect.DeepEqual(r.Messages, msgs) || !reflect.DeepEqual(r.TelemetryMessages, msgs) ||
				!reflect.DeepEqual(r.TelemetryDataPoints, points) {
				t.Errorf("%s: limits %+v", host, r)
			}
		}
		if l.MaxInflight != 8 || l.MaxValues() != 8 {
			t.Errorf("%s: inflight %d, values %d", host, l.MaxInflight, l.MaxValues())
		}
		// The platform's answer replaces the defaults, "no limit" included.
		if a := effectiveLimits(DefaultMaxPayload, host, linkLimits{}, &serverLimits{}); a.Device.Messages != nil || a.MaxValues() != 0 {
			t.Errorf("%s: answered limits %+v", host, a)
		}
	}
}

// quotaHook refuses the first n publishes on topic with PUBACK 0x97, as a
// platform over its rate limit does.
type quotaHook struct {
	mqtt.HookBase
	topic string
	n     chan struct{}
}

func (h *quotaHook) ID() string           { return "quota" }
func (h *quotaHook) Provides(b byte) bool { return b == mqtt.OnPublish }
func (h *quotaHook) OnPublish(_ *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	if pk.TopicName == h.topic {
		select {
		case <-h.n:
			return pk, packets.ErrQuotaExceeded
		default:
		}
	}
	return pk, nil
}

func TestClientQuotaPubackExhaustsLimits(t *testing.T) {
	m := testpeer.StartMochi(t)
	hook := &quotaHook{topic: TopicTelemetry, n: make(chan struct{}, 1)}
	hook.n <- struct{}{}
	if err := m.Server.AddHook(hook, nil); err != nil {
		t.Fatal(err)
	}
	testpeer.AnswerSessionLimits(t, m.Addr(),
		`{"gatewayRateLimits":{"messages":"100:1,1000:3600","telemetryMessages":"","telemetryDataPoints":""}}`)
	cfg := testConfig(m.Addr())
	cfg.SessionLimitsTimeout = 5 * time.Second
	h := startClient(t, cfg)
	h.waitUp(8 * time.Second)
	if !h.c.Limits().FromPlatform {
		t.Fatal("session limits not answered")
	}
	ctx := context.Background()
	if _, err := h.c.Admit(ctx, TopicTelemetry, 1); err != nil {
		t.Fatal(err)
	}
	err := h.publish(TopicTelemetry, []byte(`{"A":[{"ts":1,"values":{"v":1}}]}`))
	var qe *QuotaError
	if !errors.Is(err, ErrQuotaExceeded) || !errors.As(err, &qe) || qe.Reason != ReasonQuotaExceeded {
		t.Fatalf("got %v, want a QuotaError 0x97", err)
	}
	// The 1 s window is closed now: the next message waits for it.
	var closed time.Duration
	h.c.throttle.gate.Do(func(now time.Time) { closed = h.c.throttle.gw.messages.Delay(now, 1) })
	if closed <= 0 || closed > time.Second {
		t.Fatalf("delay after the refusal %v, want (0, 1s]", closed)
	}
	if _, err := h.c.Admit(ctx, TopicTelemetry, 1); err != nil {
		t.Fatal(err)
	}
	if err := h.publish(TopicTelemetry, []byte(`{"A":[{"ts":1,"values":{"v":1}}]}`)); err != nil {
		t.Fatalf("resend: %v", err)
	}
	st := h.c.Stats()
	if st.QuotaExceeded != 1 || st.Rejected != 0 || st.RateLimited != 1 || st.RateLimitWait <= 0 {
		t.Errorf("stats %+v", st)
	}
	if !containsAll(h.log.String(), "pausing until the window passes", "publishing throttled") {
		t.Errorf("log:\n%s", h.log)
	}
}

func containsAll(s string, subs ...string) bool {
	for _, x := range subs {
		if !strings.Contains(s, x) {
			return false
		}
	}
	return true
}

func TestPayloadValues(t *testing.T) {
	for in, want := range map[string]int{
		`{"a":1,"b":"x"}`: 2,
		`[{"ts":1,"values":{"a":1,"b":2}},{"ts":2,"values":{"c":3}}]`: 3,
		`{"ts":1,"values":{"a":1}}`:                                   1,
		`{"Dev A":[{"ts":1,"values":{"a":1,"b":2}}]}`:                 2,
		`{"Dev A":{"fw":"1","m":2}}`:                                  2,
		`not json`:                                                    1,
	} {
		if got := PayloadValues([]byte(in)); got != want {
			t.Errorf("PayloadValues(%s) = %d, want %d", in, got, want)
		}
	}
}

// BenchmarkAdmit is the cost Admit adds to every publish: nothing but an
// atomic load without limits; a gate pass with limits that never bind.
//
//	go test -run - -bench Admit ./protocols/platform/
func BenchmarkAdmit(b *testing.B) {
	ctx := context.Background()
	b.Run("unlimited", func(b *testing.B) {
		th := newThrottle(zerolog.Nop())
		th.set(SessionLimits{})
		b.ReportAllocs()
		for b.Loop() {
			_, _ = th.admit(ctx, TopicTelemetry, 10)
		}
	})
	b.Run("limited", func(b *testing.B) {
		th := newThrottle(zerolog.Nop())
		big := []RateLimit{{Count: 1 << 40, Per: time.Second}, {Count: 1 << 50, Per: time.Minute}}
		th.set(SessionLimits{Gateway: RateLimits{Messages: big, TelemetryMessages: big, TelemetryDataPoints: big}})
		b.ReportAllocs()
		for b.Loop() {
			_, _ = th.admit(ctx, TopicTelemetry, 10)
		}
	})
}
