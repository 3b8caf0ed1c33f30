package actors

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/rs/zerolog"

	"github.com/industryos/gateway/actors/observe"
	"github.com/industryos/gateway/persistence"
	"github.com/industryos/gateway/protocols"
	"github.com/industryos/gateway/protocols/kit/ratelimit"
	"github.com/industryos/gateway/protocols/platform"
)

// Uplink tuning. A chunk is one journal read; its messages are published
// concurrently and the chunk is acknowledged once every one of them was
// PUBACKed and every earlier chunk was too.
const (
	maxChunks      = 8
	chunkBytes     = 256 << 10
	publishWorkers = 64
	jobQueue       = 4096
	pumpInterval   = time.Second
)

type chunk struct {
	last    uint64 // highest seq in the chunk; 0 for the reconnect preamble
	pending int
	failed  bool
	held    []platform.Message // sent once the connect messages are acked
	values  int
}

type job struct {
	c   *chunk
	msg platform.Message
}

type publishDone struct {
	c     *chunk
	msg   platform.Message
	err   error
	start time.Time
}

type pumpTick struct{ owner *uplinkActor }

// publishDone must never be dropped by a full mailbox, or its chunk would
// never complete; the number in flight is bounded by jobQueue anyway.
func (*publishDone) ControlMessage() {}

// uplinkDeps are the uplink's collaborators, given by the gateway (or a test).
type uplinkDeps struct {
	j         persistence.Journal
	journal   func() *actor.PID // where acks go
	platform  func() platform.Config
	log       zerolog.Logger
	counters  *Counters
	qos       byte
	readBat   int
	renames   *renames // applied at delivery
	onMessage func(topic string, payload []byte)
	// onUp runs after every (re)connect, on the actor; it must not block.
	onUp func()
	// published, when set, holds the current client for senders that
	// bypass the journal (RPC replies, remote logs, statistics).
	published *atomic.Pointer[platform.Client]
	metrics   *observe.Metrics // nil: metrics off
}

// uplinkActor streams the journal to the platform. It is the only place that
// acknowledges journal records, and only for records whose messages were all
// PUBACKed; anything else is re-read and re-sent (at-least-once).
type uplinkActor struct {
	uplinkDeps
	client *platform.Client

	self      *actor.PID
	jobs      chan job
	cancel    context.CancelFunc
	wg        sync.WaitGroup
	sendMu    sync.Mutex // see worker
	stopTick  func()
	connected bool
	resetting bool
	inflight  int
	readPos   uint64
	ackPos    uint64
	chunks    []*chunk
	preamble  *chunk
	known     map[string]string // device → type, re-announced after a reconnect
	packBuf   []platform.Message
	events    []protocols.Event
	dec       protocols.EventDecoder // events live until the chunk is packed
	logLimit  ratelimit.KeyedLines   // repeated errors: one line per interval with a suppressed count
}

func (u *uplinkActor) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *actor.Started:
		u.start(ctx)
	case *JournalAppended, *pumpTick:
		if t, ok := m.(*pumpTick); ok && t.owner != u {
			return
		}
		u.pump(ctx)
	case *connectionUp:
		u.connected = true
		u.counters.Reconnects.Add(1)
		u.log.Info().Msg("platform connected")
		if u.onUp != nil {
			u.onUp()
		}
		u.announce()
		u.pump(ctx)
	case *connectionDown:
		if u.connected {
			u.log.Warn().Err(m.err).Msg("platform connection lost; data stays in the journal")
		}
		u.connected = false
		u.resetting = u.resetting || u.inflight > 0 || len(u.chunks) > 0
		u.maybeReset(ctx)
	case *publishDone:
		u.done(ctx, m)
	case *announceDevices:
		for dev, typ := range m.devices {
			u.known[dev] = typ
		}
		if u.connected && u.preamble == nil {
			u.announce()
		}
	case *actor.Stopping, *actor.Restarting:
		u.stop()
	}
}

func (u *uplinkActor) start(ctx actor.Context) {
	u.self = ctx.Self()
	u.known = map[string]string{}
	u.readPos = u.j.Cursor()
	u.ackPos = u.readPos
	u.jobs = make(chan job, jobQueue)
	runCtx, cancel := context.WithCancel(context.Background())
	u.cancel = cancel
	sys, self := ctx.ActorSystem(), ctx.Self()
	client, err := platform.New(u.platform(), platform.Options{
		Logger:           u.log,
		OnConnectionUp:   func() { sys.Root.Send(self, &connectionUp{}) },
		OnConnectionDown: func(err error) { sys.Root.Send(self, &connectionDown{err: err}) },
		OnMessage:        u.onMessage,
	})
	if err != nil {
		// A restart would fail the same way: one line, no crash loop. The
		// data stays journaled until a config change restarts the tree.
		u.log.Error().Err(err).Msg("cannot start the platform connection; data stays in the journal")
		cancel()
		return
	}
	u.client = client
	if u.published != nil {
		u.published.Store(client)
	}
	for i := 0; i < publishWorkers; i++ {
		u.wg.Add(1)
		go u.worker(runCtx, sys, self)
	}
	if err := client.Start(runCtx); err != nil {
		u.log.Error().Err(err).Msg("cannot start the platform connection; data stays in the journal")
		return
	}
	u.stopTick = every(sys, self, pumpInterval, &pumpTick{owner: u})
}

