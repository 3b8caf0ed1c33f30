package observe

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/industryos/gateway/protocols"
	"github.com/industryos/gateway/protocols/platform"
)

// RemoteLoggingLevelKey is the gateway's shared attribute that sets the
// remote logging threshold (COMPAT §4.2).
const RemoteLoggingLevelKey = "RemoteLoggingLevel"

// Telemetry keys of the components, each line also duplicated under LOGS.
const (
	KeyService    = "SERVICE"
	KeyConnection = "CONNECTION"
	KeyStorage    = "STORAGE"
	keyAll        = "LOGS"
)

// levelOff is stored as the remote minimum while remote logging is off: no
// level reaches it.
const levelOff = int32(zerolog.Disabled) + 1

// ParseRemoteLevel maps upstream's RemoteLoggingLevel values (NONE, TRACE,
// DEBUG, INFO, WARNING, ERROR, CRITICAL; any case, WARN and FATAL accepted)
// to a zerolog level; on is false for NONE.
func ParseRemoteLevel(s string) (lvl zerolog.Level, on bool, err error) {
	switch strings.ToUpper(strings.TrimSpace(s)) {
	case "NONE", "OFF", "":
		return zerolog.Disabled, false, nil
	case "TRACE":
		return zerolog.TraceLevel, true, nil
	case "DEBUG":
		return zerolog.DebugLevel, true, nil
	case "INFO":
		return zerolog.InfoLevel, true, nil
	case "WARNING", "WARN":
		return zerolog.WarnLevel, true, nil
	case "ERROR":
		return zerolog.ErrorLevel, true, nil
	case "CRITICAL", "FATAL":
		return zerolog.FatalLevel, true, nil
	}
	return zerolog.Disabled, false, fmt.Errorf("unknown %s %q (want NONE, DEBUG, INFO, WARNING, ERROR or CRITICAL)", RemoteLoggingLevelKey, s)
}

// upstreamLevel is the Python level name the platform's widgets expect.
func upstreamLevel(l zerolog.Level) string {
	switch l {
	case zerolog.TraceLevel:
		return "TRACE"
	case zerolog.DebugLevel:
		return "DEBUG"
	case zerolog.InfoLevel:
		return "INFO"
	case zerolog.WarnLevel:
		return "WARNING"
	case zerolog.ErrorLevel:
		return "ERROR"
	case zerolog.FatalLevel, zerolog.PanicLevel:
		return "CRITICAL"
	}
	return "INFO"
}

// RemoteLogOptions tune a RemoteLog; zero values take upstream's figures.
type RemoteLogOptions struct {
	QueueSize   int           // lines waiting to be sent (1000); more are dropped and counted
	BatchSize   int           // lines per message at most (20)
	ErrorsEvery time.Duration // error counters are sent at most this often, when changed (5 s)
	ErrorsReset time.Duration // error counters restart from 0 this often (60 s)
	Retry       time.Duration // wait between attempts while the platform is down (1 s)
}

type logItem struct {
	level zerolog.Level
	key   string // component key without the _LOGS suffix
	at    time.Time
	line  []byte // the zerolog JSON line
}

// RemoteLog is a zerolog.LevelWriter that sends log lines at or above the
// remote level to the platform as `*_LOGS` telemetry (COMPAT §4.2). Writing
// never blocks the logging goroutine: a line is copied into a bounded queue
// or, when the queue is full, dropped and counted. One goroutine drains the
// queue in batches. It also counts error lines per component and sends
// `<NAME>_ERRORS_COUNT` and `ALL_ERRORS_COUNT`.
type RemoteLog struct {
	opts  RemoteLogOptions
	min   atomic.Int32 // lowest level sent; levelOff while off
	queue chan logItem

	// connectors with enableRemoteLogging, refreshed from the config by the
	// drain goroutine so the writer never takes the gateway's locks.
	enabledFn  func() map[string]bool
	enabled    atomic.Pointer[map[string]bool]
	publish    func(ctx context.Context, payload []byte) error
	maxPayload func() int
	log        atomic.Pointer[zerolog.Logger]

	queued, sent, droppedFull, droppedSend, errLines atomic.Uint64

	errMu     sync.Mutex
	errCounts map[string]uint64
	errDirty  bool

	startOnce sync.Once
	stopOnce  sync.Once
	stop      chan struct{}
	done      chan struct{}
	lastTs    int64 // drain goroutine only
}

