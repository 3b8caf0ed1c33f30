// Package bus is the gateway's in-process event bus: device actors publish
// every value they emit (after the report strategy, next to the journal
// append) and every device and connector lifecycle event; automation actors
// subscribe with topic patterns. Delivery is a non-blocking send into the
// subscriber's bounded mailbox: a slow subscriber loses messages (counted on
// its Subscription), never slows a publisher, and a bus nobody subscribes to
// costs one atomic load per publish.
package bus

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/industryos/gateway/mailbox"
	"github.com/industryos/gateway/protocols"
)

// Topic classes: the first segment of a topic.
const (
	// ClassDevice carries values: device/<name>/<key>.
	ClassDevice = "device"
	// ClassDeviceEvent carries device lifecycle: devevent/<name>/<event>.
	ClassDeviceEvent = "devevent"
	// ClassConnector carries connector lifecycle: connector/<name>/<event>.
	ClassConnector = "connector"
)

// Lifecycle event names.
const (
	Connected    = "connected"
	Disconnected = "disconnected"
	PollError    = "pollError"
	Started      = "started"
	Stopped      = "stopped"
	Restarted    = "restarted"
)

// Values are values one device emitted in one event, as the journal gets
// them. Subscribers must treat the message as read-only: one message may go
// to several subscribers.
type Values struct {
	Device     string
	Connector  string
	Attributes bool  // shared/client attributes rather than telemetry
	Ts         int64 // unix milliseconds
	Values     []protocols.Datapoint
}

// Lifecycle is a device or connector state change.
type Lifecycle struct {
	Class string // ClassDeviceEvent or ClassConnector
	Name  string // the device or connector
	// Connector owns the device (device events only).
	Connector string
	Event     string // Connected, Disconnected, PollError, Started, ...
	Ts        int64  // unix milliseconds
	Err       string // PollError: what failed
}

// Pattern selects topics: class/name/leaf where name and leaf may be "+"
// (any one) and the pattern may end in "#" (anything below). Names may hold
// "/": the leaf is the last segment, the name what lies between.
type Pattern struct {
	Class, Name, Leaf string // "" matches any
}

// ErrBadPattern marks a topic pattern that cannot be parsed.
var ErrBadPattern = errors.New("bad topic pattern")

// ParsePattern reads "device/boiler/temperature", "device/+/temperature",
// "device/boiler/#", "device/#", "devevent/+/connected", "connector/#".
func ParsePattern(s string) (Pattern, error) {
	class, rest, _ := strings.Cut(s, "/")
	switch class {
	case ClassDevice, ClassDeviceEvent, ClassConnector:
	case "#":
		if rest == "" {
			return Pattern{}, nil
		}
		fallthrough
	default:
		return Pattern{}, fmt.Errorf("%w %q: starts with %q, want device/, devevent/ or connector/", ErrBadPattern, s, class)
	}
	p := Pattern{Class: class}
	switch {
	case rest == "" || rest == "#":
		return p, nil
	case strings.HasSuffix(rest, "/#"):
		p.Name = strings.TrimSuffix(rest, "/#")
	default:
		i := strings.LastIndexByte(rest, '/')
		if i <= 0 || i == len(rest)-1 {
			return Pattern{}, fmt.Errorf("%w %q: want %s/<name>/<leaf>", ErrBadPattern, s, class)
		}
		p.Name, p.Leaf = rest[:i], rest[i+1:]
	}
	if p.Name == "+" {
		p.Name = ""
	}
	if p.Leaf == "+" {
		p.Leaf = ""
	}
	if strings.ContainsAny(p.Name, "#") || strings.Contains(p.Leaf, "#") {
		return Pattern{}, fmt.Errorf("%w %q: # only as the last segment", ErrBadPattern, s)
	}
	return p, nil
}

// String is the pattern's text.
func (p Pattern) String() string {
	if p.Class == "" {
		return "#"
	}
	name, leaf := p.Name, p.Leaf
	if name == "" {
		name = "+"
	}
	if leaf == "" {
		if p.Name == "" {
			return p.Class + "/#"
		}
		return p.Class + "/" + name + "/#"
	}
	return p.Class + "/" + name + "/" + leaf
}

// Match reports whether the topic class/name/leaf matches.
func (p Pattern) Match(class, name, leaf string) bool {
	return (p.Class == "" || p.Class == class) && (p.Name == "" || p.Name == name) && (p.Leaf == "" || p.Leaf == leaf)
}

// Subscription is one subscriber's registration.
type Subscription struct {
	bus       *Bus
	pid       *actor.PID
	patterns  []Pattern
	drops     *DropCounter
	delivered atomic.Uint64
}

// Delivered counts messages handed to the subscriber's mailbox.
func (s *Subscription) Delivered() uint64 { return s.delivered.Load() }

// Dropped counts messages its full mailbox refused.
func (s *Subscription) Dropped() uint64 { return s.drops.Dropped() }

// Cancel ends the subscription; nothing is sent to it afterwards.
func (s *Subscription) Cancel() { s.bus.remove(s) }

