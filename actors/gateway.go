package actors

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/rs/zerolog"

	"github.com/industryos/gateway/actors/actorsys"
	"github.com/industryos/gateway/actors/bus"
	"github.com/industryos/gateway/actors/observe"
	"github.com/industryos/gateway/mailbox"
	"github.com/industryos/gateway/persistence"
	"github.com/industryos/gateway/protocols/config"
	"github.com/industryos/gateway/protocols/platform"
	"github.com/industryos/gateway/supervisor"
)

// Options configure a Gateway.
type Options struct {
	Config *config.Gateway
	Logger zerolog.Logger
	// Journal, when set, is used instead of opening one from Config.Storage
	// (tests and the demo). The gateway closes it on Stop either way.
	Journal persistence.Journal
	// OnPlatformMessage, when set, also sees every downlink message (tests, tools).
	OnPlatformMessage func(topic string, payload []byte)
	// Version is reported by gateway_version and the Version attribute.
	Version string
	// RemoteConfigTrial is how long a remotely changed platform connection
	// gets to come up before the previous one is restored (default 30 s).
	RemoteConfigTrial time.Duration
	// RemoteLog, when set, is the remote log the Logger writes to (see
	// observe.NewLogger); the gateway sends it to the platform and applies
	// RemoteLoggingLevel to it.
	RemoteLog *observe.RemoteLog
	// Alive, when set, is called every AliveEvery (default 10 s) from the root actor while
	// the journal, uplink and registry actors answer (systemd's WATCHDOG=1).
	Alive      func()
	AliveEvery time.Duration
}

// Gateway is a running actor tree.
type Gateway struct {
	opts     Options
	cfg      *config.Gateway
	log      zerolog.Logger
	sys      *actor.ActorSystem
	counters *Counters
	j        persistence.Journal
	polls    pollGate // polls in flight, for the journal's early commit
	slots    slotPlan // devices per poll slot

	root, journal, uplink, registry *actor.PID
	watchdogStop                    chan struct{}
	watchdog                        *watchdog
	props                           *propsKit
	connectors                      []*actor.PID
	strategy                        *supervisor.Strategy
	dispatcher                      *mailbox.PooledDispatcher
	// client is the uplink's current platform client, for messages that are
	// not journaled (RPC replies, remote logs, statistics).
	client atomic.Pointer[platform.Client]

	renames      *renames
	down         *downlink
	stats        *statistics
	attrs        attrRequests
	connCounters sync.Map // connector name → *ConnectorCounters
	links        sync.Map // connector name → *linkState of a push source
	cancel       context.CancelFunc
	treeMu       sync.Mutex    // serialises Stop, Restart and Reload
	stateMu      sync.RWMutex  // guards cfg, connectors and connEnv across reloads
	connEnv      *connectorEnv // the running tree's, so a reload can start one connector
	stopped      bool
	remote       *remoteConfig // nil unless remoteConfiguration is on
	obs          *observability
	bus          *bus.Bus // outlives tree restarts, so subscriptions do
	// automationStatus answers /automation (SetAutomationStatus).
	automationStatus atomic.Pointer[func() any]
	localRPC         atomic.Int64 // ids of DeviceRPC requests
	// automationStats is sent with the statistics (SetAutomationStats).
	automationStats atomic.Pointer[func() any]
	// automationRemote applies KeyAutomation (SetAutomationRemote).
	automationRemote atomic.Pointer[AutomationApplier]
	// services are the ones Start started: Stop stops these, whatever a
	// reload made of the config since.
	services []config.Service
}

// onPlatformUp runs (in its own goroutine) after every (re)connect.
func (g *Gateway) onPlatformUp() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := g.PublishDirect(ctx, platform.TopicMeAttributes, g.stats.startupAttributes(), 1); err != nil {
		g.log.Debug().Err(err).Msg("gateway attributes not sent")
	}
	if g.remote != nil {
		g.remote.announce()
	}
	g.obs.requestRemoteLoggingLevel()
}

// OnGatewayAttributes registers a handler for shared-attribute updates of the
// gateway device itself (remote configuration, RemoteLoggingLevel). Call it
// before the platform connects; handlers run on the MQTT goroutine and must
// not block.
func (g *Gateway) OnGatewayAttributes(h func(map[string]json.RawMessage)) {
	g.down.gatewayAttributes = append(g.down.gatewayAttributes, h)
}