// NewRemoteLog returns a RemoteLog that is off until a level is set and
// queues (but does not send) until Start.
func NewRemoteLog(o RemoteLogOptions) *RemoteLog {
	if o.QueueSize <= 0 {
		o.QueueSize = 1000
	}
	if o.BatchSize <= 0 {
		o.BatchSize = 20
	}
	if o.ErrorsEvery <= 0 {
		o.ErrorsEvery = 5 * time.Second
	}
	if o.ErrorsReset <= 0 {
		o.ErrorsReset = 60 * time.Second
	}
	if o.Retry <= 0 {
		o.Retry = time.Second
	}
	r := &RemoteLog{opts: o, queue: make(chan logItem, o.QueueSize), errCounts: map[string]uint64{},
		stop: make(chan struct{}), done: make(chan struct{})}
	r.min.Store(levelOff)
	nop := zerolog.Nop()
	r.log.Store(&nop)
	empty := map[string]bool{}
	r.enabled.Store(&empty)
	return r
}

// SetLevel sets the remote threshold; on=false turns remote logging off.
func (r *RemoteLog) SetLevel(l zerolog.Level, on bool) {
	if !on {
		r.min.Store(levelOff)
		return
	}
	r.min.Store(int32(l))
}

// Level returns the remote threshold and whether remote logging is on.
func (r *RemoteLog) Level() (zerolog.Level, bool) {
	m := r.min.Load()
	if m == levelOff {
		return zerolog.Disabled, false
	}
	return zerolog.Level(m), true
}

// HandleGatewayAttributes reacts to RemoteLoggingLevel in a shared-attribute
// update (or attribute response) of the gateway device; other keys are
// ignored. It never blocks.
func (r *RemoteLog) HandleGatewayAttributes(values map[string]json.RawMessage) {
	raw, ok := values[RemoteLoggingLevelKey]
	if !ok {
		return
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		s = string(raw)
	}
	lvl, on, err := ParseRemoteLevel(s)
	if err != nil {
		r.log.Load().Warn().Err(err).Msg("remote logging level ignored")
		return
	}
	r.SetLevel(lvl, on)
	r.log.Load().Info().Str("level", strings.ToUpper(strings.TrimSpace(s))).Msg("remote logging level set")
}

// Write is for writers that do not pass the level; such lines count as info.
func (r *RemoteLog) Write(p []byte) (int, error) { return r.WriteLevel(zerolog.InfoLevel, p) }

// WriteLevel implements zerolog.LevelWriter. It never fails and never blocks.
func (r *RemoteLog) WriteLevel(l zerolog.Level, p []byte) (int, error) {
	if l >= zerolog.NoLevel {
		return len(p), nil
	}
	var key string
	var connector bool
	if l >= zerolog.ErrorLevel {
		key, connector = componentKey(p)
		r.countError(key)
	}
	if int32(l) < r.min.Load() {
		return len(p), nil
	}
	if key == "" {
		key, connector = componentKey(p)
	}
	if connector && !(*r.enabled.Load())[key] {
		return len(p), nil // the connector does not have enableRemoteLogging
	}
	it := logItem{level: l, key: key, at: time.Now(), line: append([]byte(nil), p...)}
	select {
	case r.queue <- it:
		r.queued.Add(1)
	default:
		r.droppedFull.Add(1)
	}
	return len(p), nil
}

// componentKey finds the component of a zerolog JSON line: its connector
// (connector=true), the uplink (CONNECTION), the journal (STORAGE), or the
// rest of the gateway (SERVICE). It only scans bytes: it runs on the
// logging goroutine.
func componentKey(p []byte) (string, bool) {
	if name, ok := stringField(p, `"connector":"`); ok {
		return name, true
	}
	if v, ok := stringField(p, `"actor":"`); ok {
		switch v {
		case "uplink":
			return KeyConnection, false
		case "journal":
			return KeyStorage, false
		}
	}
	if v, ok := stringField(p, `"component":"`); ok && v == "journal" {
		return KeyStorage, false
	}
	return KeyService, false
}

