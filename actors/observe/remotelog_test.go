package observe

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

// platformStub records what a RemoteLog publishes; it can be "down".
type platformStub struct {
	mu       sync.Mutex
	payloads [][]byte
	down     bool
	calls    int
}

func (p *platformStub) publish(_ context.Context, payload []byte) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.calls++
	if p.down {
		return errors.New("platform not connected")
	}
	p.payloads = append(p.payloads, append([]byte(nil), payload...))
	return nil
}

func (p *platformStub) setDown(d bool) {
	p.mu.Lock()
	p.down = d
	p.mu.Unlock()
}

type rec struct {
	Ts     int64             `json:"ts"`
	Values map[string]string `json:"values"`
}

// records decodes every log payload (arrays of records) seen so far.
func (p *platformStub) records(t *testing.T) []rec {
	t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []rec
	for _, pl := range p.payloads {
		if pl[0] != '[' {
			continue // error counters
		}
		var rs []rec
		if err := json.Unmarshal(pl, &rs); err != nil {
			t.Fatalf("bad payload %s: %v", pl, err)
		}
		out = append(out, rs...)
	}
	return out
}

func (p *platformStub) counters(t *testing.T) []map[string]float64 {
	t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []map[string]float64
	for _, pl := range p.payloads {
		if pl[0] != '{' {
			continue
		}
		var r struct {
			Values map[string]float64 `json:"values"`
		}
		if err := json.Unmarshal(pl, &r); err != nil {
			t.Fatalf("bad payload %s: %v", pl, err)
		}
		out = append(out, r.Values)
	}
	return out
}

func TestParseRemoteLevel(t *testing.T) {
	for s, want := range map[string]zerolog.Level{"DEBUG": zerolog.DebugLevel, "info": zerolog.InfoLevel, "WARNING": zerolog.WarnLevel,
		"ERROR": zerolog.ErrorLevel, "CRITICAL": zerolog.FatalLevel, "TRACE": zerolog.TraceLevel} {
		if l, on, err := ParseRemoteLevel(s); err != nil || !on || l != want {
			t.Errorf("%s: %v %v %v", s, l, on, err)
		}
	}
	if _, on, err := ParseRemoteLevel("NONE"); on || err != nil {
		t.Error("NONE must turn remote logging off")
	}
	if _, _, err := ParseRemoteLevel("LOUD"); err == nil {
		t.Error("LOUD accepted")
	}
}

// TestRemoteLogLevels: lines at or above RemoteLoggingLevel reach the
// platform as SERVICE/CONNECTION/STORAGE_LOGS (and LOGS); below it they do
// not, and the local output keeps its own level.
func TestRemoteLogLevels(t *testing.T) {
	r := NewRemoteLog(RemoteLogOptions{})
	var local bytes.Buffer
	log := NewLogger(&local, zerolog.WarnLevel, r)
	p := &platformStub{}
	r.Start(Sink{Publish: p.publish})
	defer r.Stop()

	log.Warn().Msg("before any level: not sent")
	r.HandleGatewayAttributes(map[string]json.RawMessage{"RemoteLoggingLevel": json.RawMessage(`"DEBUG"`)})
	log.Debug().Str("k", "v 1").Msg("debug for the platform only")
	log.Info().Str("actor", "uplink").Msg("connection info")
	log.Warn().Str("component", "journal").Msg("storage warning")
	waitFor(t, "3 records", func() bool { return len(p.records(t)) == 3 })

	r.HandleGatewayAttributes(map[string]json.RawMessage{"RemoteLoggingLevel": json.RawMessage(`"WARNING"`), "other": json.RawMessage(`1`)})
	log.Info().Msg("info below the remote level")
	log.Error().Msg("an error")
	waitFor(t, "4 records", func() bool { return len(p.records(t)) == 4 })
	r.HandleGatewayAttributes(map[string]json.RawMessage{"RemoteLoggingLevel": json.RawMessage(`"NONE"`)})
	log.Error().Msg("after NONE")
	// Lines go out in order: once a marker logged after it arrives, a line
	// sent despite NONE would be there too.
	r.HandleGatewayAttributes(map[string]json.RawMessage{"RemoteLoggingLevel": json.RawMessage(`"ERROR"`)})
	log.Error().Msg("marker")
	waitFor(t, "the marker", func() bool {
		got := p.records(t)
		return len(got) > 0 && strings.Contains(got[len(got)-1].Values["LOGS"], "marker")
	})

	got := p.records(t)
	if len(got) != 5 {
		t.Fatalf("%d records: %+v", len(got), got)
	}
	got = got[:4]
	checks := []struct{ key, level, text string }{
		{"SERVICE_LOGS", "|DEBUG|", `debug for the platform only k="v 1"`},
		{"CONNECTION_LOGS", "|INFO|", "connection info"},
		{"STORAGE_LOGS", "|WARNING|", "storage warning"},
		{"SERVICE_LOGS", "|ERROR|", "an error"},
	}
	for i, c := range checks {
		line := got[i].Values[c.key]
		if !strings.Contains(line, c.level) || !strings.Contains(line, c.text) || got[i].Values["LOGS"] != line || len(got[i].Values) != 2 {
			t.Errorf("record %d: %+v, want %s with %s %q", i, got[i].Values, c.key, c.level, c.text)
		}
		if i > 0 && got[i].Ts <= got[i-1].Ts {
			t.Errorf("timestamps not increasing: %d then %d", got[i-1].Ts, got[i].Ts)
		}
	}
	out := local.String()
	if strings.Contains(out, "debug for the platform only") || strings.Contains(out, "connection info") || !strings.Contains(out, "storage warning") {
		t.Errorf("local output must keep its own level (warn):\n%s", out)
	}
}