func (u *uplinkActor) stop() {
	if u.stopTick != nil {
		u.stopTick()
	}
	if u.cancel != nil {
		u.cancel()
	}
	if u.client != nil {
		if u.published != nil {
			u.published.CompareAndSwap(u.client, nil)
		}
		cctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_ = u.client.Close(cctx)
		cancel()
		u.client = nil
	}
	if u.jobs != nil {
		close(u.jobs)
		u.wg.Wait()
		u.jobs = nil
	}
}

// worker publishes one message at a time; several workers give several
// messages in flight, bounded further by the broker's Receive Maximum inside paho.
// Messages go on the wire in the journal's order: a worker holds sendMu from
// taking its job until its PUBLISH is written, so a device's attributes or
// its disconnect never overtake its earlier messages. The workers still wait
// for their PUBACKs side by side.
func (u *uplinkActor) worker(ctx context.Context, sys *actor.ActorSystem, self *actor.PID) {
	defer u.wg.Done()
	for {
		u.sendMu.Lock()
		jb, ok := <-u.jobs
		if !ok {
			u.sendMu.Unlock()
			return
		}
		start, err := u.publish(ctx, jb.msg, u.sendMu.Unlock)
		sys.Root.Send(self, &publishDone{c: jb.c, msg: jb.msg, err: err, start: start})
	}
}

// maxQuotaRetries bounds the resends of a message refused with PUBACK 0x83:
// ThingsBoard uses that code for rate limits, but a broker may use it for a
// message it will never take, which must not stall the journal for ever.
const maxQuotaRetries = 5

// publish waits for the platform's rate limits (without a deadline: the
// data waits in the journal), then publishes; a refusal for quota makes the
// limiters wait out the window and the message is sent again. start is when
// the last attempt was handed to the client, after any rate-limit wait.
// sent is called once, when the first attempt is written or has failed
// before that (a resend after a quota refusal may go out of order).
func (u *uplinkActor) publish(ctx context.Context, m platform.Message, sent func()) (start time.Time, err error) {
	defer func() {
		if sent != nil {
			sent()
		}
	}()
	for tries := 1; ; tries++ {
		if err := ctx.Err(); err != nil {
			return time.Now(), err
		}
		if _, err := u.client.Admit(ctx, m.Topic, m.Values); err != nil {
			return time.Now(), err
		}
		start = time.Now()
		pctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		if sent != nil {
			first := sent
			sent = nil
			err = u.client.PublishThen(pctx, m.Topic, m.Payload, u.qos, first)
		} else {
			err = u.client.Publish(pctx, m.Topic, m.Payload, u.qos)
		}
		cancel()
		var qe *platform.QuotaError
		if !errors.As(err, &qe) || ctx.Err() != nil {
			return start, err
		}
		if qe.Reason != platform.ReasonQuotaExceeded && tries >= maxQuotaRetries {
			return start, &platform.RejectedError{Topic: qe.Topic, Reason: qe.Reason, Detail: qe.Detail}
		}
	}
}

// announce re-sends connect for every known device before any data, as the
// platform may have forgotten the session.
func (u *uplinkActor) announce() {
	if len(u.known) == 0 {
		return
	}
	c := &chunk{}
	for dev, typ := range u.known {
		c.pending++
		u.enqueue(c, platform.Message{Topic: platform.TopicConnect, Payload: platform.ConnectPayload(dev, typ)})
	}
	u.preamble = c
}

func (u *uplinkActor) enqueue(c *chunk, m platform.Message) {
	u.inflight++
	u.jobs <- job{c: c, msg: m}
}