func stringField(p []byte, prefix string) (string, bool) {
	i := bytes.Index(p, []byte(prefix))
	if i < 0 {
		return "", false
	}
	rest := p[i+len(prefix):]
	escaped := false
	for j := 0; j < len(rest); j++ {
		switch rest[j] {
		case '\\':
			escaped = true
			j++
		case '"':
			if !escaped {
				return string(rest[:j]), true
			}
			var s string
			if json.Unmarshal(p[i+len(prefix)-1:i+len(prefix)+j+1], &s) == nil {
				return s, true
			}
			return "", false
		}
	}
	return "", false
}

func (r *RemoteLog) countError(key string) {
	r.errLines.Add(1)
	r.errMu.Lock()
	r.errCounts[key]++
	r.errDirty = true
	r.errMu.Unlock()
}

// Sink is where a RemoteLog sends and what it asks about the gateway.
type Sink struct {
	// Publish sends one telemetry payload of the gateway device
	// (v1/devices/me/telemetry, through the uplink's direct path).
	Publish func(ctx context.Context, payload []byte) error
	// MaxPayload, when set, bounds one message (the session's limit).
	MaxPayload func() int
	// Connectors, when set, says which connectors have enableRemoteLogging;
	// it is re-read every few seconds, never on the logging goroutine.
	Connectors func() map[string]bool
	// Logger gets the remote log's own lines (level changes). It must not
	// be a logger that writes to this RemoteLog at a level that could loop.
	Logger zerolog.Logger
}

// Start begins sending to s. It runs once; later calls do nothing.
func (r *RemoteLog) Start(s Sink) {
	r.startOnce.Do(func() {
		r.publish, r.maxPayload, r.enabledFn = s.Publish, s.MaxPayload, s.Connectors
		r.log.Store(&s.Logger)
		r.refreshConnectors()
		go r.run()
	})
}

// Stop sends what is queued with one short attempt and stops the goroutine.
func (r *RemoteLog) Stop() {
	r.startOnce.Do(func() { close(r.done) }) // never started: nothing to wait for
	r.stopOnce.Do(func() { close(r.stop) })
	<-r.done
}

func (r *RemoteLog) refreshConnectors() {
	if r.enabledFn == nil {
		return
	}
	m := r.enabledFn()
	if m == nil {
		m = map[string]bool{}
	}
	r.enabled.Store(&m)
}

func (r *RemoteLog) run() {
	defer close(r.done)
	tick := time.NewTicker(r.opts.ErrorsEvery)
	defer tick.Stop()
	reset := time.NewTicker(r.opts.ErrorsReset)
	defer reset.Stop()
	batch := make([]logItem, 0, r.opts.BatchSize)
	for {
		select {
		case it := <-r.queue:
			batch = r.take(append(batch[:0], it))
			r.sendLines(batch, false)
		case <-tick.C:
			r.refreshConnectors()
			r.sendErrors(false)
		case <-reset.C:
			r.errMu.Lock()
			for k, v := range r.errCounts {
				if v > 0 {
					r.errDirty = true
				}
				r.errCounts[k] = 0
			}
			r.errMu.Unlock()
		case <-r.stop:
			for {
				batch = r.take(batch[:0])
				if len(batch) == 0 {
					break
				}
				if !r.sendLines(batch, true) {
					r.droppedSend.Add(uint64(len(r.queue)))
					break
				}
			}
			r.sendErrors(true)
			return
		}
	}
}

// take adds what is queued to batch, up to the batch size, without waiting.
func (r *RemoteLog) take(batch []logItem) []logItem {
	for len(batch) < r.opts.BatchSize {
		select {
		case it := <-r.queue:
			batch = append(batch, it)
		default:
			return batch
		}
	}
	return batch
}

