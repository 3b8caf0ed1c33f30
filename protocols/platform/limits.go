package platform

import (
	"encoding/json"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/eclipse/paho.golang/paho"

	"github.com/industryos/gateway/protocols/kit/ratelimit"
)

// limitFactor keeps us below every server limit, as the upstream SDK does
// (TB_DEFAULT_RATE_LIMIT_PERCENTAGE): the platform's own accounting is not
// exactly ours (headers, clock skew of its windows), and hitting a limit
// costs a disconnect.
const limitFactor = 0.8

// defaultMaxInflight applies when the platform does not limit in-flight
// messages (upstream's value for "0").
const defaultMaxInflight = 10000

// RateLimit is one "count:seconds" window.
type RateLimit = ratelimit.Window

// RateLimits are the platform's per-session message limits.
type RateLimits struct {
	Messages            []RateLimit
	TelemetryMessages   []RateLimit
	TelemetryDataPoints []RateLimit
}

// SessionLimits are the effective limits of the current session: the
// platform's values after the 0.8 safety factor, or the defaults when it did
// not say.
type SessionLimits struct {
	// MaxPayload is the largest payload to publish, in bytes.
	MaxPayload int
	// MaxInflight is how many QoS 1 publishes may await a PUBACK at once.
	MaxInflight int
	// Device applies to the gateway's own messages (v1/devices/me/*).
	Device RateLimits
	// Gateway applies to messages for child devices (v1/gateway/*).
	Gateway RateLimits
	// FromPlatform is true when the platform answered getSessionLimits.
	FromPlatform bool
}

// ParseRateLimits parses the platform's "count:seconds" list, e.g.
// "10:1,300:60" (',' or ';' separated). "0:0" and empty entries mean no
// limit and are skipped. The values are returned as given, unscaled.
func ParseRateLimits(s string) ([]RateLimit, error) { return ratelimit.Parse(s) }

// serverLimits is the getSessionLimits answer, unscaled.
type serverLimits struct {
	MaxPayloadSize      int64
	MaxInflightMessages int64
	Device, Gateway     RateLimits
}

type rateLimitsJSON struct {
	Messages            string `json:"messages"`
	TelemetryMessages   string `json:"telemetryMessages"`
	TelemetryDataPoints string `json:"telemetryDataPoints"`
}

func (r rateLimitsJSON) parse() (RateLimits, error) {
	var out RateLimits
	var err error
	if out.Messages, err = ParseRateLimits(r.Messages); err != nil {
		return out, err
	}
	if out.TelemetryMessages, err = ParseRateLimits(r.TelemetryMessages); err != nil {
		return out, err
	}
	out.TelemetryDataPoints, err = ParseRateLimits(r.TelemetryDataPoints)
	return out, err
}

func parseSessionLimits(b []byte) (serverLimits, error) {
	var raw struct {
		MaxPayloadSize      float64        `json:"maxPayloadSize"`
		MaxInflightMessages float64        `json:"maxInflightMessages"`
		RateLimits          rateLimitsJSON `json:"rateLimits"`
		GatewayRateLimits   rateLimitsJSON `json:"gatewayRateLimits"`
	}
	var s serverLimits
	if err := json.Unmarshal(b, &raw); err != nil {
		return s, fmt.Errorf("session limits: %w", err)
	}
	if raw.MaxPayloadSize < 0 || raw.MaxInflightMessages < 0 ||
		raw.MaxPayloadSize > math.MaxInt32 || raw.MaxInflightMessages > math.MaxInt32 {
		return s, fmt.Errorf("session limits: values out of range")
	}
	s.MaxPayloadSize = int64(raw.MaxPayloadSize)
	s.MaxInflightMessages = int64(raw.MaxInflightMessages)
	var err error
	if s.Device, err = raw.RateLimits.parse(); err != nil {
		return s, fmt.Errorf("session limits: rateLimits: %w", err)
	}
	if s.Gateway, err = raw.GatewayRateLimits.parse(); err != nil {
		return s, fmt.Errorf("session limits: gatewayRateLimits: %w", err)
	}
	return s, nil
}

// linkLimits are what the broker announced in CONNACK; 0 means not sent.
type linkLimits struct {
	receiveMax int
	maxPacket  int
}

