package tests

import (
	"bufio"
	"fmt"
	"io"
	"log"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/gopcua/opcua/ua"

	"github.com/industryos/gateway/protocols/kit/testpeer"
)

// opcuaLoadPlant is the shared OPC UA test server with
// Root/Objects/Plant/Device<d>/{SerialNumber, Var0..Var<vars-1>} (Doubles).
// Every variable reads round*1000+k, so bumping round changes them all.
type opcuaLoadPlant struct {
	srv   *testpeer.OPCUAServer
	url   string
	round atomic.Int64
	vars  []*ua.NodeID
}

func startOPCUALoadPlant(tb testing.TB, devices, vars int) *opcuaLoadPlant {
	tb.Helper()
	p := &opcuaLoadPlant{}
	p.srv = testpeer.StartOPCUAServer(tb, testpeer.OPCUAOptions{Build: func(s *testpeer.OPCUAServer) {
		for d := 1; d <= devices; d++ {
			dn := fmt.Sprintf("Device%d", d)
			dev := s.Folder(nil, ua.NewStringNodeID(1, dn), dn)
			s.VariableFunc(dev, ua.NewStringNodeID(1, dn+".SerialNumber"), "SerialNumber", fmt.Sprintf("SN-%d", d))
			for k := range vars {
				k := int64(k)
				n := s.VariableFunc(dev, ua.NewStringNodeID(1, fmt.Sprintf("%s.Var%d", dn, k)), fmt.Sprintf("Var%d", k), func() *ua.DataValue {
					now := time.Now()
					return &ua.DataValue{
						EncodingMask:    ua.DataValueValue | ua.DataValueSourceTimestamp | ua.DataValueServerTimestamp,
						Value:           ua.MustVariant(float64(p.round.Load()*1000 + k)),
						SourceTimestamp: now, ServerTimestamp: now,
					}
				})
				p.vars = append(p.vars, n.ID())
			}
		}
	}})
	// The server's own endpoint: the proxy's copying is not what this
	// benchmark measures.
	p.url = p.srv.DirectURL()
	return p
}

// change bumps every variable's value and notifies the subscribers.
func (p *opcuaLoadPlant) change() {
	p.round.Add(1)
	for _, n := range p.vars {
		p.srv.Server.ChangeNotification(n)
	}
}

func opcuaLoadConfig(url string, vars int) []byte {
	keys := make([]string, vars)
	for k := range keys {
		keys[k] = fmt.Sprintf(`{"key": "v%d", "type": "path", "value": "${Var%d}"}`, k, k)
	}
	return []byte(fmt.Sprintf(`{
  "name": "OPC-UA",
  "server": {"url": %q, "timeoutInMillis": 5000, "enableSubscriptions": true, "subCheckPeriodInMillis": 100,
             "reconnectBackoffInitialDelay": 0.1, "maxItemsPerSubscription": 1000},
  "mapping": [{
    "deviceNodePattern": "Root\\.Objects\\.Plant\\.Device[0-9]+",
    "deviceInfo": {"deviceNameExpression": "Pump ${SerialNumber}", "deviceNameExpressionSource": "path",
                   "deviceProfileExpression": "pump"},
    "timeseries": [%s]
  }]
}`, url, strings.Join(keys, ",\n")))
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// peakRSSMB is VmHWM of this process in MB (0 when unknown).
func peakRSSMB() float64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 64)
			return kb / 1024
		}
	}
	return 0
}

