package tests

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/industryos/gateway/persistence"
	"github.com/industryos/gateway/protocols"
	"github.com/industryos/gateway/protocols/kit/testpeer"
	"github.com/industryos/gateway/protocols/modbus/sim"
)

// buildBinary builds cmd/iotgw once per test binary.
var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

func iotgwBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "iotgw-bin-")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "iotgw")
		out, err := exec.Command("go", "build", "-o", binPath, "../cmd/iotgw").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

func startBinary(t *testing.T, cfg string) *exec.Cmd {
	t.Helper()
	return startBinaryLog(t, cfg, nil)
}

// startBinaryLog is startBinary that also copies the gateway's output (its
// log) to log, for tests that wait for a log line.
func startBinaryLog(t *testing.T, cfg string, log io.Writer) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(iotgwBinary(t), "run", "-c", cfg, "--log-level", "warn")
	cmd.Stdout = os.Stderr
	cmd.Stderr = os.Stderr
	if log != nil {
		cmd.Stderr = io.MultiWriter(os.Stderr, log)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	})
	return cmd
}

// journalPoints opens a (closed) Badger journal and lists the telemetry points
// it still holds after its cursor: what was committed but not yet delivered.
func journalPoints(t *testing.T, dir string) map[point]bool {
	t.Helper()
	j, err := persistence.OpenBadger(dir, persistence.Options{})
	if err != nil {
		t.Fatalf("open journal after kill: %v", err)
	}
	defer j.Close()
	out := map[point]bool{}
	after := j.Cursor()
	for {
		recs, err := j.Read(after, 1000, 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		if len(recs) == 0 {
			return out
		}
		for _, r := range recs {
			ev, err := protocols.DecodeEvent(r.Data)
			if err != nil {
				t.Fatalf("record %d: %v", r.Seq, err)
			}
			if ev.Kind == protocols.EventTelemetry {
				out[point{ev.Device, ev.Ts}] = true
			}
		}
		after = recs[len(recs)-1].Seq
	}
}

// TestKillWhileBrokerDown (fault b): with the broker down, SIGKILL the
// gateway binary, restart it, restore the broker: every value committed before
// the kill arrives.
func TestKillWhileBrokerDown(t *testing.T) {
	m := testpeer.StartMosquitto(t)
	s := startSim(t, 3, 4)
	sub := testpeer.Subscribe(t, m.Addr(), "v1/gateway/telemetry")
	dir := t.TempDir()
	cfg := writeConfig(t, dir, m.Addr(), `{"type": "file", "data_folder_path": "journal", "max_file_count": 100, "max_records_per_file": 10000}`,
		map[string][]byte{"modbus": sim.GatewayConfig(s.Addr(), 3, 4, 100*time.Millisecond)})

	var log lineBuffer
	gw := startBinaryLog(t, cfg, &log)
	sub.WaitFor(t, 30*time.Second, func(msgs []testpeer.Msg) bool { return len(msgs) >= 3 })
	m.Stop()
	// Let the gateway journal data it cannot deliver: once it has seen the
	// broker go, every poll of the three devices is journaled, not sent.
	testpeer.Eventually(t, 30*time.Second, "the gateway to notice the broker is down", func() error {
		if !strings.Contains(strings.Join(log.lines(), "\n"), "platform connection lost") {
			return errors.New("no \"platform connection lost\" in the log")
		}
		return nil
	})
	polled := s.Requests()
	testpeer.Eventually(t, 30*time.Second, "10 polls per device with the broker down", func() error {
		if n := s.Requests() - polled; n < 30 {
			return fmt.Errorf("%d requests", n)
		}
		return nil
	})
	if err := gw.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = gw.Wait()

	pending := journalPoints(t, filepath.Join(dir, "journal"))
	if len(pending) == 0 {
		t.Fatal("nothing was buffered in the journal while the broker was down")
	}
	startBinary(t, cfg)
	m.Restart()
	sub.WaitFor(t, 60*time.Second, func(msgs []testpeer.Msg) bool {
		got, err := telemetry(msgs)
		return err == nil && len(missing(pending, got)) == 0
	})
	t.Logf("%d points committed before the kill, all delivered after restart", len(pending))
}

// chaosDevice is a test protocol: the "panicky" device panics on every 5th
// poll; the others count their polls so gaps are visible at the platform.
type chaosDevice struct {
	name   string
	panicN int
	polls  atomic.Int64
}

func (d *chaosDevice) Info() protocols.DeviceInfo {
	return protocols.DeviceInfo{Name: d.name, Type: "chaos", PollPeriod: 50 * time.Millisecond, ConnectAttemptCount: 3}
}

func (d *chaosDevice) Poll(context.Context) (protocols.Reading, error) {
	n := d.polls.Add(1)
	if d.panicN > 0 && n%int64(d.panicN) == 0 {
		panic(fmt.Sprintf("chaos: %s poll %d", d.name, n))
	}
	return protocols.Reading{Telemetry: []protocols.Datapoint{{Key: "poll", Value: protocols.Int(n)}}}, nil
}

func (d *chaosDevice) Close() error { return nil }

type chaosConnector struct{ devs []protocols.Device }

func (c *chaosConnector) Devices() []protocols.Device { return c.devs }
func (c *chaosConnector) Close() error                { return nil }

var chaos = struct {
	sync.Mutex
	devs map[string]*chaosDevice
}{devs: map[string]*chaosDevice{}}

// freshChaos forgets chaos devices, so a test re-run (-count) starts their
// poll counters at 1 again.
func freshChaos(names ...string) {
	chaos.Lock()
	defer chaos.Unlock()
	for _, n := range names {
		delete(chaos.devs, n)
	}
}

func init() {
	protocols.Register("chaos", func(cfg protocols.ConnectorConfig) (protocols.Connector, error) {
		chaos.Lock()
		defer chaos.Unlock()
		var out []protocols.Device
		for _, n := range cfg.Config.Strings("devices") {
			d := chaos.devs[n]
			if d == nil {
				d = &chaosDevice{name: n}
				if n == "panicky" {
					d.panicN = 5
				}
				chaos.devs[n] = d
			}
			out = append(out, d)
		}
		return &chaosConnector{devs: out}, nil
	})
}

// TestPanickingDevice (fault c): a device that panics on every 5th poll keeps
// being restarted, and its siblings lose no polls.
func TestPanickingDevice(t *testing.T) {
	freshChaos("panicky", "steady-1", "steady-2")
	b := testpeer.StartMochi(t)
	sub := testpeer.Subscribe(t, b.Addr(), "v1/gateway/telemetry")
	dir := t.TempDir()
	path := writeConfig(t, dir, b.Addr(), `{"type": "memory"}`, map[string][]byte{
		"chaos": []byte(`{"devices": ["panicky", "steady-1", "steady-2"]}`)})
	gw := startGateway(t, path, nil)

	testpeer.Eventually(t, 30*time.Second, "3 restarts", func() error {
		if r := gw.Counters().Restarts.Load(); r < 3 {
			return fmt.Errorf("%d restarts so far", r)
		}
		return nil
	})
	// Each steady device reports its poll counter; all of 1..n must arrive.
	sub.WaitFor(t, 30*time.Second, func(msgs []testpeer.Msg) bool {
		got, err := telemetry(msgs)
		if err != nil {
			return false
		}
		for _, dev := range []string{"steady-1", "steady-2"} {
			if contiguous(got, dev) < 40 {
				return false
			}
		}
		return true
	})
	got, _ := telemetry(sub.Messages())
	for _, dev := range []string{"steady-1", "steady-2"} {
		seen := map[string]bool{}
		for p, v := range got {
			if p.Device == dev {
				seen[string(v["poll"])] = true
			}
		}
		for i := 1; i <= 40; i++ {
			if !seen[fmt.Sprint(i)] {
				t.Fatalf("%s: poll %d never arrived", dev, i)
			}
		}
	}
	// The panicking device keeps producing between its crashes.
	if contiguousAny(got, "panicky") == 0 {
		t.Fatal("the panicking device delivered nothing")
	}
}

// contiguous is the largest n such that polls 1..n of dev all arrived.
func contiguous(got map[point]map[string]json.RawMessage, dev string) int {
	seen := map[string]bool{}
	for p, v := range got {
		if p.Device == dev {
			seen[string(v["poll"])] = true
		}
	}
	n := 0
	for seen[fmt.Sprint(n+1)] {
		n++
	}
	return n
}

func contiguousAny(got map[point]map[string]json.RawMessage, dev string) int {
	n := 0
	for p := range got {
		if p.Device == dev {
			n++
		}
	}
	return n
}

// TestSilentSlave (fault d): a slave that stops answering does not slow the
// other slaves' polls. The healthy slave's poll timestamps keep their period
// while the silent one times out.
func TestSilentSlave(t *testing.T) {
	b := testpeer.StartMochi(t)
	healthy := startSim(t, 1, 4)
	silent := startSim(t, 1, 4)
	sub := testpeer.Subscribe(t, b.Addr(), "v1/gateway/telemetry", "v1/gateway/disconnect")
	mk := func(addr, name string) string {
		host, port := splitHostPort(addr)
		return fmt.Sprintf(`{"type": "tcp", "host": %q, "port": %s, "unitId": 1, "deviceName": %q, "timeout": 2,
		  "pollPeriod": 100, "connectAttemptCount": 2,
		  "timeseries": [{"tag": "r0", "type": "16uint", "functionCode": 3, "objectsCount": 1, "address": 0}]}`, host, port, name)
	}
	conf := fmt.Sprintf(`{"master": {"slaves": [%s, %s]}}`, mk(healthy.Addr(), "healthy"), mk(silent.Addr(), "silent"))
	path := writeConfig(t, t.TempDir(), b.Addr(), `{"type": "memory"}`, map[string][]byte{"modbus": []byte(conf)})
	startGateway(t, path, nil)
	sub.WaitFor(t, 20*time.Second, func(msgs []testpeer.Msg) bool {
		got, _ := telemetry(msgs)
		return contiguousAny(got, "silent") > 0 && contiguousAny(got, "healthy") > 0
	})
	silent.SetSilent(true)
	silencedAt := time.Now().UnixMilli()
	// Wait until the silent slave has been given up on (several timeouts).
	sub.WaitFor(t, 30*time.Second, func(msgs []testpeer.Msg) bool {
		for _, m := range msgs {
			if m.Topic == "v1/gateway/disconnect" && strings.Contains(string(m.Payload), "silent") {
				return true
			}
		}
		return false
	})
	until := time.Now().UnixMilli()
	got, _ := telemetry(sub.Messages())
	var ts []int64
	for p := range got {
		if p.Device == "healthy" && p.Ts >= silencedAt && p.Ts <= until {
			ts = append(ts, p.Ts)
		}
	}
	sort.Slice(ts, func(i, j int) bool { return ts[i] < ts[j] })
	// Two timeouts of 2 s passed; at a 100 ms period the healthy slave polled
	// about 40 times. A gap of a whole timeout would mean it waited for the
	// silent one.
	if len(ts) < 10 {
		t.Fatalf("healthy slave delivered only %d polls while the other was silent", len(ts))
	}
	for i := 1; i < len(ts); i++ {
		if gap := ts[i] - ts[i-1]; gap >= 2000 {
			t.Fatalf("healthy slave stalled for %d ms while the other slave was silent", gap)
		}
	}
	silent.SetSilent(false)
}