func linkFromConnack(ca *paho.Connack) linkLimits {
	var l linkLimits
	if ca == nil || ca.Properties == nil {
		return l
	}
	if ca.Properties.ReceiveMaximum != nil {
		l.receiveMax = int(*ca.Properties.ReceiveMaximum)
	}
	if ca.Properties.MaximumPacketSize != nil {
		l.maxPacket = int(min(*ca.Properties.MaximumPacketSize, math.MaxInt32))
	}
	return l
}

func scale(n int64) int {
	return max(1, int(float64(n)*limitFactor))
}

func scaleAll(in []RateLimit) []RateLimit { return ratelimit.Scale(in, limitFactor) }

func (r RateLimits) scaled() RateLimits {
	return RateLimits{
		Messages:            scaleAll(r.Messages),
		TelemetryMessages:   scaleAll(r.TelemetryMessages),
		TelemetryDataPoints: scaleAll(r.TelemetryDataPoints),
	}
}

// MaxValues is the most datapoints one telemetry or attribute message may
// carry: the smallest data-point window of either scope, 0 for no limit. A
// message with more could never pass the platform's data-point limit.
func (l SessionLimits) MaxValues() int {
	n := 0
	for _, ws := range [][]RateLimit{l.Device.TelemetryDataPoints, l.Gateway.TelemetryDataPoints} {
		for _, w := range ws {
			if n == 0 || w.Count < n {
				n = w.Count
			}
		}
	}
	return n
}

// hostDefaultLimits are the limits in force before the platform answers
// getSessionLimits (and when it never does): none, except for the public
// ThingsBoard cloud and demo hosts, whose limits the upstream SDK knows
// (COMPAT §1.2). They apply to both scopes and are unscaled.
func hostDefaultLimits(host string) RateLimits {
	cloud := strings.Contains(host, "thingsboard.cloud") ||
		(strings.Contains(host, "tb") && strings.Contains(host, "cloud")) ||
		strings.Contains(host, "demo.thingsboard.io")
	if !cloud {
		return RateLimits{}
	}
	msgs := []RateLimit{{Count: 10, Per: time.Second}, {Count: 60, Per: time.Minute}}
	return RateLimits{
		Messages:            msgs,
		TelemetryMessages:   msgs,
		TelemetryDataPoints: []RateLimit{{Count: 10, Per: time.Second}, {Count: 300, Per: time.Minute}},
	}
}

// effectiveLimits combines the configured default payload size, the CONNACK
// properties and the platform's answer (nil when it never came; then the
// host's defaults apply). Every bound is scaled by limitFactor; the
// tightest bound wins. The smallest message rate-limit window also bounds
// in-flight messages: more could never be acknowledged within that window
// anyway.
func effectiveLimits(defaultPayload int, host string, link linkLimits, srv *serverLimits) SessionLimits {
	l := SessionLimits{MaxPayload: defaultPayload, MaxInflight: defaultMaxInflight}
	var inflight int64 // tightest unscaled server bound, 0 = none
	tighten := func(n int64) {
		if n > 0 && (inflight == 0 || n < inflight) {
			inflight = n
		}
	}
	if srv != nil {
		l.FromPlatform = true
		if srv.MaxPayloadSize > 0 {
			l.MaxPayload = scale(srv.MaxPayloadSize)
		}
		tighten(srv.MaxInflightMessages)
		for _, rl := range [][]RateLimit{srv.Device.Messages, srv.Gateway.Messages} {
			for _, r := range rl {
				tighten(int64(r.Count))
			}
		}
		l.Device = srv.Device.scaled()
		l.Gateway = srv.Gateway.scaled()
	} else if def := hostDefaultLimits(host); def.Messages != nil {
		for _, r := range def.Messages {
			tighten(int64(r.Count))
		}
		l.Device = def.scaled()
		l.Gateway = l.Device
	}
	tighten(int64(link.receiveMax))
	if inflight > 0 {
		l.MaxInflight = scale(inflight)
	}
	if link.maxPacket > 0 {
		l.MaxPayload = min(l.MaxPayload, scale(int64(link.maxPacket)))
	}
	return l
}
