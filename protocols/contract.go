package protocols

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/industryos/gateway/protocols/kit/spec"
)

// ConnectorConfig is what a protocol factory receives. Factories only parse
// and validate; they do no I/O (the actors open devices and retry).
type ConnectorConfig struct {
	Name   string    // connector name from the main config
	Type   string    // registered type, e.g. "modbus"
	Config *spec.Obj // root object of the connector file; problems go to Config.Problems()
	// File is the connector file's absolute path when it came from a file
	// (empty otherwise): files a connector keeps (a generated certificate)
	// go next to it.
	File string
	// Report is the inherited strategy (global); protocols layer connector,
	// device and key strategies over it.
	Report ReportStrategy
	// Key is the main file's "key" of the connector entry: the secret an
	// out-of-process (gRPC) connector registers with. Empty for others.
	Key    string
	Logger zerolog.Logger
}

// ReportStrategy is an upstream report strategy; the zero value means
// "inherit from the level above". Package report parses and applies it.
type ReportStrategy struct {
	Type   string
	Period time.Duration
}

// Report strategy types.
const (
	OnReceived             = "ON_RECEIVED"
	OnChange               = "ON_CHANGE"
	OnReportPeriod         = "ON_REPORT_PERIOD"
	OnChangeOrReportPeriod = "ON_CHANGE_OR_REPORT_PERIOD"
	ReportDisabled         = "DISABLED"
)

// IsSet reports whether the strategy was configured (not inherited).
func (s ReportStrategy) IsSet() bool { return s.Type != "" }

// Or returns s when set, otherwise parent.
func (s ReportStrategy) Or(parent ReportStrategy) ReportStrategy {
	if s.IsSet() {
		return s
	}
	return parent
}

// Connector is a configured instance of a protocol.
type Connector interface {
	Devices() []Device
	// Close releases what the connector shares between its devices.
	Close() error
}

// DeviceInfo describes a device to the generic device actor.
type DeviceInfo struct {
	Name       string
	Type       string // device profile
	PollPeriod time.Duration
	// Report is the device-level strategy after inheritance; KeyReport holds per-key overrides.
	Report    ReportStrategy
	KeyReport map[string]ReportStrategy
	// ConnectAttemptCount consecutive failed polls disconnect the device from the platform.
	ConnectAttemptCount int
	// RetryDelay is the first delay after a failed poll; it backs off from there.
	RetryDelay time.Duration
}

// Reading is the result of one poll.
type Reading struct {
	Telemetry  []Datapoint
	Attributes []Datapoint
}

// Device is one polled device. Poll is called from one goroutine at a time.
type Device interface {
	Info() DeviceInfo
	// Poll reads the device once. It (re)opens its transport as needed and
	// returns within the device's timeout or ctx, whichever is first.
	Poll(ctx context.Context) (Reading, error)
	Close() error
}

// ReusableContextPoller is a Device whose Poll needs only the deadline, Done
// and Err of its context, and uses them only on the calling goroutine and
// only until Poll returns: it keeps no reference to the context, hands it to
// no other goroutine (no watcher, no context.AfterFunc) and derives no
// context from it. The device actor then passes one reusable context per
// device instead of allocating a context and its timer for every poll, which
// at low rates is a visible share of a poll's cost.
type ReusableContextPoller interface {
	Device
	PollContextReusable()
}

// OwnedReadingPoller is a Device whose Poll returns a Reading with slices
// made for that call, which it never reads or writes again, Telemetry and
// Attributes in arrays of their own (not one array sliced in two). The
// device actor then filters the reading in place (report strategies)
// instead of copying every datapoint of every poll first, and the journal
// recycles both arrays once it has encoded them (RecycleDatapoints), so
// such a driver should take them from MakeDatapoints.
type OwnedReadingPoller interface {
	Device
	PollReadingOwned()
}

// LinkedDevice is a Device whose polls queue on a link it shares with
// other devices: Modbus slaves on one serial line or behind one TCP
// connection. Link names it ("": none), the same for every device on it;
// slow says the config shows a slow link (a serial line, where a round trip
// takes tens of milliseconds). The device actors start only as many of one
// link's devices at the same instant as the link serves before the next
// start (a few from the outset on a slow one, then as measured), so the
// last of them does not wait out all the others and stamp its values that
// long before they were read.
type LinkedDevice interface {
	Device
	Link() (name string, slow bool)
}

// Factory builds a connector from its config.
type Factory func(cfg ConnectorConfig) (Connector, error)

// FactoryOf adapts a protocol's constructor, which returns its own connector
// type so tests can reach its methods, into a Factory. On error it returns a
// nil interface, not a nil *T wrapped in one: a typed nil would pass the
// caller's `c != nil` check and panic on first use.
func FactoryOf[C Connector](newConnector func(ConnectorConfig) (C, error)) Factory {
	return func(cfg ConnectorConfig) (Connector, error) {
		c, err := newConnector(cfg)
		if err != nil {
			return nil, err
		}
		return c, nil
	}
}

var (
	regMu    sync.RWMutex
	registry = map[string]Factory{}
)

// Register makes a protocol available under its config type name. It panics on
// an empty name, a nil factory or a duplicate, because those are programming
// errors that must fail at start-up.
func Register(typ string, f Factory) {
	regMu.Lock()
	defer regMu.Unlock()
	if typ == "" || f == nil {
		panic("protocols: Register with empty type or nil factory")
	}
	if _, dup := registry[typ]; dup {
		panic(fmt.Sprintf("protocols: %q registered twice", typ))
	}
	registry[typ] = f
}

// Lookup returns the factory for typ.
func Lookup(typ string) (Factory, bool) {
	regMu.RLock()
	defer regMu.RUnlock()
	f, ok := registry[typ]
	return f, ok
}

// Types lists the registered protocol types.
func Types() []string {
	regMu.RLock()
	defer regMu.RUnlock()
	out := make([]string, 0, len(registry))
	for t := range registry {
		out = append(out, t)
	}
	sort.Strings(out)
	return out
}