// BenchmarkOPCUAToPlatform (issue 7): 100 devices × 100 Double variables
// on a gopcua in-process server, all 10,000 subscribed by the opcua
// connector and changed every 200 ms (50,000 changes/s offered), through
// the whole gateway (device actors, Badger journal, uplink) to mosquitto's
// PUBACK. It reports start-up from gateway start to the first value emitted
// and to 10,000 values emitted (every item's initial value: the load starts
// only after that, so the count means every variable was seen), then over
// a 10 s window values/s emitted to the journal (valid as delivered only
// when the journal's cursor reaches the window's last sequence shortly
// after, which it checks), values/s in PUBACKed messages, CPU % of one core
// and allocations per value (both whole process: the OPC-UA server, its
// load goroutine and mosquitto's client side are included; mosquitto itself
// is a separate process and is not), and peak RSS (VmHWM, whole run).
// b.N is ignored: one run is one window.
//
//	go test -run - -bench OPCUAToPlatform -benchtime 1x ./tests/
func BenchmarkOPCUAToPlatform(b *testing.B) {
	const (
		devices, vars = 100, 100
		total         = devices * vars
		period        = 200 * time.Millisecond
		window        = 10 * time.Second
	)
	// gopcua's server prints to the standard logger whatever SetLogger says.
	log.SetOutput(io.Discard)
	b.Cleanup(func() { log.SetOutput(os.Stderr) })

	plant := startOPCUALoadPlant(b, devices, vars)
	platform := testpeer.StartMosquitto(b)
	dir := b.TempDir()
	path := writeConfig(b, dir, platform.Addr(), fmt.Sprintf(`{"type": "file", "data_folder_path": %q, "max_file_count": 1000, "max_records_per_file": 100000}`, dir+"/journal"),
		map[string][]byte{"opcua": opcuaLoadConfig(plant.url, vars)})

	start := time.Now()
	g := startGateway(b, path, nil)
	ctr := g.Counters()
	var first time.Duration
	testpeer.Waiter{Timeout: 60 * time.Second, Poll: time.Millisecond}.Until(b, "the values of every variable", func() error {
		n := ctr.ValuesEmitted.Load()
		if n > 0 && first == 0 {
			first = time.Since(start)
		}
		if n < total {
			return fmt.Errorf("%d of %d initial values emitted", n, total)
		}
		return nil
	})
	all := time.Since(start)

	stop := make(chan struct{})
	loadDone := make(chan struct{})
	var rounds atomic.Int64
	go func() {
		defer close(loadDone)
		t := time.NewTicker(period)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				plant.change()
				rounds.Add(1)
			}
		}
	}()
	defer func() {
		close(stop)
		<-loadDone
	}()
	time.Sleep(2 * time.Second) // settle into the steady state

	j := g.Journal()
	var ms0, ms1 runtime.MemStats
	runtime.ReadMemStats(&ms0)
	cpu0, e0, d0, r0 := cpuTime(), ctr.ValuesEmitted.Load(), ctr.ValuesDelivered.Load(), rounds.Load()
	b.ResetTimer()
	t0 := time.Now()
	time.Sleep(window)
	e1, d1, r1, last := ctr.ValuesEmitted.Load(), ctr.ValuesDelivered.Load(), rounds.Load(), j.LastSeq()
	el := time.Since(t0)
	cpu1 := cpuTime()
	runtime.ReadMemStats(&ms1)
	b.StopTimer()

	// Everything journaled in the window must be PUBACKed: the cursor
	// reaches the window's last sequence (the load goes on meanwhile).
	caught := time.Now()
	for j.Cursor() < last {
		if time.Since(caught) > time.Minute {
			b.Fatalf("journal acknowledged up to %d of %d a minute after the window (emitted %d, journaled %d, sent %d, publish failures %d, mailbox drops %d, input dropped %d)",
				j.Cursor(), last, ctr.ValuesEmitted.Load(), ctr.EventsJournaled.Load(), ctr.MessagesSent.Load(), ctr.PublishFailures.Load(), ctr.MailboxDrops.Load(), ctr.InputDropped.Load())
		}
		time.Sleep(time.Millisecond)
	}
	lag := time.Since(caught)

	values := e1 - e0
	b.ReportMetric(float64(values)/el.Seconds(), "values/s")
	b.ReportMetric(float64(d1-d0)/el.Seconds(), "acked-values/s")
	b.ReportMetric(float64(r1-r0)*total/el.Seconds(), "changes/s")
	b.ReportMetric(first.Seconds(), "s-to-first-value")
	b.ReportMetric(all.Seconds(), "s-to-all-10k")
	b.ReportMetric(100*float64(cpu1-cpu0)/float64(el), "cpu%")
	b.ReportMetric(peakRSSMB(), "peak-RSS-MB")
	b.ReportMetric(float64(ms1.Mallocs-ms0.Mallocs)/float64(max(values, 1)), "allocs/value")
	b.ReportMetric(lag.Seconds(), "s-ack-catch-up")
	if lag > 3*time.Second {
		b.Logf("values/s NOT sustained: the journal caught up %.1f s after the window (> 3 s), so emitted values outran PUBACKs", lag.Seconds())
	} else {
		b.Logf("values/s valid as delivered: every value journaled in the window was PUBACKed %.2f s after it", lag.Seconds())
	}
	if n := ctr.InputDropped.Load() + ctr.MailboxDrops.Load(); n > 0 {
		b.Logf("drops: input dropped %d, mailbox drops %d", ctr.InputDropped.Load(), ctr.MailboxDrops.Load())
	}
	b.Logf("CPU and allocations are whole-process (gateway + in-process OPC-UA server + load goroutine + harness); mosquitto is a separate process")
}