// TestRemoteLogNeverBlocks: with the platform down the queue fills, further
// lines are dropped and counted, and logging stays fast; the queued lines
// arrive, in batches of at most 20, once the platform is back.
func TestRemoteLogNeverBlocks(t *testing.T) {
	r := NewRemoteLog(RemoteLogOptions{QueueSize: 50, Retry: 10 * time.Millisecond})
	log := NewLogger(&bytes.Buffer{}, zerolog.ErrorLevel, r)
	r.SetLevel(zerolog.InfoLevel, true)
	p := &platformStub{down: true}
	r.Start(Sink{Publish: p.publish})
	defer r.Stop()
	start := time.Now()
	for i := 0; i < 1000; i++ {
		log.Info().Int("i", i).Msg("line")
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("1000 log calls took %s with the platform down", d)
	}
	st := r.Stats()
	// One batch (at most 20) is held by the sender, 50 wait in the queue.
	if st.DroppedQueueFull < 1000-50-20 || st.Queued+st.DroppedQueueFull != 1000 {
		t.Errorf("stats %+v", st)
	}
	p.setDown(false)
	waitFor(t, "the queued lines", func() bool { return r.Stats().Sent == st.Queued })
	p.mu.Lock()
	for _, pl := range p.payloads {
		var rs []rec
		if json.Unmarshal(pl, &rs) == nil && len(rs) > 20 {
			t.Errorf("batch of %d records", len(rs))
		}
	}
	p.mu.Unlock()
}

// TestRemoteLogPayloadLimit: batches are split to fit the session's maximum
// payload, and a line longer than that is cut.
func TestRemoteLogPayloadLimit(t *testing.T) {
	r := NewRemoteLog(RemoteLogOptions{Retry: 10 * time.Millisecond})
	log := NewLogger(&bytes.Buffer{}, zerolog.ErrorLevel, r)
	r.SetLevel(zerolog.InfoLevel, true)
	p := &platformStub{down: true} // hold everything until all lines are queued
	r.Start(Sink{Publish: p.publish, MaxPayload: func() int { return 1000 }})
	defer r.Stop()
	for i := 0; i < 10; i++ {
		log.Info().Msg(strings.Repeat("x", 100))
	}
	log.Info().Msg(strings.Repeat("y", 5000))
	p.setDown(false)
	waitFor(t, "11 records", func() bool { return len(p.records(t)) == 11 })
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.payloads) < 3 {
		t.Errorf("%d payloads; 11 lines of this size need several", len(p.payloads))
	}
	for _, pl := range p.payloads {
		if len(pl) > 1000 {
			t.Errorf("payload of %d bytes exceeds the limit", len(pl))
		}
	}
}

