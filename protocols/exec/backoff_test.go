package exec

import (
	"context"
	"encoding/json"
	"sync"
	"testing"
	"time"

	"github.com/industryos/gateway/protocols/kit/sinktest"
)

// fakeClock is time as the test moves it: After hands each requested delay
// to the test, which fires it when it wants.
type fakeClock struct {
	mu    sync.Mutex
	now   time.Time
	waits chan fakeWait
}

type fakeWait struct {
	d    time.Duration
	fire chan time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{now: time.Unix(1_700_000_000, 0), waits: make(chan fakeWait, 16)}
}

func (f *fakeClock) Now() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.now
}

func (f *fakeClock) Advance(d time.Duration) {
	f.mu.Lock()
	f.now = f.now.Add(d)
	f.mu.Unlock()
}

func (f *fakeClock) After(d time.Duration) <-chan time.Time {
	w := fakeWait{d: d, fire: make(chan time.Time, 1)}
	f.waits <- w
	return w.fire
}

// next waits for Run's next restart delay, checks it and fires it.
func (f *fakeClock) next(t *testing.T, want time.Duration) {
	t.Helper()
	select {
	case w := <-f.waits:
		if w.d != want {
			t.Fatalf("restart delay %v, want %v", w.d, want)
		}
		w.fire <- f.Now().Add(w.d)
	case <-time.After(wait):
		t.Fatalf("no restart delay asked for (want %v)", want)
	}
}

// A program that exits at once is restarted after delays that double up
// to maxRestartDelay; a run that lasts stableAfter (on the injected clock)
// resets the delay. No real time passes between runs.
func TestRestartBackoff(t *testing.T) {
	// Runs 1-4 and 6 exit at once; run 5 prints a record and waits for a
	// line on stdin.
	prog := `
n=$(cat runs 2>/dev/null || echo 0); n=$((n+1)); echo $n > runs
echo "{\"device\": \"d\", \"telemetry\": {\"run\": $n}}"
if [ $n -eq 5 ]; then read x; fi
exit 1
`
	clk := newFakeClock()
	c := newConnector(t, `{"command": ["/bin/sh", "prog.sh"], "restartDelay": 100, "maxRestartDelay": 400, "stableAfter": 60000}`,
		map[string]string{"prog.sh": prog}, WithClock(clk))
	s := sinktest.New()
	sinktest.Run(t, c, s)
	clk.next(t, 100*time.Millisecond)
	clk.next(t, 200*time.Millisecond)
	clk.next(t, 400*time.Millisecond)
	clk.next(t, 400*time.Millisecond) // capped at maxRestartDelay
	s.Wait(t, wait, "run 5 running", func() bool { return len(s.Values("d", "run")) == 5 && c.cur.Load() != nil })
	clk.Advance(time.Minute)
	// A line on stdin ends run 5, which lasted stableAfter: the delay resets.
	if _, err := c.Commander("d", "").UpdateAttributes(context.Background(), map[string]json.RawMessage{"go": json.RawMessage(`1`)}); err != nil {
		t.Fatal(err)
	}
	clk.next(t, 100*time.Millisecond)
	clk.next(t, 200*time.Millisecond) // run 6 exited at once again
	s.Wait(t, wait, "run 7 started", func() bool { return c.Stats().Starts == 7 })
	if st := c.Stats(); st.Restarts != 6 || st.Records < 6 || st.Malformed != 0 {
		t.Fatalf("stats %+v", st)
	}
}

// A command the program cannot take (it closed its stdin) fails and is
// counted; Metrics reports every counter.
func TestStdinErrorsAndMetrics(t *testing.T) {
	c := newConnector(t, `{"command": ["/bin/sh", "prog.sh"]}`, map[string]string{"prog.sh": `
exec 0<&-
echo 'bad line'
echo '{"device": "d", "telemetry": {"a": 1}}'
exec sleep 600
`})
	s := sinktest.New()
	sinktest.Run(t, c, s)
	s.Wait(t, wait, "the record", func() bool { return len(s.Values("d", "a")) == 1 && c.Stats().Malformed == 1 })
	if _, err := c.Commander("d", "").UpdateAttributes(context.Background(), map[string]json.RawMessage{"x": json.RawMessage(`1`)}); err == nil {
		t.Fatal("an update to a closed stdin succeeded")
	}
	got := map[string]float64{}
	for _, m := range c.Metrics() {
		if m.Gauge || m.Help == "" {
			t.Errorf("metric %+v", m)
		}
		got[m.Name] = m.Value
	}
	want := map[string]float64{"exec_restarts_total": 0, "exec_malformed_lines_total": 1, "exec_records_total": 1, "exec_stdin_write_errors_total": 1}
	if len(got) != len(want) {
		t.Fatalf("metrics %v", got)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %v, want %v", k, got[k], v)
		}
	}
}
