package actors

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/industryos/gateway/protocols"
	"github.com/industryos/gateway/protocols/platform"
)

// ConnectorCounters are per-connector figures for connectorsStats.
type ConnectorCounters struct {
	Polls          atomic.Uint64
	PollErrors     atomic.Uint64
	TsProduced     atomic.Uint64
	AttrProduced   atomic.Uint64
	EventsPushed   atomic.Uint64
	Restarts       atomic.Uint64
	FilteredEvents atomic.Uint64
	Malformed      atomic.Uint64
	Unmatched      atomic.Uint64
	Dropped        atomic.Uint64
}

// ConnectorCounters returns the counters of a connector (created on first use).
func (g *Gateway) ConnectorCounters(name string) *ConnectorCounters {
	if c, ok := g.connCounters.Load(name); ok {
		return c.(*ConnectorCounters)
	}
	c, _ := g.connCounters.LoadOrStore(name, &ConnectorCounters{})
	return c.(*ConnectorCounters)
}

// statsLoop publishes the gateway's own statistics every period while
// connected. Counters are sent as deltas since the last send, as upstream
// resets its counters after each send.
func (g *Gateway) statsLoop(ctx context.Context, period time.Duration) {
	t := time.NewTicker(period)
	defer t.Stop()
	var prev statSnapshot
	prev.take(g)
	cpu := newCPUSampler()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		var cur statSnapshot
		cur.take(g)
		payload := g.statsPayload(&prev, &cur, cpu.sample())
		pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		if err := g.PublishDirect(pctx, platform.TopicMeTelemetry, payload, 1); err != nil {
			g.log.Debug().Err(err).Msg("statistics not sent")
		} else {
			prev = cur
		}
		cancel()
	}
}

type statSnapshot struct {
	journaled, sent, delivered, polls, valuesPolled, pulled uint64
	connectors                                              map[string][6]uint64
}

func (s *statSnapshot) take(g *Gateway) {
	c := g.counters
	s.journaled, s.sent, s.delivered = c.EventsJournaled.Load(), c.MessagesSent.Load(), c.ValuesDelivered.Load()
	s.polls, s.valuesPolled = c.Polls.Load(), c.ValuesPolled.Load()
	s.pulled = g.j.Stats().Acked
	s.connectors = map[string][6]uint64{}
	for _, cc := range g.conf().Connectors {
		k := g.ConnectorCounters(cc.Name)
		s.connectors[cc.Name] = [6]uint64{k.Polls.Load(), k.PollErrors.Load(), k.TsProduced.Load(), k.AttrProduced.Load(), k.EventsPushed.Load(), k.Restarts.Load()}
	}
}

// statsPayload builds the upstream machineStats/serviceStats/connectorsStats
// telemetry, plus what upstream lacks: journal depth and age, drops, uplink
// in-flight and reconnects, restarts per connector.
func (g *Gateway) statsPayload(prev, cur *statSnapshot, cpu cpuSample) []byte {
	js := g.j.Stats()
	var ps platform.Stats
	if c := g.client.Load(); c != nil {
		ps = c.Stats()
	}
	mem := readMeminfo()
	var b bytes.Buffer
	fmt.Fprintf(&b, `{"ts":%d,"values":{"machineStats":{"totalCpuUsage":%.1f,"gwProcessCpuUsage":%.1f,"cpuCount":%d,"freeMemory":%d,"totalMemory":%d,"gwMemory":%d`,
		time.Now().UnixMilli(), cpu.total, cpu.process, runtime.NumCPU(), mem.available, mem.total, rssBytes())
	if dir := g.conf().Storage.Dir; dir != "" {
		if free, total, ok := diskSpace(dir); ok {
			fmt.Fprintf(&b, `,"freeDisk":%d,"totalDisk":%d,"diskUsage":%.1f`, free, total, 100*float64(total-free)/float64(max(total, 1)))
		}
	}
	fmt.Fprintf(&b, `,"msgsSentToPlatform":%d,"msgsReceivedFromPlatform":%d}`, cur.sent-prev.sent, g.counters.InboundMessages.Swap(0))
	fmt.Fprintf(&b, `,"serviceStats":{"storageMsgPulled":%d,"storageMsgCount":%d,"platformMsgPushed":%d,"platformTsProduced":%d,"journalDepth":%d,"journalBytes":%d,"oldestBufferedAgeMs":%d,"droppedEvents":%d,"uplinkInflight":%d,"uplinkReconnects":%d,"eventsLost":%d,"mailboxDrops":%d}`,
		cur.pulled-prev.pulled, js.Depth, cur.sent-prev.sent, cur.delivered-prev.delivered, js.Depth, js.DepthBytes, js.OldestAge.Milliseconds(),
		js.Dropped, ps.Inflight, ps.Reconnects, g.counters.EventsLost.Load(), g.counters.MailboxDrops.Load())
	b.WriteString(`,"connectorsStats":{`)
	for i, cc := range g.conf().Connectors {
		if i > 0 {
			b.WriteByte(',')
		}
		p, c := prev.connectors[cc.Name], cur.connectors[cc.Name]
		b.Write(protocols.AppendJSONString(nil, cc.Name))
		fmt.Fprintf(&b, `:{"connectorMsgsReceived":%d,"connectorsErrors":%d,"convertersTsProduced":%d,"convertersAttrProduced":%d,"storageMsgPushed":%d,"restarts":%d}`,
			c[0]-p[0], c[1]-p[1], c[2]-p[2], c[3]-p[3], c[4]-p[4], c[5])
	}
	b.WriteString("}}}")
	return b.Bytes()
}