func (u *uplinkActor) pump(ctx actor.Context) {
	for u.connected && !u.resetting && u.preamble == nil && len(u.chunks) < maxChunks {
		if len(u.jobs) > jobQueue/2 {
			return
		}
		recs, err := u.j.Read(u.readPos, u.readBat, chunkBytes)
		if err != nil {
			if ok, n := u.logLimit.Allow("read", time.Now()); ok {
				u.log.Error().Err(err).Int("suppressed", n).Msg("journal read failed")
			}
			return
		}
		if len(recs) == 0 {
			return
		}
		clear(u.events)
		u.events = u.events[:0]
		u.dec.Reset()
		for _, r := range recs {
			ev, err := u.dec.Decode(r.Data)
			if err != nil {
				u.counters.CorruptRecords.Add(1)
				if ok, n := u.logLimit.Allow("corrupt", time.Now()); ok {
					u.log.Error().Err(err).Uint64("seq", r.Seq).Int("suppressed", n).Msg("skipping corrupt journal record")
				}
				continue
			}
			// Renames apply at delivery, so data journaled before a rename
			// also arrives under the new name.
			if u.renames != nil {
				ev.Device = u.renames.toPlatform(ev.Device)
			}
			switch ev.Kind {
			case protocols.EventConnect:
				u.known[ev.Device] = ev.DeviceType
			case protocols.EventDisconnect:
				delete(u.known, ev.Device)
			}
			u.events = append(u.events, ev)
		}
		u.readPos = recs[len(recs)-1].Seq
		c := &chunk{last: u.readPos}
		// Fresh buffers: the previous chunk's payloads may still be in flight.
		lim := u.client.Limits()
		u.packBuf = platform.PackLimited(u.events, lim.MaxPayload, lim.MaxValues(), nil)
		// Connect messages go first and alone, so the platform creates a
		// device with its profile before telemetry could create it as "default".
		var rest []platform.Message
		for _, m := range u.packBuf {
			if m.Topic == platform.TopicConnect {
				c.pending++
			} else {
				rest = append(rest, m)
			}
		}
		u.chunks = append(u.chunks, c)
		if c.pending > 0 {
			c.held = rest
			for _, m := range u.packBuf {
				if m.Topic == platform.TopicConnect {
					u.enqueue(c, m)
				}
			}
		} else {
			u.release(c, rest)
		}
		if c.pending == 0 {
			u.advance(ctx)
		}
	}
}

func (u *uplinkActor) release(c *chunk, msgs []platform.Message) {
	for _, m := range msgs {
		c.pending++
		u.enqueue(c, m)
	}
}

func (u *uplinkActor) done(ctx actor.Context, m *publishDone) {
	u.inflight--
	m.c.pending--
	var rej *platform.RejectedError
	switch {
	case m.err == nil:
		u.metrics.ObservePuback(time.Since(m.start).Seconds())
		u.counters.MessagesSent.Add(1)
		u.counters.ValuesDelivered.Add(uint64(m.msg.Values))
		// PUBACKed: the session no longer holds the packet. A failed
		// publish's payload may still be resent from it, so only this one.
		platform.RecyclePayload(m.msg.Payload)
	case errors.As(m.err, &rej):
		// The platform will never take this message; retrying would block
		// the journal forever, so it is counted and logged as a drop.
		u.counters.PlatformRejected.Add(1)
		if ok, n := u.logLimit.Allow("rejected", time.Now()); ok {
			u.log.Error().Err(m.err).Str("topic", m.msg.Topic).Int("values", m.msg.Values).Int("suppressed", n).Msg("platform rejected message; dropped")
		}
	default:
		u.counters.PublishFailures.Add(1)
		m.c.failed = true
		u.resetting = true
	}
	if m.c == u.preamble && m.c.pending == 0 {
		u.preamble = nil
	}
	if m.c.pending == 0 && m.c.held != nil && !m.c.failed {
		held := m.c.held
		m.c.held = nil
		u.release(m.c, held)
	}
	u.advance(ctx)
	u.maybeReset(ctx)
	u.pump(ctx)
}

// advance acknowledges the longest prefix of fully delivered chunks.
func (u *uplinkActor) advance(ctx actor.Context) {
	acked := u.ackPos
	for len(u.chunks) > 0 {
		c := u.chunks[0]
		if c.pending > 0 || c.failed || c.held != nil {
			break
		}
		acked = c.last
		u.chunks = u.chunks[1:]
	}
	if acked > u.ackPos {
		u.ackPos = acked
		ctx.Send(u.journal(), &Ack{UpTo: acked})
	}
}

// maybeReset rewinds to the last acknowledged record once nothing is in
// flight, so everything not PUBACKed is read and sent again.
func (u *uplinkActor) maybeReset(ctx actor.Context) {
	if !u.resetting || u.inflight > 0 {
		return
	}
	u.resetting = false
	u.chunks = nil
	u.preamble = nil
	u.readPos = u.ackPos
	if u.connected {
		u.pump(ctx)
	}
}
