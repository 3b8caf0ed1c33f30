package actors

import (
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/industryos/gateway/protocols"
	"github.com/industryos/gateway/protocols/kit/report"
)

// pushData is one Push on its way to the device actor. Its window slot is
// freed, and the source told, exactly once (the journal, a full mailbox or
// a filter may each be the one to finish it); one allocation per message.
type pushData struct {
	p        protocols.Push
	window   chan struct{}
	finished atomic.Bool
}

// done frees the window slot, then calls p.Done.
func (m *pushData) done(err error) {
	if !m.finished.CompareAndSwap(false, true) {
		return
	}
	<-m.window
	if m.p.Done != nil {
		m.p.Done(err)
	}
}

func (m *pushData) dropped() { m.done(errMailboxFull) }

type pushConnect struct{ profile string }
type pushDisconnect struct{}

// pushTick drives report periods and activity checks of pushed devices,
// which have no poll to hang them on.
type pushTick struct{ owner *deviceActor }

func (*pushConnect) ControlMessage()    {}
func (*pushDisconnect) ControlMessage() {}

// adoptReport takes the report strategies of a device created without
// them (by a connect request or a command) from its first data.
func (d *deviceActor) adoptReport(ctx actor.Context, rs protocols.ReportStrategy, krs map[string]protocols.ReportStrategy) {
	d.reportSet = true
	d.info.Report = rs.Or(d.env.conf().ThingsBoard.Report)
	d.info.KeyReport = krs
	d.tel = report.NewFilter(d.info.Report, d.info.KeyReport)
	d.attr = report.NewFilter(d.info.Report, d.info.KeyReport)
	if d.stopTick != nil {
		d.stopTick()
		d.stopTick = nil
	}
	d.startTicker(ctx)
}

// startPushed prepares a pushed device: no polls, a ticker when report
// periods or activity checks need one.
func (d *deviceActor) startPushed(ctx actor.Context) {
	ctx.Send(d.registry, &deviceUp{name: d.info.Name, connector: d.connector, pid: ctx.Self()})
	d.startTicker(ctx)
}

func (d *deviceActor) startTicker(ctx actor.Context) {
	tick := time.Duration(0)
	if act := d.env.conf().Activity; act.Enabled && act.Period > 0 {
		tick = act.Period
	}
	periods := []protocols.ReportStrategy{d.info.Report}
	for _, r := range d.info.KeyReport {
		periods = append(periods, r)
	}
	for _, r := range periods {
		if r.Period > 0 && (r.Type == protocols.OnReportPeriod || r.Type == protocols.OnChangeOrReportPeriod) && (tick == 0 || r.Period < tick) {
			tick = r.Period
		}
	}
	if tick > 0 {
		d.stopTick = every(d.sys, ctx.Self(), max(tick, 50*time.Millisecond), &pushTick{owner: d})
	}
}

// pushed takes one Push from the source.
func (d *deviceActor) pushed(ctx actor.Context, m *pushData) {
	if d.filtered {
		d.cc.FilteredEvents.Add(1)
		m.done(nil)
		return
	}
	if !d.reportSet && (m.p.Report.IsSet() || len(m.p.KeyReport) > 0) {
		d.adoptReport(ctx, m.p.Report, m.p.KeyReport)
	}
	now := time.Now()
	ts := m.p.Ts
	if ts.IsZero() {
		ts = now
	}
	d.lastData = now
	var events []protocols.Event
	if !d.connected {
		events = d.connect(ctx, now, events)
	}
	owner := handedReading
	if m.p.Pooled {
		owner = pooledReading
	}
	events = d.emit(now, ts, m.p.Reading, events, owner)
	d.deliverRecycling(ctx, events, m.done, m.p.Pooled)
}

// pushControl handles connect and disconnect requests and the ticker.
func (d *deviceActor) pushControl(ctx actor.Context, msg any) {
	if d.filtered {
		return
	}
	now := time.Now()
	var events []protocols.Event
	switch m := msg.(type) {
	case *pushConnect:
		if m.profile != "" {
			d.info.Type = m.profile
		}
		d.lastData = now
		if !d.connected {
			events = d.connect(ctx, now, events)
		}
	case *pushDisconnect:
		if d.connected {
			events = d.disconnect(ctx, now, events)
		}
	case *pushTick:
		if m.owner != d {
			return
		}
		events = d.due(now, events)
		if act := d.env.conf().Activity; act.Enabled && d.connected && now.Sub(d.lastData) > act.Timeout {
			d.logger().Info().Dur("idle", now.Sub(d.lastData)).Msg("no data within the inactivity timeout; disconnecting the device from the platform")
			events = d.disconnect(ctx, now, events)
		}
	}
	d.deliver(ctx, events, nil)
}