// Bus routes published messages to subscriber actors.
type Bus struct {
	sys  *actor.ActorSystem
	mu   sync.Mutex // serialises Subscribe and Cancel
	subs atomic.Pointer[[]*Subscription]
	// published sums every subscription's deliveries, for metrics.
	published atomic.Uint64
}

// New makes a bus that sends with sys.
func New(sys *actor.ActorSystem) *Bus { return &Bus{sys: sys} }

// Active reports whether anyone subscribes; publishers check it first so
// the bus costs nothing while unused.
func (b *Bus) Active() bool {
	if b == nil {
		return false
	}
	s := b.subs.Load()
	return s != nil && len(*s) > 0
}

// Dropped counts messages the current subscribers' full mailboxes refused.
func (b *Bus) Dropped() uint64 {
	var n uint64
	if cur := b.subs.Load(); cur != nil {
		for _, s := range *cur {
			n += s.Dropped()
		}
	}
	return n
}

// Published counts messages handed to subscribers' mailboxes (drops included).
func (b *Bus) Published() uint64 { return b.published.Load() }

// Subscribe sends what matches any of patterns to pid. pid's mailbox should
// come from SubscriberMailbox with drops, so the subscription reports them.
func (b *Bus) Subscribe(pid *actor.PID, drops *DropCounter, patterns ...Pattern) *Subscription {
	if drops == nil {
		drops = new(DropCounter)
	}
	s := &Subscription{bus: b, pid: pid, patterns: patterns, drops: drops}
	b.mu.Lock()
	defer b.mu.Unlock()
	var next []*Subscription
	if cur := b.subs.Load(); cur != nil {
		next = append(next, *cur...)
	}
	next = append(next, s)
	b.subs.Store(&next)
	return s
}

func (b *Bus) remove(s *Subscription) {
	b.mu.Lock()
	defer b.mu.Unlock()
	cur := b.subs.Load()
	if cur == nil {
		return
	}
	next := make([]*Subscription, 0, len(*cur))
	for _, x := range *cur {
		if x != s {
			next = append(next, x)
		}
	}
	b.subs.Store(&next)
}

// DropCounter counts a subscriber's drops; give its OnDrop to
// SubscriberMailbox. It is separate from Subscription because the mailbox
// is built before the actor subscribes.
type DropCounter struct{ n atomic.Uint64 }

// OnDrop counts one drop.
func (c *DropCounter) OnDrop(any) { c.n.Add(1) }

// Dropped is the count.
func (c *DropCounter) Dropped() uint64 { return c.n.Load() }

// SubscriberMailbox is the mailbox a subscriber actor should have: bounded
// to capacity data messages, dropping the newest when full (protoactor's
// BoundedDropping would pin a core), control messages in their own lane.
func SubscriberMailbox(capacity int, drops *DropCounter) actor.MailboxProducer {
	return mailbox.Producer(mailbox.WithCapacity(capacity), mailbox.WithPolicy(mailbox.DropNewest),
		mailbox.WithOnDrop(drops.OnDrop))
}

// PublishValues publishes one event's values. vals is not copied when a
// subscriber takes all of them; the caller must not change it afterwards.
func (b *Bus) PublishValues(device, connector string, attributes bool, ts int64, vals []protocols.Datapoint) {
	if !b.Active() || len(vals) == 0 {
		return
	}
	var whole *Values
	for _, s := range *b.subs.Load() {
		n, all := s.countValues(device, vals)
		if n == 0 {
			continue
		}
		var m *Values
		if all {
			if whole == nil {
				whole = &Values{Device: device, Connector: connector, Attributes: attributes, Ts: ts, Values: vals}
			}
			m = whole
		} else {
			sel := make([]protocols.Datapoint, 0, n)
			for _, dp := range vals {
				if s.matches(ClassDevice, device, dp.Key) {
					sel = append(sel, dp)
				}
			}
			m = &Values{Device: device, Connector: connector, Attributes: attributes, Ts: ts, Values: sel}
		}
		b.send(s, m)
	}
}

// PublishLifecycle publishes a device or connector state change.
func (b *Bus) PublishLifecycle(m *Lifecycle) {
	if !b.Active() {
		return
	}
	for _, s := range *b.subs.Load() {
		if s.matches(m.Class, m.Name, m.Event) {
			b.send(s, m)
		}
	}
}

func (b *Bus) send(s *Subscription, m any) {
	s.delivered.Add(1)
	b.published.Add(1)
	b.sys.Root.Send(s.pid, m)
}

func (s *Subscription) matches(class, name, leaf string) bool {
	for _, p := range s.patterns {
		if p.Match(class, name, leaf) {
			return true
		}
	}
	return false
}

// countValues is how many of vals s takes, and whether that is all of them.
func (s *Subscription) countValues(device string, vals []protocols.Datapoint) (int, bool) {
	// Fast answer for the common "every key of this device" patterns.
	for _, p := range s.patterns {
		if p.Leaf == "" && p.Match(ClassDevice, device, "") {
			return len(vals), true
		}
	}
	n := 0
	for _, dp := range vals {
		if s.matches(ClassDevice, device, dp.Key) {
			n++
		}
	}
	return n, n == len(vals)
}
