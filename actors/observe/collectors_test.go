package observe

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/industryos/gateway/persistence"
	"github.com/industryos/gateway/protocols"
)

func TestDeviceMetrics(t *testing.T) {
	m := New(Options{NoProcess: true})
	d := m.Device("bus", "plc")
	if m.Device("bus", "plc") != d {
		t.Fatal("a device's instruments must survive its actor's restarts")
	}
	d.Polled(0.002, 10, nil, 1700000000)
	d.Polled(1.5, 0, fmt.Errorf("slave 1: %w", protocols.ErrTimeout), 1700000001)
	d.Polled(0.003, 4, fmt.Errorf("read 2: %w", protocols.ErrException), 1700000002)
	d.Polled(0.001, 0, errors.New("strange"), 1700000003)
	d.Skipped(0)
	d.Skipped(3)
	reg := m.Registry()
	dl := map[string]string{"connector": "bus", "device": "plc"}
	if v := mustSample(t, reg, "iotgw_device_polls_skipped_total", dl); v != 3 {
		t.Errorf("skipped ticks %v", v)
	}
	if v := mustSample(t, reg, "iotgw_device_polls_total", dl); v != 4 {
		t.Errorf("polls %v", v)
	}
	if v := mustSample(t, reg, "iotgw_device_values_total", dl); v != 14 {
		t.Errorf("values %v (partial readings of failed polls count)", v)
	}
	if v := mustSample(t, reg, "iotgw_device_poll_duration_seconds", dl); v != 4 {
		t.Errorf("latency samples %v", v)
	}
	if v := mustSample(t, reg, "iotgw_device_last_success_timestamp_seconds", dl); v != 1700000000 {
		t.Errorf("last success %v", v)
	}
	for kind, want := range map[string]float64{"timeout": 1, "exception": 1, "io": 0, "other": 1} {
		if v := mustSample(t, reg, "iotgw_device_poll_errors_total", map[string]string{"device": "plc", "kind": kind}); v != want {
			t.Errorf("errors{kind=%s} = %v, want %v", kind, v, want)
		}
	}
}

// TestJournalMetrics: one Stats snapshot per scrape, so appended - acked -
// dropped == depth; commits are timed; bounds still get enforced through
// the wrapper.
func TestJournalMetrics(t *testing.T) {
	now := time.Unix(1700000000, 0)
	inner := persistence.OpenMemory(persistence.Options{Limits: persistence.Limits{MaxRecords: 5}, Now: func() time.Time { return now }})
	var j persistence.Journal = inner
	m := New(Options{NoProcess: true, Journal: func() persistence.Journal { return j }})
	j = m.InstrumentJournal(inner)
	if _, ok := j.(persistence.Enforcer); !ok {
		t.Fatal("the wrapper hides Enforce")
	}
	for i := 0; i < 4; i++ {
		if _, _, err := j.Append([][]byte{[]byte("a"), []byte("bb")}); err != nil {
			t.Fatal(err)
		}
	}
	if err := j.Ack(6); err != nil {
		t.Fatal(err)
	}
	reg := m.Registry()
	app := mustSample(t, reg, "iotgw_journal_appended_total", nil)
	acked := mustSample(t, reg, "iotgw_journal_acked_total", nil)
	dropped := mustSample(t, reg, "iotgw_journal_dropped_total", map[string]string{"cause": "max_records"})
	depth := mustSample(t, reg, "iotgw_journal_depth_events", nil)
	if app != 8 || dropped != 3 || acked != 3 || app-acked-dropped != depth || depth != 2 {
		t.Errorf("appended %v acked %v dropped %v depth %v", app, acked, dropped, depth)
	}
	if v := mustSample(t, reg, "iotgw_journal_commit_duration_seconds", nil); v != 4 {
		t.Errorf("%v commits timed, want 4", v)
	}
	if v := mustSample(t, reg, "iotgw_journal_depth_bytes", nil); v <= 0 {
		t.Errorf("depth bytes %v", v)
	}
}
