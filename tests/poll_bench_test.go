package tests

import (
	"encoding/json"
	"fmt"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/industryos/gateway/protocols/kit/testpeer"
	"github.com/industryos/gateway/protocols/modbus/sim"
)

// BenchmarkPollToPlatform measures what one poll costs at the rates real
// sites run: devices × 10 registers polled every second from Modbus TCP
// simulators, through the device actors, the journal (memory, or Badger
// with sync writes) and the uplink to mosquitto's PUBACK and the journal's
// ack. One op is one poll; the benchmark ends when b.N polls were made and
// everything they produced is acknowledged. allocs/op and B/op are for the
// whole process (the in-process simulators included); cpu-µs/poll
// is the process's user+system CPU time per poll (getrusage), which, unlike
// wall-clock CPU %, does not depend on what else runs on the machine;
// ns/op is only the poll period divided by the device count.
//
//	go test -run - -bench PollToPlatform -benchtime 3000x ./tests/
func BenchmarkPollToPlatform(b *testing.B) {
	for _, storage := range []string{"memory", "file"} {
		for _, devices := range []int{100, 1000} {
			b.Run(fmt.Sprintf("%s/devices=%d", storage, devices), func(b *testing.B) {
				benchPolls(b, storage, devices)
			})
		}
	}
}

func benchPolls(b *testing.B, storage string, devices int) {
	const registers, perSim = 10, 200
	platform := testpeer.StartMosquitto(b)
	var slaves []json.RawMessage
	for i := 0; i*perSim < devices; i++ {
		n := min(perSim, devices-i*perSim)
		s, err := sim.Start(sim.Options{Addr: "127.0.0.1:0", Devices: n, Registers: registers, Animate: true, Tick: time.Second})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(s.Close)
		raw := strings.ReplaceAll(string(sim.GatewayConfig(s.Addr(), n, registers, time.Second)), "sim-dev-", fmt.Sprintf("sim%d-dev-", i))
		var f struct {
			Master struct {
				Slaves []json.RawMessage `json:"slaves"`
			} `json:"master"`
		}
		if err := json.Unmarshal([]byte(raw), &f); err != nil {
			b.Fatal(err)
		}
		slaves = append(slaves, f.Master.Slaves...)
	}
	mb, _ := json.Marshal(map[string]any{"master": map[string]any{"slaves": slaves}})
	dir := b.TempDir()
	st := `{"type": "memory", "max_records_count": 10000000}`
	if storage == "file" {
		st = fmt.Sprintf(`{"type": "file", "data_folder_path": %q, "max_file_count": 1000, "max_records_per_file": 100000}`, dir+"/journal")
	}
	path := writeConfig(b, dir, platform.Addr(), st, map[string][]byte{"modbus": mb})
	g := startGateway(b, path, nil)
	ctr, j := g.Counters(), g.Journal()
	// Warm up: every device connected and its first polls delivered.
	testpeer.Eventually(b, 30*time.Second, "every device to poll and deliver", func() error {
		if n := ctr.DevicesConnected.Load(); n < int64(devices) {
			return fmt.Errorf("%d of %d devices connected", n, devices)
		}
		if p := ctr.Polls.Load(); p < uint64(2*devices) {
			return fmt.Errorf("%d polls", p)
		}
		if j.Cursor() == 0 {
			return fmt.Errorf("nothing acknowledged yet")
		}
		return nil
	})
	runtime.GC()
	polls0, errs0, commits0 := ctr.Polls.Load(), ctr.PollErrors.Load(), j.Stats().Commits
	cpu0 := processCPU()
	b.ReportAllocs()
	b.ResetTimer()
	deadline := time.Now().Add(time.Duration(b.N/devices+30) * time.Second)
	for ctr.Polls.Load()-polls0 < uint64(b.N) {
		if time.Now().After(deadline) {
			b.Fatalf("%d of %d polls", ctr.Polls.Load()-polls0, b.N)
		}
		time.Sleep(time.Millisecond)
	}
	// Done means acknowledged: published, PUBACKed and acked in the journal.
	last := j.LastSeq()
	for j.Cursor() < last {
		if time.Now().After(deadline) {
			b.Fatalf("acknowledged up to %d of %d", j.Cursor(), last)
		}
		time.Sleep(time.Millisecond)
	}
	b.StopTimer()
	polls := float64(ctr.Polls.Load() - polls0)
	b.ReportMetric(float64((processCPU()-cpu0).Microseconds())/polls, "cpu-µs/poll")
	if storage == "file" {
		// Journal writes (each a sync) per slot: a slot is the polls that
		// start together, a tenth of the devices at a 1 s period.
		b.ReportMetric(float64(j.Stats().Commits-commits0)/(polls/(float64(devices)/10)), "commits/slot")
	}
	if e := ctr.PollErrors.Load() - errs0; e > 0 {
		b.Logf("%d poll errors", e)
	}
}

// processCPU is this process's user plus system CPU time so far.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
