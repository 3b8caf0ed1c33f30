package platform

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/industryos/gateway/protocols/kit/ratelimit"
)

// ErrQuotaExceeded is wrapped by the error of a publish the platform refused
// because a rate limit was reached (PUBACK 0x97 "quota exceeded", or 0x83
// "implementation specific error", which ThingsBoard also uses for it). The
// platform did not take the message: send it again. The session's limiters
// are marked exhausted, so the next Admit waits.
var ErrQuotaExceeded = errors.New("platform: rate limit reached")

// QuotaError is a publish refused for lack of quota; errors.Is(err,
// ErrQuotaExceeded) holds for it.
type QuotaError struct {
	Topic  string
	Reason byte
	Detail string
}

func (e *QuotaError) Error() string {
	s := fmt.Sprintf("platform refused publish to %s for its rate limits: reason 0x%02x", e.Topic, e.Reason)
	if e.Detail != "" {
		s += " (" + e.Detail + ")"
	}
	return s
}

func (e *QuotaError) Is(target error) bool { return target == ErrQuotaExceeded }

// PUBACK reason codes meaning "rate limit reached", as the upstream SDK
// reads them.
const (
	ReasonQuotaExceeded          = 0x97 // 151
	ReasonImplementationSpecific = 0x83 // 131
	// reasonMessageRateTooHigh (150) in a DISCONNECT, like 151 there, means
	// the whole session went over a limit.
	reasonMessageRateTooHigh = 0x96
)

func isQuotaReason(r byte) bool {
	return r == ReasonQuotaExceeded || r == ReasonImplementationSpecific
}

// limiterSet is the three limits of one scope.
type limiterSet struct {
	messages, telemetry, points *ratelimit.Limiter
}

func newLimiterSet() limiterSet {
	return limiterSet{ratelimit.New(), ratelimit.New(), ratelimit.New()}
}

func (s limiterSet) set(r RateLimits) {
	s.messages.SetWindows(r.Messages)
	s.telemetry.SetWindows(r.TelemetryMessages)
	s.points.SetWindows(r.TelemetryDataPoints)
}

func (s limiterSet) limited() bool {
	return s.messages.Limited() || s.telemetry.Limited() || s.points.Limited()
}

func (s limiterSet) each(f func(name string, l *ratelimit.Limiter)) {
	f("messages", s.messages)
	f("telemetryMessages", s.telemetry)
	f("telemetryDataPoints", s.points)
}

// throttle enforces the session's rate limits on publishes. Device limits
// (the session's rateLimits) cover the gateway's own v1/devices/me/*
// messages, gateway limits (gatewayRateLimits) the v1/gateway/* messages
// for child devices. As in the upstream SDK, telemetry and attribute
// messages count against telemetryMessages and telemetryDataPoints (their
// datapoints); unlike it, every message also counts against messages,
// which is what the platform's "messages" limit counts.
type throttle struct {
	gate    ratelimit.Gate
	dev, gw limiterSet
	active  atomic.Bool // any limit at all: the unlimited path skips the gate
	log     zerolog.Logger
	logGate ratelimit.Limiter // one "throttling" line per interval

	waits     atomic.Uint64 // admissions that had to wait
	waitNanos atomic.Int64  // total time spent waiting
	quota     atomic.Uint64 // publishes refused for lack of quota
	sinceLog  atomic.Uint64 // waits since the last log line
}

// throttleLogInterval spaces the Info lines about throttling.
const throttleLogInterval = 30 * time.Second

func newThrottle(log zerolog.Logger) *throttle {
	t := &throttle{dev: newLimiterSet(), gw: newLimiterSet(), log: log}
	t.logGate.SetWindows([]ratelimit.Window{{Count: 1, Per: throttleLogInterval}})
	return t
}

// set installs new limits; what was sent in an unchanged window still counts.
func (t *throttle) set(l SessionLimits) {
	t.gate.Do(func(time.Time) {
		t.dev.set(l.Device)
		t.gw.set(l.Gateway)
		t.active.Store(t.dev.limited() || t.gw.limited())
	})
}