// ask sends msg to pid and waits for the answer until ctx's deadline (5 s
// when ctx has none).
func (g *Gateway) ask(ctx context.Context, pid *actor.PID, msg any) (any, error) {
	timeout := 5 * time.Second
	if d, ok := ctx.Deadline(); ok {
		timeout = time.Until(d)
	}
	return g.sys.Root.RequestFuture(pid, msg, timeout).Result()
}

// Devices lists the connected devices.
func (g *Gateway) Devices(ctx context.Context) ([]DeviceConnected, error) {
	res, err := g.ask(ctx, g.registry, &ListDevices{})
	if err != nil {
		return nil, fmt.Errorf("registry: %w", err)
	}
	devs := res.(*DeviceList).Devices
	sort.Slice(devs, func(i, j int) bool { return devs[i].Device < devs[j].Device })
	return devs, nil
}

// ErrPlatformDown is returned by PublishDirect while no session is up.
var ErrPlatformDown = errors.New("platform not connected")

// PublishWhenUp is PublishDirect that first waits (within ctx) for a
// session, for replies that follow a restart of the tree.
func (g *Gateway) PublishWhenUp(ctx context.Context, topic string, payload []byte, qos byte) error {
	for {
		err := g.PublishDirect(ctx, topic, payload, qos)
		if !errors.Is(err, ErrPlatformDown) && !errors.Is(err, platform.ErrNotConnected) {
			return err
		}
		if !g.waitConnected(ctx) {
			return err
		}
	}
}

