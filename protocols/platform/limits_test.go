package platform

import (
	"math"
	"reflect"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
)

func TestParseRateLimits(t *testing.T) {
	cases := []struct {
		in   string
		want []RateLimit
		err  bool
	}{
		{"", nil, false},
		{"0:0,", nil, false},
		{"10:1,300:60", []RateLimit{{Count: 10, Per: time.Second}, {Count: 300, Per: time.Minute}}, false},
		{" 10:1 ; 300:60 ;", []RateLimit{{Count: 10, Per: time.Second}, {Count: 300, Per: time.Minute}}, false},
		{"10", nil, true},
		{"a:1", nil, true},
		{"-1:1", nil, true},
	}
	for _, c := range cases {
		got, err := ParseRateLimits(c.in)
		if (err != nil) != c.err || !reflect.DeepEqual(got, c.want) {
			t.Errorf("%q: %v %v", c.in, got, err)
		}
	}
}

func TestParseSessionLimits(t *testing.T) {
	s, err := parseSessionLimits([]byte(`{"maxPayloadSize":65536,"maxInflightMessages":100,` +
		`"rateLimits":{"messages":"10:1,300:60","telemetryMessages":"","telemetryDataPoints":"100:1"},` +
		`"gatewayRateLimits":{"messages":"50:1","telemetryMessages":"20:1","telemetryDataPoints":"0:0,"}}`))
	if err != nil {
		t.Fatal(err)
	}
	if s.MaxPayloadSize != 65536 || s.MaxInflightMessages != 100 ||
		len(s.Device.Messages) != 2 || len(s.Device.TelemetryDataPoints) != 1 ||
		len(s.Gateway.Messages) != 1 || s.Gateway.TelemetryDataPoints != nil {
		t.Errorf("%+v", s)
	}
	for _, bad := range []string{`nope`, `{"maxPayloadSize":-1}`, `{"rateLimits":{"messages":"x"}}`, `{"maxPayloadSize":1e300}`} {
		if _, err := parseSessionLimits([]byte(bad)); err == nil {
			t.Errorf("%s accepted", bad)
		}
	}
	if _, err := parseSessionLimits([]byte(`{}`)); err != nil {
		t.Errorf("empty answer: %v", err)
	}
}

func u16(v uint16) *uint16 { return &v }
func u32(v uint32) *uint32 { return &v }

func TestEffectiveLimits(t *testing.T) {
	srv := func(payload, inflight int64, msgs ...RateLimit) *serverLimits {
		return &serverLimits{MaxPayloadSize: payload, MaxInflightMessages: inflight, Device: RateLimits{Messages: msgs}}
	}
	cases := []struct {
		name              string
		link              linkLimits
		srv               *serverLimits
		payload, inflight int
	}{
		{"nothing known", linkLimits{}, nil, 8196, defaultMaxInflight},
		{"connack only", linkLimits{receiveMax: 100, maxPacket: 5000}, nil, 4000, 80},
		{"connack packet size above default", linkLimits{maxPacket: 1 << 20}, nil, 8196, defaultMaxInflight},
		{"platform answer", linkLimits{}, srv(1000, 50), 800, 40},
		{"platform without inflight", linkLimits{}, srv(1000, 0), 800, defaultMaxInflight},
		{"platform payload above default", linkLimits{}, srv(65536, 0), 52428, defaultMaxInflight},
		{"rate limit bounds inflight", linkLimits{receiveMax: 1024}, srv(0, 100, RateLimit{Count: 10, Per: time.Second}), 8196, 8},
		{"tightest wins", linkLimits{receiveMax: 20, maxPacket: 500}, srv(1000, 100), 400, 16},
		{"never below one", linkLimits{receiveMax: 1}, nil, 8196, 1},
	}
	for _, c := range cases {
		l := effectiveLimits(DefaultMaxPayload, "localhost", c.link, c.srv)
		if l.MaxPayload != c.payload || l.MaxInflight != c.inflight || l.FromPlatform != (c.srv != nil) {
			t.Errorf("%s: %+v", c.name, l)
		}
	}
	l := effectiveLimits(DefaultMaxPayload, "localhost", linkLimits{}, &serverLimits{
		Gateway: RateLimits{TelemetryDataPoints: []RateLimit{{Count: 100, Per: time.Second}, {Count: 1, Per: time.Hour}}}})
	if !reflect.DeepEqual(l.Gateway.TelemetryDataPoints, []RateLimit{{Count: 80, Per: time.Second}, {Count: 1, Per: time.Hour}}) {
		t.Errorf("scaled rate limits: %+v", l.Gateway)
	}
}

func TestLinkFromConnack(t *testing.T) {
	if l := linkFromConnack(nil); l != (linkLimits{}) {
		t.Error(l)
	}
	ca := &paho.Connack{Properties: &paho.ConnackProperties{ReceiveMaximum: u16(7), MaximumPacketSize: u32(math.MaxUint32)}}
	if l := linkFromConnack(ca); l.receiveMax != 7 || l.maxPacket != math.MaxInt32 {
		t.Error(l)
	}
}