// classify returns the limits a publish to topic counts against.
func (t *throttle) classify(topic string) (s limiterSet, telemetry bool) {
	if strings.HasPrefix(topic, "v1/gateway/") {
		return t.gw, topic == TopicTelemetry || topic == TopicAttributes
	}
	return t.dev, topic == TopicMeTelemetry || topic == TopicMeAttributes
}

// admit waits until a message to topic with values datapoints fits the
// limits and charges it.
func (t *throttle) admit(ctx context.Context, topic string, values int) (time.Duration, error) {
	if !t.active.Load() {
		return 0, nil
	}
	s, tel := t.classify(topic)
	costs := [3]ratelimit.Cost{{L: s.messages, N: 1}}
	n := 1
	if tel {
		costs[1] = ratelimit.Cost{L: s.telemetry, N: 1}
		costs[2] = ratelimit.Cost{L: s.points, N: values}
		n = 3
	}
	waited, err := t.gate.Wait(ctx, costs[:n]...)
	if waited > 0 {
		t.waits.Add(1)
		t.waitNanos.Add(int64(waited))
		t.sinceLog.Add(1)
		var logNow bool
		t.gate.Do(func(now time.Time) { logNow = t.logGate.Allow(now, 1) })
		if logNow {
			t.log.Info().Str("topic", topic).Dur("waited", waited).Uint64("throttled_since_last_line", t.sinceLog.Swap(0)).
				Msg("publishing throttled by the platform's rate limits; data waits in the journal")
		}
	}
	return waited, err
}

// exhausted marks topic's limits as reached after the platform refused a
// publish for its quota.
func (t *throttle) exhausted(topic string) {
	t.quota.Add(1)
	s, tel := t.classify(topic)
	var closed []string
	t.gate.Do(func(now time.Time) {
		s.each(func(name string, l *ratelimit.Limiter) {
			if !tel && l != s.messages {
				return
			}
			if w, ok := l.Exhaust(now); ok {
				closed = append(closed, name+" "+w.String())
			}
		})
	})
	if len(closed) > 0 {
		t.log.Info().Str("topic", topic).Strs("closed", closed).
			Msg("platform refused a publish for its rate limits; pausing until the window passes")
	}
}

// exhaustedAll marks every limit as reached: the platform closed the
// session for its rate limits without saying which.
func (t *throttle) exhaustedAll() {
	t.quota.Add(1)
	t.gate.Do(func(now time.Time) {
		for _, s := range []limiterSet{t.dev, t.gw} {
			s.each(func(_ string, l *ratelimit.Limiter) { l.Exhaust(now) })
		}
	})
	t.log.Info().Msg("platform closed the session for its rate limits; pausing until the windows pass")
}

// succeeded ends an exhaustion episode of topic's limits.
func (t *throttle) succeeded(topic string) {
	if !t.active.Load() {
		return
	}
	s, _ := t.classify(topic)
	t.gate.Do(func(time.Time) { s.each(func(_ string, l *ratelimit.Limiter) { l.Succeeded() }) })
}

// PayloadValues counts the datapoints of a telemetry or attribute payload
// built elsewhere than Pack (statistics, remote logs): the keys of an
// object, of each {"ts","values"} entry's values, or of each device's data
// in a v1/gateway/* payload. Unparsable payloads count as one.
func PayloadValues(payload []byte) int {
	var v any
	if json.Unmarshal(payload, &v) != nil {
		return 1
	}
	return countValues(v, 0)
}

func countValues(v any, depth int) int {
	switch x := v.(type) {
	case []any:
		n := 0
		for _, e := range x {
			n += countValues(e, depth)
		}
		return n
	case map[string]any:
		if vals, ok := x["values"].(map[string]any); ok {
			if _, ts := x["ts"]; ts {
				return len(vals)
			}
		}
		if depth == 0 {
			// {"Dev A":[...]} or {"Dev A":{...}}: a gateway payload when
			// every value is itself an object or array.
			n, nested := 0, true
			for _, e := range x {
				switch e.(type) {
				case []any, map[string]any:
					n += countValues(e, 1)
				default:
					nested = false
				}
			}
			if nested && len(x) > 0 {
				return n
			}
		}
		return len(x)
	}
	return 1
}