// TestRemoteLogConnectors: connector lines are sent under <name>_LOGS only
// for connectors with enableRemoteLogging; errors are counted for all.
func TestRemoteLogConnectors(t *testing.T) {
	r := NewRemoteLog(RemoteLogOptions{ErrorsEvery: 20 * time.Millisecond})
	log := NewLogger(&bytes.Buffer{}, zerolog.Disabled, r)
	r.SetLevel(zerolog.InfoLevel, true)
	p := &platformStub{}
	var ticks atomic.Int64 // Connectors is asked at every tick, just before the counters are sent
	r.Start(Sink{Publish: p.publish, Connectors: func() map[string]bool {
		ticks.Add(1)
		return map[string]bool{"Modbus A": true}
	}})
	defer r.Stop()
	log.Warn().Str("connector", "Modbus A").Str("device", "plc").Msg("poll failed")
	log.Error().Str("connector", "Quiet \"B\"").Msg("not sent, but counted")
	log.Error().Str("connector", "Modbus A").Msg("sent and counted")
	log.Error().Msg("service error")
	waitFor(t, "2 records and the error counters", func() bool {
		c := p.counters(t)
		return len(p.records(t)) == 3 && len(c) > 0 && c[len(c)-1]["ALL_ERRORS_COUNT"] == 3
	})
	recs := p.records(t)
	if l := recs[0].Values["Modbus A_LOGS"]; !strings.Contains(l, "[Modbus A/plc] - poll failed") {
		t.Errorf("connector record: %+v", recs[0].Values)
	}
	c := p.counters(t)
	last := c[len(c)-1]
	if last[`Quiet "B"_ERRORS_COUNT`] != 1 || last["Modbus A_ERRORS_COUNT"] != 1 || last["SERVICE_ERRORS_COUNT"] != 1 {
		t.Errorf("error counters %v", last)
	}
	// Counters are sent only when they change.
	n := len(p.counters(t))
	// The second tick from now starts after the first one sent whatever it
	// would send.
	t0 := ticks.Load()
	waitFor(t, "two more ticks", func() bool { return ticks.Load() >= t0+2 })
	if m := len(p.counters(t)); m != n {
		t.Errorf("unchanged counters sent again (%d → %d messages)", n, m)
	}
}

func TestComponentKey(t *testing.T) {
	for line, want := range map[string]string{
		`{"level":"info","connector":"A \"x\"","message":"m"}`: `A "x"`,
		`{"level":"info","actor":"uplink","message":"m"}`:      KeyConnection,
		`{"level":"info","actor":"journal"}`:                   KeyStorage,
		`{"level":"info","actor":"registry"}`:                  KeyService,
		`{"level":"info","message":"\"connector\":\"no\""}`:    KeyService,
	} {
		if got, _ := componentKey([]byte(line)); got != want {
			t.Errorf("%s: %q, want %q", line, got, want)
		}
	}
}

// BenchmarkLogRemoteOff is the cost remote logging adds to a line that is
// logged locally while the remote level is NONE.
func BenchmarkLogRemoteOff(b *testing.B) {
	r := NewRemoteLog(RemoteLogOptions{})
	log := NewLogger(zerologDiscard{}, zerolog.InfoLevel, r)
	for i := 0; i < b.N; i++ {
		log.Info().Str("device", "plc").Int("i", i).Msg("poll")
	}
}

// BenchmarkLogDebugFiltered: a debug line on an info logger with remote
// logging on at WARNING is not built at all.
func BenchmarkLogDebugFiltered(b *testing.B) {
	r := NewRemoteLog(RemoteLogOptions{})
	r.SetLevel(zerolog.WarnLevel, true)
	log := NewLogger(zerologDiscard{}, zerolog.InfoLevel, r)
	for i := 0; i < b.N; i++ {
		log.Debug().Str("device", "plc").Int("i", i).Msg("poll")
	}
}

type zerologDiscard struct{}

func (zerologDiscard) Write(p []byte) (int, error) { return len(p), nil }