// sendLines publishes a batch, split to fit the payload limit. While the
// platform is down it waits and retries, so lines logged during an outage
// arrive after it (the queue meanwhile fills and drops). final makes one
// attempt only. It reports whether everything was sent.
func (r *RemoteLog) sendLines(batch []logItem, final bool) bool {
	limit := 8196
	if r.maxPayload != nil {
		if n := r.maxPayload(); n > 0 {
			limit = n
		}
	}
	var payload []byte
	count := 0
	ok := true
	flush := func() {
		if count == 0 {
			return
		}
		payload = append(payload, ']')
		if r.deliver(payload, final) {
			r.sent.Add(uint64(count))
		} else {
			r.droppedSend.Add(uint64(count))
			ok = false
		}
		payload, count = nil, 0
	}
	for _, it := range batch {
		rec := r.record(it, limit-2)
		if count > 0 && len(payload)+1+len(rec)+1 > limit {
			flush()
		}
		if count == 0 {
			payload = append(payload, '[')
		} else {
			payload = append(payload, ',')
		}
		payload = append(payload, rec...)
		count++
	}
	flush()
	return ok
}

// record renders one {"ts":..,"values":{"<KEY>_LOGS":line,"LOGS":line}};
// timestamps are made strictly increasing so records in the same
// millisecond do not overwrite each other on the platform.
func (r *RemoteLog) record(it logItem, max int) []byte {
	ts := it.at.UnixMilli()
	if ts <= r.lastTs {
		ts = r.lastTs + 1
	}
	r.lastTs = ts
	line := formatLine(it)
	build := func(line string) []byte {
		b := []byte(`{"ts":`)
		b = strconv.AppendInt(b, ts, 10)
		b = append(b, `,"values":{`...)
		b = protocols.AppendJSONString(b, it.key+"_LOGS")
		b = append(b, ':')
		b = protocols.AppendJSONString(b, line)
		b = append(b, `,"`+keyAll+`":`...)
		b = protocols.AppendJSONString(b, line)
		return append(b, "}}"...)
	}
	b := build(line)
	if len(b) > max && max > 0 {
		// Two copies of the line share what is left after the envelope.
		room := (max-(len(b)-2*len(line)))/2 - len("…") - 16
		if room < 0 {
			room = 0
		}
		if room < len(line) {
			cut := room
			for cut > 0 && !utf8RuneStart(line[cut]) {
				cut--
			}
			b = build(line[:cut] + "…")
		}
	}
	return b
}

func utf8RuneStart(b byte) bool { return b&0xC0 != 0x80 }

// formatLine turns a zerolog JSON line into upstream's readable shape:
// "2024-05-01 12:00:00.123 - |WARNING| - [connector/device] - message k=v ...".
func formatLine(it logItem) string {
	var m map[string]any
	d := json.NewDecoder(bytes.NewReader(it.line))
	d.UseNumber()
	if err := d.Decode(&m); err != nil {
		return strings.TrimSpace(string(it.line))
	}
	var sb strings.Builder
	sb.WriteString(it.at.Format("2006-01-02 15:04:05.000"))
	sb.WriteString(" - |")
	sb.WriteString(upstreamLevel(it.level))
	sb.WriteString("| - [")
	where := "gateway"
	if c, ok := m["connector"].(string); ok {
		where = c
		if dev, ok := m["device"].(string); ok {
			where += "/" + dev
		}
	} else if a, ok := m["actor"].(string); ok {
		where = a
	}
	sb.WriteString(where)
	sb.WriteString("] - ")
	if msg, ok := m[zerolog.MessageFieldName].(string); ok {
		sb.WriteString(msg)
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		switch k {
		case zerolog.MessageFieldName, zerolog.LevelFieldName, zerolog.TimestampFieldName:
			continue
		}
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		sb.WriteByte(' ')
		sb.WriteString(k)
		sb.WriteByte('=')
		switch v := m[k].(type) {
		case string:
			if strings.ContainsAny(v, " \"=") {
				sb.WriteString(strconv.Quote(v))
			} else {
				sb.WriteString(v)
			}
		default:
			raw, _ := json.Marshal(v)
			sb.Write(raw)
		}
	}
	return sb.String()
}

// deliver publishes one payload, waiting out a platform outage unless final.
func (r *RemoteLog) deliver(payload []byte, final bool) bool {
	for {
		timeout := 10 * time.Second
		if final {
			timeout = time.Second
		}
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		err := r.publish(ctx, payload)
		cancel()
		var rej *platform.RejectedError
		switch {
		case err == nil:
			return true
		case final, errors.As(err, &rej):
			return false // a refused payload will not be taken by retrying
		}
		select {
		case <-r.stop:
			final = true
		case <-time.After(r.opts.Retry):
		}
	}
}