// startupAttributes is sent once per connection: who this gateway is.
func (g *Gateway) startupAttributes() []byte {
	mem := readMeminfo()
	b := []byte(`{"Version":`)
	b = protocols.AppendJSONString(b, g.opts.Version)
	b = fmt.Appendf(b, `,"totalMemory":%d,"cpuCount":%d`, mem.total, runtime.NumCPU())
	if dir := g.conf().Storage.Dir; dir != "" {
		if _, total, ok := diskSpace(dir); ok {
			b = fmt.Appendf(b, `,"totalDisk":%d`, total)
		}
	}
	// What the config left out, so the platform shows why a connector or a
	// key is missing without anyone reading the gateway's log.
	if skips := g.conf().Problems.Skips(); len(skips) > 0 {
		b = append(b, `,"configurationErrors":[`...)
		for i, p := range skips {
			if i > 0 {
				b = append(b, ',')
			}
			b = protocols.AppendJSONString(b, p.String())
		}
		b = append(b, ']')
	}
	return append(b, '}')
}

type meminfo struct{ total, available uint64 }

func readMeminfo() meminfo {
	var m meminfo
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return m
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 2 {
			continue
		}
		kb, _ := strconv.ParseUint(fields[1], 10, 64)
		switch fields[0] {
		case "MemTotal:":
			m.total = kb << 10
		case "MemAvailable:":
			m.available = kb << 10
		}
	}
	return m
}

func rssBytes() uint64 {
	raw, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(raw))
	if len(f) < 2 {
		return 0
	}
	pages, _ := strconv.ParseUint(f[1], 10, 64)
	return pages * uint64(os.Getpagesize())
}

func diskSpace(dir string) (free, total uint64, ok bool) {
	var st syscall.Statfs_t
	if syscall.Statfs(dir, &st) != nil {
		return 0, 0, false
	}
	return st.Bavail * uint64(st.Bsize), st.Blocks * uint64(st.Bsize), true
}

type cpuSample struct{ total, process float64 }

// cpuSampler turns /proc tick counters into percentages between samples.
type cpuSampler struct {
	sysBusy, sysAll, proc uint64
	at                    time.Time
}

func newCPUSampler() *cpuSampler {
	s := &cpuSampler{}
	s.sysBusy, s.sysAll = systemTicks()
	s.proc = processTicks()
	s.at = time.Now()
	return s
}

func (s *cpuSampler) sample() cpuSample {
	busy, all := systemTicks()
	proc := processTicks()
	now := time.Now()
	var out cpuSample
	if d := all - s.sysAll; d > 0 {
		out.total = 100 * float64(busy-s.sysBusy) / float64(d)
	}
	// Process ticks are 1/100 s; as a share of one core over the interval.
	if el := now.Sub(s.at).Seconds(); el > 0 {
		out.process = float64(proc-s.proc) / el
	}
	s.sysBusy, s.sysAll, s.proc, s.at = busy, all, proc, now
	return out
}

func systemTicks() (busy, all uint64) {
	raw, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0
	}
	line, _, _ := strings.Cut(string(raw), "\n")
	f := strings.Fields(line)
	for i, v := range f[1:] {
		n, _ := strconv.ParseUint(v, 10, 64)
		all += n
		if i != 3 && i != 4 { // idle, iowait
			busy += n
		}
	}
	return busy, all
}

func processTicks() uint64 {
	raw, err := os.ReadFile("/proc/self/stat")
	if err != nil {
		return 0
	}
	s := string(raw)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseUint(f[11], 10, 64)
	st, _ := strconv.ParseUint(f[12], 10, 64)
	return ut + st
}