// waitConnected waits until a platform session is up or ctx ends.
func (g *Gateway) waitConnected(ctx context.Context) bool {
	for {
		if c := g.client.Load(); c != nil && c.Connected() {
			return true
		}
		select {
		case <-ctx.Done():
			return false
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// PublishDirect publishes a message that does not go through the journal:
// RPC replies, remote logs and statistics, which are worthless when late.
// It fails fast with ErrPlatformDown when the platform is not connected.
func (g *Gateway) PublishDirect(ctx context.Context, topic string, payload []byte, qos byte) error {
	c := g.client.Load()
	if c == nil || !c.Connected() {
		return ErrPlatformDown
	}
	values := 0
	if topic == platform.TopicMeTelemetry || topic == platform.TopicMeAttributes {
		values = platform.PayloadValues(payload)
	}
	if _, err := c.Admit(ctx, topic, values); err != nil {
		return err
	}
	return c.Publish(ctx, topic, payload, qos)
}

// Start opens the journal and starts the whole tree.
func Start(opts Options) (*Gateway, error) {
	if opts.Config == nil {
		return nil, errors.New("gateway: no config")
	}
	g := &Gateway{opts: opts, cfg: opts.Config, log: opts.Logger, counters: &Counters{}, renames: newRenames()}
	if g.opts.Version == "" {
		g.opts.Version = "dev"
	}
	g.j = opts.Journal
	if g.j == nil {
		j, err := OpenJournal(opts.Config.Storage, opts.Logger)
		if err != nil {
			return nil, err
		}
		g.j = j
	}
	g.startServices()
	// Before the first actor system: protoactor's process registry sharding
	// (see actorsys.Configure), the same on 64- and 32-bit targets.
	actorsys.Configure()
	g.dispatcher = mailbox.NewPooledDispatcher(300, 30*time.Second)
	g.sys = actorsys.New(actor.WithLoggerFactory(slogFactory(opts.Logger)),
		actor.WithDeveloperSupervisionLogging(false))
	g.bus = bus.New(g.sys)
	g.strategy = supervisor.NewStrategy(
		supervisor.WithBackoff(100*time.Millisecond, 30*time.Second),
		supervisor.WithCrashLoop(5, time.Minute),
		supervisor.WithEvents(g.onSupervisorEvent),
	)
	g.down = &downlink{
		sys: g.sys, registry: func() *actor.PID { return g.registry }, renames: g.renames,
		counters: g.counters, log: g.log, tap: opts.OnPlatformMessage, goSafe: g.goSafe,
		publish: g.PublishWhenUp, gatewayRPC: g.gatewayRPC, attrs: &g.attrs,
	}
	if g.cfg.ThingsBoard.RemoteConfiguration && g.cfg.File != "" {
		g.remote = &remoteConfig{remoteConfigDeps: remoteConfigDeps{
			log: g.log, conf: g.conf, apply: g.applyChanges, waitConnected: g.waitConnected,
			publishWhenUp: g.PublishWhenUp, publishDirect: g.PublishDirect, goSafe: g.goSafe,
			trialFor: opts.RemoteConfigTrial,
			automation: func() AutomationApplier {
				if f := g.automationRemote.Load(); f != nil {
					return *f
				}
				return nil
			},
		}}
		g.OnGatewayAttributes(g.remote.enqueue)
	}
	if err := g.startObservability(); err != nil {
		_ = g.j.Close()
		return nil, err
	}
	g.stats = &statistics{
		counters: g.counters, journal: g.j, client: &g.client, conf: g.conf,
		connectorCounters: g.ConnectorCounters, publish: g.PublishDirect,
		version: g.opts.Version, log: g.log,
		automation: func() any {
			if f := g.automationStats.Load(); f != nil {
				return (*f)()
			}
			return nil
		},
	}
	g.props = &propsKit{
		dispatcher: g.dispatcher,
		drops:      &g.counters.MailboxDrops,
		panicLog:   g.obs.actorLogger,
		metrics:    g.Metrics(),
	}
	g.watchdog = &watchdog{
		alive:  opts.Alive,
		core:   func() []*actor.PID { return []*actor.PID{g.journal, g.uplink, g.registry} },
		goSafe: g.goSafe,
		log:    g.log,
	}
	if err := g.startTree(true); err != nil {
		return nil, err
	}
	if opts.Alive != nil {
		every := opts.AliveEvery
		if every <= 0 {
			every = 10 * time.Second
		}
		done := make(chan struct{})
		g.watchdogStop = done
		g.goSafe("watchdog", func() { g.watchdog.run(g.sys, g.root, every, done) })
	}
	return g, nil
}

// keepFirst stores spawned in *pid only on the first start: a restarted
// child has the same name and so the same PID, and not writing it again
// keeps readers on other goroutines (RPC routing) race-free.
func keepFirst(pid **actor.PID, spawned *actor.PID) {
	if *pid == nil {
		*pid = spawned
	}
}

// conf is the current configuration; a remote reload swaps it.
func (g *Gateway) conf() *config.Gateway {
	g.stateMu.RLock()
	defer g.stateMu.RUnlock()
	return g.cfg
}

// connectorPIDs pairs the current connector configs with their actors.
func (g *Gateway) connectorPIDs() ([]config.Connector, []*actor.PID) {
	g.stateMu.RLock()
	defer g.stateMu.RUnlock()
	return g.cfg.Connectors, g.connectors
}

func (g *Gateway) connectorPID(name string) *actor.PID {
	cfgs, pids := g.connectorPIDs()
	for i, c := range cfgs {
		if c.Name == name && i < len(pids) {
			return pids[i]
		}
	}
	return nil
}

// Reload replaces the configuration and restarts the tree with it; the
// journal stays open and keeps everything buffered.
func (g *Gateway) Reload(ctx context.Context, cfg *config.Gateway) error {
	return g.restartTree(ctx, cfg)
}

// Restart stops and starts the actor tree in-process, keeping the journal,
// so nothing buffered is lost (gateway_restart).
func (g *Gateway) Restart(ctx context.Context) error {
	g.log.Info().Msg("restarting the actor tree")
	return g.restartTree(ctx, nil)
}

// restartTree stops the tree and starts it again, with cfg when given (its
// connectors are already built) or else the current config rebuilt.
func (g *Gateway) restartTree(ctx context.Context, cfg *config.Gateway) error {
	g.treeMu.Lock()
	defer g.treeMu.Unlock()
	if g.stopped {
		return errors.New("gateway is stopping")
	}
	g.stopTree(ctx)
	if cfg != nil {
		g.stateMu.Lock()
		g.cfg = cfg
		g.stateMu.Unlock()
	}
	g.counters.TreeRestarts.Add(1)
	return g.startTree(cfg != nil)
}

// startTree spawns the actor tree over the open journal. fresh is false on
// an in-process restart, when connectors must be rebuilt from their config.
// Each actor gets its collaborators here; none of them holds the Gateway.
func (g *Gateway) startTree(fresh bool) error {
	wd := g.watchdog
	rootProps := actor.PropsFromProducer(func() actor.Actor { return &rootActor{watchdog: wd} },
		actor.WithGuardian(g.strategy), actor.WithSupervisor(g.strategy))
	root, err := g.sys.Root.SpawnNamed(rootProps, "gateway")
	if err != nil {
		return fmt.Errorf("gateway: %w", err)
	}
	if g.root == nil {
		g.root = root
	}

	registryFile := ""
	if f := g.conf().File; f != "" {
		registryFile = filepath.Join(filepath.Dir(f), persistence.DevicesFile)
	}
	regLog := g.log.With().Str("actor", "registry").Logger()
	saved := loadRegistry(registryFile, regLog)
	for name, s := range saved {
		if s.Renaming != nil {
			g.renames.set(name, *s.Renaming)
		}
	}
	// The journal and the uplink name each other; the getters read the PIDs
	// once both are spawned.
	journalPID := func() *actor.PID { return g.journal }
	uplinkPID := func() *actor.PID { return g.uplink }
	keepFirst(&g.journal, g.spawnChild("journal", g.props.props(func() actor.Actor {
		return &journalActor{j: g.j, uplink: uplinkPID, log: g.log.With().Str("actor", "journal").Logger(), counters: g.counters,
			linger: g.conf().Storage.CommitInterval}
	}, WithMailbox(journalMailbox))))
	up := uplinkDeps{
		j: g.j, journal: journalPID, platform: g.platformConfig,
		log: g.log.With().Str("actor", "uplink").Logger(), counters: g.counters,
		qos: 1, readBat: g.conf().Storage.ReadBatch, renames: g.renames,
		onMessage: g.down.onMessage,
		onUp:      func() { g.goSafe("platform session setup", g.onPlatformUp) },
		published: &g.client, metrics: g.Metrics(),
	}
	keepFirst(&g.uplink, g.spawnChild("uplink", g.props.props(func() actor.Actor {
		return &uplinkActor{uplinkDeps: up}
	}, WithMailbox(uplinkMailbox))))
	keepFirst(&g.registry, g.spawnChild("registry", g.props.props(func() actor.Actor {
		// A restarted registry starts from the last saved state.
		return &registryActor{renames: g.renames, connector: g.connectorPID, uplink: uplinkPID, path: registryFile, log: regLog, saved: saved}
	}, WithMailbox(deviceMailbox))))
	g.polls.setLookahead(cmp.Or(g.conf().Storage.CommitInterval, defaultLinger))
	env := &connectorEnv{
		devices: &deviceEnv{
			journal: g.journal, registry: g.registry, counters: g.counters,
			connectorCounters: g.ConnectorCounters, metrics: g.Metrics(), conf: g.conf,
			syncShared: func(device string, keys []string) {
				g.goSafe("shared attribute sync", func() { g.syncSharedAttributes(device, keys) })
			},
			bus:   g.bus,
			polls: &g.polls,
			slots: &g.slots,
		},
		props:             g.props,
		goSafe:            g.goSafe,
		links:             &g.links,
		requestAttributes: g.RequestAttributes,
	}
	g.stateMu.Lock()
	g.connEnv = env
	g.stateMu.Unlock()
	cfg := g.conf()
	var connectors []*actor.PID
	for _, c := range cfg.Connectors {
		connectors = append(connectors, g.spawnConnector(c, fresh))
	}
	g.stateMu.Lock()
	g.connectors = connectors
	g.stateMu.Unlock()
	bg, cancel := context.WithCancel(context.Background())
	g.cancel = cancel
	if cfg.ThingsBoard.StatsEnabled && cfg.ThingsBoard.StatsPeriod > 0 {
		g.goSafe("statistics", func() { g.stats.loop(bg, cfg.ThingsBoard.StatsPeriod) })
	}
	return nil
}

// spawnConnector starts one connector's actor under the root. fresh uses
// the connector c was loaded with for the first start instead of building
// it again.
func (g *Gateway) spawnConnector(c config.Connector, fresh bool) *actor.PID {
	first := fresh
	log := g.log.With().Str("connector", c.Name).Logger()
	g.stateMu.Lock()
	env := g.connEnv
	g.stateMu.Unlock()
	props := g.props.props(func() actor.Actor {
		return &connectorActor{cfg: c, env: env, log: log, first: &first}
	}, WithMailbox(deviceMailbox), WithSupervisor(g.strategy))
	return g.spawnChild("connector/"+c.Name, props)
}

// stopTree stops the tree in order — connectors with their devices, a final
// journal flush, a short uplink drain, the uplink, the rest — and leaves the
// journal open.
func (g *Gateway) stopTree(ctx context.Context) {
	g.cancel()
	_, connectors := g.connectorPIDs()
	for _, c := range connectors {
		_ = g.sys.Root.StopFuture(c).Wait()
	}
	// Every device has stopped, so everything it sent is queued at the
	// journal ahead of this Flush.
	last := g.j.LastSeq()
	if res, err := g.sys.Root.RequestFuture(g.journal, &Flush{}, 2*time.Second).Result(); err != nil {
		g.log.Warn().Err(err).Msg("final journal flush did not answer")
	} else {
		last = res.(*Flushed).Last
	}
	g.drain(ctx, last)
	_ = g.sys.Root.StopFuture(g.uplink).Wait()
	_ = g.sys.Root.StopFuture(g.journal).Wait()
	_ = g.sys.Root.StopFuture(g.root).Wait()
}

func (g *Gateway) spawnChild(name string, props *actor.Props) *actor.PID {
	res, err := g.sys.Root.RequestFuture(g.root, &spawnRequest{name: name, props: props}, 10*time.Second).Result()
	if err != nil {
		panic(fmt.Sprintf("gateway: spawning %s: %v", name, err))
	}
	r := res.(*spawnReply)
	if r.err != nil {
		panic(fmt.Sprintf("gateway: spawning %s: %v", name, r.err))
	}
	return r.pid
}

func (g *Gateway) onSupervisorEvent(ev supervisor.Event) {
	if ev.Directive == actor.RestartDirective {
		g.counters.Restarts.Add(1)
		if name := connectorOf(ev.Child.Id); name != "" {
			g.ConnectorCounters(name).Restarts.Add(1)
			if !strings.Contains(ev.Child.Id, "/device/") && g.bus.Active() {
				g.bus.PublishLifecycle(&bus.Lifecycle{Class: bus.ClassConnector, Name: name, Event: bus.Restarted, Ts: time.Now().UnixMilli()})
			}
		}
	}
	l := g.log.Warn()
	if ev.Unhealthy {
		l = g.log.Error()
	}
	l = g.obs.observeSupervisorEvent(ev, l)
	l.Str("actor", ev.Child.Id).Str("directive", ev.Directive.String()).Int("restarts", ev.Restarts).
		Dur("delay", ev.Delay).Bool("unhealthy", ev.Unhealthy).Interface("reason", fmt.Sprint(ev.Reason)).Msg("actor failed")
}

// connectorOf extracts the connector name from an actor id like
// "gateway/connector/<name>/device/<dev>".
func connectorOf(id string) string {
	_, rest, ok := strings.Cut(id, "/connector/")
	if !ok {
		return ""
	}
	name, _, _ := strings.Cut(rest, "/device/")
	return name
}

// Counters exposes the live counters.
func (g *Gateway) Counters() *Counters { return g.counters }

// Bus is the in-process event bus: every emitted value and lifecycle event.
func (g *Gateway) Bus() *bus.Bus { return g.bus }

// Journal exposes the journal (read-only use: stats).
func (g *Gateway) Journal() persistence.Journal { return g.j }

// Stop stops the tree in order: devices (with their connectors), a final
// journal flush, a short drain of the uplink, the uplink, then the journal.
func (g *Gateway) Stop(ctx context.Context) error {
	g.treeMu.Lock()
	defer g.treeMu.Unlock()
	if g.stopped {
		return nil
	}
	g.stopped = true
	if g.watchdogStop != nil {
		close(g.watchdogStop)
	}
	g.stopTree(ctx)
	g.stopServices()
	st := g.j.Stats()
	err := g.j.Close()
	g.log.Info().Uint64("buffered", st.Depth).Msg("gateway stopped")
	g.stopObservability(ctx)
	return err
}

// drain lets the uplink deliver what is journaled, up to last, while the
// platform is connected and the stop budget allows; it keeps a reserve of the
// budget for stopping the uplink and closing the journal. Whatever is left
// stays in a durable journal for the next start.
func (g *Gateway) drain(ctx context.Context, last uint64) {
	deadline := time.Now().Add(3 * time.Second)
	if d, ok := ctx.Deadline(); ok {
		deadline = d.Add(-min(time.Until(d)/4, time.Second))
	}
	for g.j.Cursor() < last && time.Now().Before(deadline) {
		if c := g.client.Load(); c == nil || !c.Connected() {
			break // nothing can be delivered; do not spend the budget waiting
		}
		time.Sleep(5 * time.Millisecond)
	}
	if c := g.j.Cursor(); c < last {
		if _, volatile := g.j.(*persistence.Memory); volatile {
			g.log.Warn().Uint64("undelivered", last-c).Msg("stopping with undelivered data in a memory journal; it is lost")
		} else {
			g.log.Info().Uint64("undelivered", last-c).Msg("stopping with undelivered data; the journal keeps it for the next start")
		}
	}
}

// OpenJournal opens the journal the storage config asks for.
func OpenJournal(s config.Storage, log zerolog.Logger) (persistence.Journal, error) {
	if s.Note != "" {
		log.Info().Msg(s.Note)
	}
	opts := persistence.Options{
		Limits:     persistence.Limits{MaxBytes: s.MaxBytes, MaxAge: s.MaxAge, MaxRecords: s.MaxRecords, MinFreeBytes: s.MinFreeBytes},
		Logger:     log.With().Str("component", "journal").Logger(),
		SyncWrites: s.SyncWrites,
	}
	if !s.Durable {
		return persistence.OpenMemory(opts), nil
	}
	j, err := persistence.OpenBadger(s.Dir, opts)
	if err != nil {
		return nil, fmt.Errorf("open journal in %s: %w", s.Dir, err)
	}
	return j, nil
}

func (g *Gateway) platformConfig() platform.Config {
	tb := g.conf().ThingsBoard
	return platform.Config{
		Host: tb.Host, Port: tb.Port, QoS: tb.QoS, KeepAlive: tb.KeepAlive,
		ClientID:   tb.Security.ClientID,
		MaxPayload: tb.MaxPayloadSize,
		Security: platform.Security{
			Type: tb.Security.Type, AccessToken: tb.Security.AccessToken,
			Username: tb.Security.Username, Password: tb.Security.Password,
			CACert: tb.Security.CACert, Cert: tb.Security.Cert, PrivateKey: tb.Security.PrivateKey,
			Insecure: tb.Security.Insecure,
		},
		Provisioning: provisioningConfig(tb.Provisioning),
	}
}

// provisioningConfig maps thingsboard.provisioning; nil stays nil.
func provisioningConfig(p *config.Provisioning) *platform.Provisioning {
	if p == nil {
		return nil
	}
	return &platform.Provisioning{
		DeviceName: p.DeviceName, Key: p.Key, Secret: p.Secret, Type: p.Type,
		AccessToken: p.AccessToken, ClientID: p.ClientID, Username: p.Username, Password: p.Password,
		CACert: p.CACert, CredentialsFile: p.CredentialsFile,
	}
}

// ConnectorCounters returns the counters of a connector (created on first use).
func (g *Gateway) ConnectorCounters(name string) *ConnectorCounters {
	if c, ok := g.connCounters.Load(name); ok {
		return c.(*ConnectorCounters)
	}
	c, _ := g.connCounters.LoadOrStore(name, &ConnectorCounters{})
	return c.(*ConnectorCounters)
}

// goSafe is goSafe with the gateway's logger and counters.
func (g *Gateway) goSafe(what string, fn func()) { goSafe(g.log, g.counters, what, fn) }
