package actors

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"runtime"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/industryos/gateway/actors/observe"
	"github.com/industryos/gateway/persistence"
	"github.com/industryos/gateway/protocols"
	"github.com/industryos/gateway/protocols/config"
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
	Refused        atomic.Uint64
}

// statistics publishes the gateway's own statistics telemetry and builds
// the attributes it sends on every connect.
type statistics struct {
	counters          *Counters
	journal           persistence.Journal
	client            *atomic.Pointer[platform.Client] // the uplink's current one
	conf              func() *config.Gateway
	connectorCounters func(name string) *ConnectorCounters
	// publish sends outside the journal; late statistics are worthless.
	publish func(ctx context.Context, topic string, payload []byte, qos byte) error
	version string
	log     zerolog.Logger
	// automation is the automation engine's summary (nil or answering nil:
	// none runs).
	automation func() any
}

// statsLoop publishes the gateway's own statistics every period while
// connected. Counters are sent as deltas since the last send, as upstream
// resets its counters after each send.
func (st *statistics) loop(ctx context.Context, period time.Duration) {
	t := time.NewTicker(period)
	defer t.Stop()
	var prev statSnapshot
	prev.take(st)
	cpu := observe.NewCPUSampler()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		var cur statSnapshot
		cur.take(st)
		payload := st.payload(&prev, &cur, cpu.Sample())
		pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		if err := st.publish(pctx, platform.TopicMeTelemetry, payload, 1); err != nil {
			st.log.Debug().Err(err).Msg("statistics not sent")
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

func (s *statSnapshot) take(st *statistics) {
	c := st.counters
	s.journaled, s.sent, s.delivered = c.EventsJournaled.Load(), c.MessagesSent.Load(), c.ValuesDelivered.Load()
	s.polls, s.valuesPolled = c.Polls.Load(), c.ValuesPolled.Load()
	s.pulled = st.journal.Stats().Acked
	s.connectors = map[string][6]uint64{}
	for _, cc := range st.conf().Connectors {
		k := st.connectorCounters(cc.Name)
		s.connectors[cc.Name] = [6]uint64{k.Polls.Load(), k.PollErrors.Load(), k.TsProduced.Load(), k.AttrProduced.Load(), k.EventsPushed.Load(), k.Restarts.Load()}
	}
}

// statsPayload builds the upstream machineStats/serviceStats/connectorsStats
// telemetry, plus what upstream lacks: journal depth and age, drops, uplink
// in-flight and reconnects, restarts per connector.
func (st *statistics) payload(prev, cur *statSnapshot, cpu observe.CPUUsage) []byte {
	js := st.journal.Stats()
	var ps platform.Stats
	if c := st.client.Load(); c != nil {
		ps = c.Stats()
	}
	mem := observe.ReadMemory()
	var b bytes.Buffer
	fmt.Fprintf(&b, `{"ts":%d,"values":{"machineStats":{"totalCpuUsage":%.1f,"gwProcessCpuUsage":%.1f,"cpuCount":%d,"freeMemory":%d,"totalMemory":%d,"gwMemory":%d`,
		time.Now().UnixMilli(), cpu.Total, cpu.Process, runtime.NumCPU(), mem.Available, mem.Total, observe.RSS())
	if dir := st.conf().Storage.Dir; dir != "" {
		if free, total, ok := observe.DiskSpace(dir); ok {
			fmt.Fprintf(&b, `,"freeDisk":%d,"totalDisk":%d,"diskUsage":%.1f`, free, total, 100*float64(total-free)/float64(max(total, 1)))
		}
	}
	fmt.Fprintf(&b, `,"msgsSentToPlatform":%d,"msgsReceivedFromPlatform":%d}`, cur.sent-prev.sent, st.counters.InboundMessages.Swap(0))
	fmt.Fprintf(&b, `,"serviceStats":{"storageMsgPulled":%d,"storageMsgCount":%d,"platformMsgPushed":%d,"platformTsProduced":%d,"journalDepth":%d,"journalBytes":%d,"oldestBufferedAgeMs":%d,"droppedEvents":%d,"uplinkInflight":%d,"uplinkReconnects":%d,"eventsLost":%d,"mailboxDrops":%d}`,
		cur.pulled-prev.pulled, js.Depth, cur.sent-prev.sent, cur.delivered-prev.delivered, js.Depth, js.DepthBytes, js.OldestAge.Milliseconds(),
		js.Dropped, ps.Inflight, ps.Reconnects, st.counters.EventsLost.Load(), st.counters.MailboxDrops.Load())
	b.WriteString(`,"connectorsStats":{`)
	for i, cc := range st.conf().Connectors {
		if i > 0 {
			b.WriteByte(',')
		}
		p, c := prev.connectors[cc.Name], cur.connectors[cc.Name]
		b.Write(protocols.AppendJSONString(nil, cc.Name))
		fmt.Fprintf(&b, `:{"connectorMsgsReceived":%d,"connectorsErrors":%d,"convertersTsProduced":%d,"convertersAttrProduced":%d,"storageMsgPushed":%d,"restarts":%d}`,
			c[0]-p[0], c[1]-p[1], c[2]-p[2], c[3]-p[3], c[4]-p[4], c[5])
	}
	b.WriteString("}")
	if st.automation != nil {
		if a := st.automation(); a != nil {
			if raw, err := json.Marshal(a); err == nil {
				b.WriteString(`,"automationStats":`)
				b.Write(raw)
			} else {
				st.log.Warn().Err(err).Msg("automation statistics not sent")
			}
		}
	}
	b.WriteString("}}")
	return b.Bytes()
}

// startupAttributes is sent once per connection: who this gateway is.
func (st *statistics) startupAttributes() []byte {
	mem := observe.ReadMemory()
	b := []byte(`{"Version":`)
	b = protocols.AppendJSONString(b, st.version)
	b = fmt.Appendf(b, `,"totalMemory":%d,"cpuCount":%d`, mem.Total, runtime.NumCPU())
	if dir := st.conf().Storage.Dir; dir != "" {
		if _, total, ok := observe.DiskSpace(dir); ok {
			b = fmt.Appendf(b, `,"totalDisk":%d`, total)
		}
	}
	// What the config left out, so the platform shows why a connector or a
	// key is missing without anyone reading the gateway's log.
	if skips := st.conf().Problems.Skips(); len(skips) > 0 {
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