// sendErrors sends the error counters when they changed since the last send.
func (r *RemoteLog) sendErrors(final bool) {
	r.errMu.Lock()
	if !r.errDirty {
		r.errMu.Unlock()
		return
	}
	keys := make([]string, 0, len(r.errCounts))
	var all uint64
	for k, v := range r.errCounts {
		keys = append(keys, k)
		all += v
	}
	sort.Strings(keys)
	b := []byte(`{"ts":`)
	b = strconv.AppendInt(b, time.Now().UnixMilli(), 10)
	b = append(b, `,"values":{`...)
	for _, k := range keys {
		b = protocols.AppendJSONString(b, k+"_ERRORS_COUNT")
		b = append(b, ':')
		b = strconv.AppendUint(b, r.errCounts[k], 10)
		b = append(b, ',')
	}
	b = append(b, `"ALL_ERRORS_COUNT":`...)
	b = strconv.AppendUint(b, all, 10)
	b = append(b, "}}"...)
	r.errDirty = false
	r.errMu.Unlock()
	timeout := 5 * time.Second
	if final {
		timeout = time.Second
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if err := r.publish(ctx, b); err != nil {
		// Not sent: try again at the next tick.
		r.errMu.Lock()
		r.errDirty = true
		r.errMu.Unlock()
	}
}

// Stats are the remote log's own counters.
type RemoteLogStats struct {
	Queued, Sent, DroppedQueueFull, DroppedSend, ErrorLines uint64
}

// Stats returns the counters.
func (r *RemoteLog) Stats() RemoteLogStats {
	return RemoteLogStats{Queued: r.queued.Load(), Sent: r.sent.Load(), DroppedQueueFull: r.droppedFull.Load(),
		DroppedSend: r.droppedSend.Load(), ErrorLines: r.errLines.Load()}
}

// Collector exports the remote log's counters and level.
func (r *RemoteLog) Collector() prometheus.Collector { return (*remoteLogCollector)(r) }

type remoteLogCollector RemoteLog

var (
	descRLSent    = prometheus.NewDesc(Namespace+"_remote_log_lines_sent_total", "Log lines delivered to the platform as *_LOGS telemetry.", nil, nil)
	descRLDropped = prometheus.NewDesc(Namespace+"_remote_log_lines_dropped_total", "Log lines not delivered: queue_full (the logger never waits) or send (refused, or pending at shutdown).", []string{"reason"}, nil)
	descRLErrors  = prometheus.NewDesc(Namespace+"_log_error_lines_total", "Log lines at error level or above.", nil, nil)
	descRLLevel   = prometheus.NewDesc(Namespace+"_remote_log_level", "Remote logging threshold as a zerolog level (-1 trace .. 4 critical); 7 when off.", nil, nil)
	descRLQueue   = prometheus.NewDesc(Namespace+"_remote_log_queue_lines", "Log lines waiting to be sent.", nil, nil)
)

func (c *remoteLogCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descRLSent, descRLDropped, descRLErrors, descRLLevel, descRLQueue} {
		ch <- d
	}
}

func (c *remoteLogCollector) Collect(ch chan<- prometheus.Metric) {
	r := (*RemoteLog)(c)
	s := r.Stats()
	ch <- prometheus.MustNewConstMetric(descRLSent, prometheus.CounterValue, float64(s.Sent))
	ch <- prometheus.MustNewConstMetric(descRLDropped, prometheus.CounterValue, float64(s.DroppedQueueFull), "queue_full")
	ch <- prometheus.MustNewConstMetric(descRLDropped, prometheus.CounterValue, float64(s.DroppedSend), "send")
	ch <- prometheus.MustNewConstMetric(descRLErrors, prometheus.CounterValue, float64(s.ErrorLines))
	lvl, on := r.Level()
	v := float64(zerolog.Disabled)
	if on {
		v = float64(lvl)
	}
	ch <- prometheus.MustNewConstMetric(descRLLevel, prometheus.GaugeValue, v)
	ch <- prometheus.MustNewConstMetric(descRLQueue, prometheus.GaugeValue, float64(len(r.queue)))
}
