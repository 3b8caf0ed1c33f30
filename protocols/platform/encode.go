package platform

import (
	"strconv"
	"sync"

	"github.com/industryos/gateway/protocols"
	"github.com/industryos/gateway/protocols/kit/arrays"
)

// Topics of the ThingsBoard Gateway MQTT API (COMPAT §1). The v1/gateway/*
// namespace carries child devices, v1/devices/me/* the gateway itself.
const (
	TopicConnect            = "v1/gateway/connect"
	TopicDisconnect         = "v1/gateway/disconnect"
	TopicTelemetry          = "v1/gateway/telemetry"
	TopicAttributes         = "v1/gateway/attributes"
	TopicAttributesRequest  = "v1/gateway/attributes/request"
	TopicAttributesResponse = "v1/gateway/attributes/response"
	TopicGatewayRPC         = "v1/gateway/rpc"
	TopicClaim              = "v1/gateway/claim"

	TopicMeTelemetry  = "v1/devices/me/telemetry"
	TopicMeAttributes = "v1/devices/me/attributes"
	// The prefixes take a request id as the last topic level.
	TopicMeAttributesRequestPrefix  = "v1/devices/me/attributes/request/"
	TopicMeAttributesResponsePrefix = "v1/devices/me/attributes/response/"
	TopicMeRPCRequestPrefix         = "v1/devices/me/rpc/request/"
	TopicMeRPCResponsePrefix        = "v1/devices/me/rpc/response/"
)

// DefaultDeviceType is the profile the platform assigns when a connect
// message carries no type.
const DefaultDeviceType = "default"

// Message is one MQTT publication produced by Pack.
type Message struct {
	Topic   string
	Payload []byte
	// Values is the number of datapoints in the payload (0 for connect and
	// disconnect); the platform's data-point rate limits count these.
	Values int
}

// ConnectPayload returns {"device":..,"type":..} for TopicConnect. An empty
// type becomes "default", which is what the platform would assume anyway,
// but being explicit keeps the message self-describing in broker logs.
func ConnectPayload(device, typ string) []byte {
	return appendConnect(make([]byte, 0, len(device)+len(typ)+24), device, typ)
}

// DisconnectPayload returns {"device":..} for TopicDisconnect.
func DisconnectPayload(device string) []byte {
	return appendDisconnect(make([]byte, 0, len(device)+14), device)
}

func appendConnect(b []byte, device, typ string) []byte {
	if typ == "" {
		typ = DefaultDeviceType
	}
	b = append(b, `{"device":`...)
	b = protocols.AppendJSONString(b, device)
	b = append(b, `,"type":`...)
	b = protocols.AppendJSONString(b, typ)
	return append(b, '}')
}

func appendDisconnect(b []byte, device string) []byte {
	b = append(b, `{"device":`...)
	b = protocols.AppendJSONString(b, device)
	return append(b, '}')
}

// Pack turns a batch of events into platform messages and appends them to
// dst.
//
// Events are grouped per device, and a message carries as many devices as
// fit (the Gateway API's telemetry and attributes messages are objects keyed
// by device name): at a thousand devices polled together that is one publish
// and one PUBACK where one per device would be a thousand. The order is: one
// connect message per connecting device (the type of its last connect event
// wins), the attributes of all devices, their telemetry, then a disconnect
// message for each device whose last lifecycle event in the batch was a
// disconnect; so each device still sees connect, attributes, telemetry,
// disconnect, in that order. A disconnect followed by a connect in the same
// batch therefore collapses into the connect. Devices appear in order of
// first appearance, and a device appears at most once in a message.
//
// Attributes of a device are merged into one object; a key seen twice keeps
// its first position and its last value. Telemetry entries with the same ts
// are merged the same way, so a (device, ts, key) triple appears exactly once.
// An empty Device addresses the gateway itself: its telemetry and attributes
// go to the v1/devices/me/* topics, and its connect/disconnect events are
// dropped because the gateway's own session is the MQTT connection.
//
// Every message is at most maxPayload bytes (maxPayload <= 0 means no limit):
// devices and a device's data are split over as many messages as needed, down to single
// datapoints. A datapoint that does not fit even in a message of its own is
// still sent alone in an oversized message rather than dropped; the platform
// decides whether to accept it. Connect/disconnect messages are never split.
//
// Payload buffers of messages in dst's spare capacity (between len and cap)
// are reused, so callers that pass back the slice of a previous call, e.g.
// Pack(events, max, msgs[:0]), get allocation-free steady state but must be
// done with the previous payloads.
func Pack(events []protocols.Event, maxPayload int, dst []Message) []Message {
	return PackLimited(events, maxPayload, 0, dst)
}

// PackLimited is Pack that also puts at most maxValues datapoints in one
// message (maxValues <= 0: no limit), so no message carries more than the
// platform's data-point rate limit could ever admit.
func PackLimited(events []protocols.Event, maxPayload, maxValues int, dst []Message) []Message {
	p := packers.get()
	p.collect(events)
	w := writer{dst: dst, max: maxPayload, maxN: maxValues, hint: p.sizeHint}
	for i := range p.devs {
		if ds := &p.devs[i]; ds.connect {
			w.begin(TopicConnect)
			w.buf = appendConnect(w.buf, ds.name, ds.connType)
			w.end()
		}
	}
	for _, me := range [2]bool{true, false} {
		p.emitAttributes(&w, events, me)
		p.emitTelemetry(&w, events, me)
	}
	for i := range p.devs {
		if ds := &p.devs[i]; ds.disconn {
			w.begin(TopicDisconnect)
			w.buf = appendDisconnect(w.buf, ds.name)
			w.end()
		}
	}
	p.sizeHint = min(w.largest, maxSizeHint)
	p.reset()
	packers.put(p)
	return w.dst
}

// packers keeps the index maps, scratch slices and known key lists warm
// between batches so the hot path stays allocation-free. A few packers
// are kept for good rather than in a sync.Pool: at the throughput peak the
// gateway collects garbage dozens of times a second, each collection
// emptied the pool, and every batch then regrew its slices and maps and
// re-checked every device's keys.
var packers packerList

// maxIdlePackers bounds the packers kept: one per concurrent packing
// goroutine is enough (the uplink packs on one).
const maxIdlePackers = 4

type packerList struct {
	mu   sync.Mutex
	idle []*packer
}

func (l *packerList) get() *packer {
	l.mu.Lock()
	if n := len(l.idle); n > 0 {
		p := l.idle[n-1]
		l.idle[n-1] = nil
		l.idle = l.idle[:n-1]
		l.mu.Unlock()
		return p
	}
	l.mu.Unlock()
	return &packer{
		devIdx: make(map[string]int32),
		grpIdx: make(map[grpKey]int32),
		keyIdx: make(map[itemKey]int32),
	}
}

func (l *packerList) put(p *packer) {
	l.mu.Lock()
	if len(l.idle) < maxIdlePackers {
		l.idle = append(l.idle, p)
	}
	l.mu.Unlock()
}

// Items and groups form singly linked lists through int32 indexes into
// reused slices: grouping then needs no per-device or per-ts allocation.
type packer struct {
	devs   []devState
	devIdx map[string]int32
	groups []tsGroup
	grpIdx map[grpKey]int32
	items  []item
	keyIdx map[itemKey]int32
	names  []byte // escaped device names, referenced by devState
	// known is kept across batches: per device, the last key list found
	// free of repeats (see uniqueKeys); seen is its scratch set.
	known map[string][]string
	seen  map[string]struct{}
	// sizeHint is the largest payload of the previous batch (writer.hint).
	sizeHint int
}

type devState struct {
	name             string
	connType         string
	nameOff, nameEnd int32
	connect, disconn bool
	attrs            list
	grpHead, grpTail int32
}

type tsGroup struct {
	ts    int64
	items list
	next  int32
}

// list is a linked list of items; indexed lists also have their keys in
// packer.keyIdx.
type list struct {
	head, tail, n int32
	indexed       bool
}

// item points at events[ev].Values[val]; a repeated key just re-points it.
type item struct {
	ev, val, next int32
}

type grpKey struct {
	dev int32
	ts  int64
}

// owner is a group index for telemetry and ^dev for attributes.
type itemKey struct {
	owner int32
	key   string
}

func (p *packer) reset() {
	clear(p.devs)
	p.devs = p.devs[:0]
	p.groups = p.groups[:0]
	p.items = p.items[:0]
	p.names = p.names[:0]
	clear(p.devIdx)
	clear(p.grpIdx)
	clear(p.keyIdx)
	// A one-off giant batch must not pin its memory in the pool forever.
	if cap(p.items) > 1<<16 {
		p.items = nil
		p.keyIdx = make(map[itemKey]int32)
	}
	if cap(p.groups) > 1<<14 {
		p.groups = nil
		p.grpIdx = make(map[grpKey]int32)
	}
}

func (p *packer) dev(name string) int32 {
	if i, ok := p.devIdx[name]; ok {
		return i
	}
	i := int32(len(p.devs))
	off := int32(len(p.names))
	p.names = protocols.AppendJSONString(p.names, name)
	p.devs = append(p.devs, devState{
		name: name, nameOff: off, nameEnd: int32(len(p.names)),
		attrs: list{head: -1, tail: -1}, grpHead: -1, grpTail: -1,
	})
	p.devIdx[name] = i
	return i
}

func (p *packer) group(d int32, ts int64) int32 {
	k := grpKey{d, ts}
	if g, ok := p.grpIdx[k]; ok {
		return g
	}
	g := int32(len(p.groups))
	p.groups = append(p.groups, tsGroup{ts: ts, items: list{head: -1, tail: -1}, next: -1})
	p.grpIdx[k] = g
	ds := &p.devs[d]
	if ds.grpTail >= 0 {
		p.groups[ds.grpTail].next = g
	} else {
		ds.grpHead = g
	}
	ds.grpTail = g
	return g
}

// linearKeys is the list length up to which repeated keys are found by
// scanning rather than hashing: typical events carry a handful of distinct
// keys, and two map operations per value would dominate Pack's cost.
const linearKeys = 16

// add appends events[ev].Values[val] to the list (head, tail, n) owned by
// owner, or re-points the existing item when the key is already there.
func (p *packer) add(owner int32, l *list, events []protocols.Event, ev, val int32) {
	key := events[ev].Values[val].Key
	if !l.indexed && l.n >= linearKeys {
		for i := l.head; i >= 0; i = p.items[i].next {
			it := &p.items[i]
			p.keyIdx[itemKey{owner, events[it.ev].Values[it.val].Key}] = i
		}
		l.indexed = true
	}
	if l.indexed {
		if i, ok := p.keyIdx[itemKey{owner, key}]; ok {
			p.items[i].ev, p.items[i].val = ev, val
			return
		}
	} else {
		for i := l.head; i >= 0; i = p.items[i].next {
			it := &p.items[i]
			if events[it.ev].Values[it.val].Key == key {
				it.ev, it.val = ev, val
				return
			}
		}
	}
	i := int32(len(p.items))
	p.items = append(p.items, item{ev: ev, val: val, next: -1})
	if l.indexed {
		p.keyIdx[itemKey{owner, key}] = i
	}
	if l.tail >= 0 {
		p.items[l.tail].next = i
	} else {
		l.head = i
	}
	l.tail = i
	l.n++
}

// maxKnownLayouts bounds packer.known.
const maxKnownLayouts = 4096

// uniqueKeys reports whether no key repeats in vals. A device's polls
// carry the same keys poll after poll, so the answer is remembered per
// device as the key list it was checked for: the next event with that
// list costs a comparison of strings that are mostly the same (interned)
// ones, where merging value by value costs two map operations each, which
// was a fifth of the gateway's CPU at 100 values per poll.
func (p *packer) uniqueKeys(device string, vals []protocols.Datapoint) bool {
	if ks, ok := p.known[device]; ok && len(ks) == len(vals) {
		same := true
		for i := range ks {
			if ks[i] != vals[i].Key {
				same = false
				break
			}
		}
		if same {
			return true
		}
	}
	if p.seen == nil {
		p.seen = make(map[string]struct{}, len(vals))
	}
	clear(p.seen)
	for i := range vals {
		p.seen[vals[i].Key] = struct{}{}
	}
	if len(p.seen) != len(vals) {
		return false
	}
	if p.known == nil || len(p.known) >= maxKnownLayouts {
		p.known = make(map[string][]string)
	}
	ks := p.known[device][:0] // reused when a device's key list varies
	for i := range vals {
		ks = append(ks, vals[i].Key)
	}
	p.known[device] = ks
	return true
}

// appendAll adds the n values of events[ev] to the empty list l without
// looking for repeated keys (the caller checked there are none).
func (p *packer) appendAll(l *list, ev int32, n int) {
	first := int32(len(p.items))
	for vi := range n {
		p.items = append(p.items, item{ev: ev, val: int32(vi), next: first + int32(vi) + 1})
	}
	p.items[len(p.items)-1].next = -1
	l.head, l.tail, l.n = first, int32(len(p.items)-1), int32(n)
}

func (p *packer) collect(events []protocols.Event) {
	for ei := range events {
		e := &events[ei]
		switch e.Kind {
		case protocols.EventConnect:
			if e.Device == "" {
				continue
			}
			ds := &p.devs[p.dev(e.Device)]
			ds.connect, ds.disconn, ds.connType = true, false, e.DeviceType
		case protocols.EventDisconnect:
			if e.Device == "" {
				continue
			}
			p.devs[p.dev(e.Device)].disconn = true
		case protocols.EventAttributes:
			d := p.dev(e.Device)
			for vi := range e.Values {
				p.add(^d, &p.devs[d].attrs, events, int32(ei), int32(vi))
			}
		case protocols.EventTelemetry:
			d := p.dev(e.Device)
			if len(e.Values) == 0 {
				continue
			}
			g := p.group(d, e.Ts)
			if l := &p.groups[g].items; l.n == 0 && len(e.Values) > linearKeys && p.uniqueKeys(e.Device, e.Values) {
				p.appendAll(l, int32(ei), len(e.Values))
				continue
			}
			for vi := range e.Values {
				p.add(g, &p.groups[g].items, events, int32(ei), int32(vi))
			}
		}
	}
}

// writer builds messages in place in dst, reusing spare payload buffers.
type writer struct {
	dst   []Message
	max   int
	maxN  int // values per message, 0 = no limit
	topic string
	buf   []byte
	n     int // values in the open message
	open  bool
	// hint is the largest payload of the packer's previous batch: a new
	// buffer starts that large, so at high rates a full message is one
	// allocation rather than a series doubling from 512 bytes (which was
	// a seventh of the gateway's allocated bytes at the throughput peak).
	hint, largest int
}

// maxSizeHint bounds writer.hint when messages have no size limit.
const maxSizeHint = 1 << 20

func (w *writer) begin(topic string) {
	w.topic, w.n, w.open = topic, 0, true
	if l := len(w.dst); l < cap(w.dst) {
		w.buf = w.dst[:l+1][l].Payload[:0]
	} else {
		w.buf = nil
	}
	if w.buf == nil {
		c := max(512, w.hint+w.hint/8)
		if w.max > 0 {
			// Room for the datapoint that is appended past the limit
			// and then moved to the next message.
			c = min(c, w.max+512)
		}
		w.buf = payloads.Make(c)[:0]
	}
}

// payloads are the messages' payload buffers, up to 64 KB each with
// ThingsBoard's session limits: at the throughput peak a sixth of the bytes
// the gateway allocated once datapoints were recycled.
var payloads arrays.Pool[byte]

// RecyclePayload hands a published message's payload back for the next
// Pack. Only after the platform's PUBACK (or a QoS 0 write): until then the
// MQTT session keeps the packet, payload included, to send again after a
// reconnect. The caller must hold the only reference to it.
func RecyclePayload(b []byte) { payloads.Recycle(b) }

func (w *writer) end() {
	w.largest = max(w.largest, len(w.buf))
	w.dst = append(w.dst, Message{Topic: w.topic, Payload: w.buf, Values: w.n})
	w.buf, w.open = nil, false
}

// over reports whether the open message, once closed with `closers` more
// bytes, would exceed the size limit, or one more value the value limit. A
// message holding no value yet is never over: its first datapoint goes in
// whatever its size.
func (w *writer) over(closers int) bool {
	return w.n > 0 && (w.max > 0 && len(w.buf)+closers > w.max || w.maxN > 0 && w.n >= w.maxN)
}

func appendKV(b []byte, dp *protocols.Datapoint) []byte {
	b = protocols.AppendJSONString(b, dp.Key)
	b = append(b, ':')
	return dp.Value.AppendJSON(b)
}

func datapoint(events []protocols.Event, it *item) *protocols.Datapoint {
	return &events[it.ev].Values[it.val]
}

// devicesOf reports whether ds belongs in the messages for the gateway itself
// (me) or in those for its child devices.
func devicesOf(ds *devState, me bool) bool { return (ds.name == "") == me }

// openDevice starts a device's part of a child-device message: its name, then
// open ('{' for attributes, '[' for telemetry), after a comma unless it is the
// message's first device.
func (p *packer) openDevice(w *writer, ds *devState, first bool, open byte) {
	if !first {
		w.buf = append(w.buf, ',')
	}
	w.buf = append(w.buf, p.names[ds.nameOff:ds.nameEnd]...)
	w.buf = append(w.buf, ':', open)
}

// emitAttributes writes attribute messages {"A":{"k":v,...},"B":{...}} for
// the child devices, or {"k":v,...} for the gateway itself (me).
func (p *packer) emitAttributes(w *writer, events []protocols.Event, me bool) {
	topic, closers := TopicAttributes, 2 // "}}": the device's object, the message
	if me {
		topic, closers = TopicMeAttributes, 1
	}
	inDev := false // the current device's object is open in the message
	devs := 0      // devices in the open message
	openMsg := func() {
		w.begin(topic)
		w.buf = append(w.buf, '{')
		inDev, devs = false, 0
	}
	closeMsg := func() {
		if inDev && !me {
			w.buf = append(w.buf, '}')
		}
		w.buf = append(w.buf, '}')
		w.end()
	}
	for d := range p.devs {
		ds := &p.devs[d]
		if !devicesOf(ds, me) || ds.attrs.head < 0 {
			continue
		}
		for i := ds.attrs.head; i >= 0; i = p.items[i].next {
			dp := datapoint(events, &p.items[i])
			if !w.open {
				openMsg()
			}
			mark := len(w.buf)
			switch {
			case inDev:
				w.buf = append(w.buf, ',')
			case !me:
				p.openDevice(w, ds, devs == 0, '{')
			}
			w.buf = appendKV(w.buf, dp)
			if w.over(closers) {
				w.buf = w.buf[:mark]
				closeMsg()
				openMsg()
				if !me {
					p.openDevice(w, ds, true, '{')
				}
				w.buf = appendKV(w.buf, dp)
			}
			if !inDev {
				inDev = true
				devs++
			}
			w.n++
		}
		if inDev && !me {
			w.buf = append(w.buf, '}')
		}
		inDev = false
	}
	if w.open {
		closeMsg()
	}
}

// emitTelemetry writes telemetry messages
// {"A":[{"ts":..,"values":{..}},..],"B":[..]} for the child devices, or the
// bare array for the gateway itself (me). The platform requires the array
// form.
func (p *packer) emitTelemetry(w *writer, events []protocols.Event, me bool) {
	topic, closers := TopicTelemetry, 4 // "}}": the entry, "]": the device's array, "}": the message
	if me {
		topic, closers = TopicMeTelemetry, 3
	}
	inDev := false // the current device's array is open in the message
	devs := 0      // devices in the open message
	entries := 0   // the current device's entries in the open message
	openMsg := func() {
		w.begin(topic)
		if me {
			w.buf = append(w.buf, '[')
		} else {
			w.buf = append(w.buf, '{')
		}
		inDev, devs, entries = false, 0, 0
	}
	closeMsg := func() {
		if me {
			w.buf = append(w.buf, ']')
		} else {
			if inDev {
				w.buf = append(w.buf, ']')
			}
			w.buf = append(w.buf, '}')
		}
		w.end()
	}
	entry := func(ts int64) {
		w.buf = append(w.buf, `{"ts":`...)
		w.buf = strconv.AppendInt(w.buf, ts, 10)
		w.buf = append(w.buf, `,"values":{`...)
	}
	for d := range p.devs {
		ds := &p.devs[d]
		if !devicesOf(ds, me) || ds.grpHead < 0 {
			continue
		}
		for g := ds.grpHead; g >= 0; g = p.groups[g].next {
			gr := &p.groups[g]
			inEntry := false // the group's entry is open in the current message
			for i := gr.items.head; i >= 0; i = p.items[i].next {
				dp := datapoint(events, &p.items[i])
				if !w.open {
					openMsg()
				}
				mark := len(w.buf)
				wasInEntry := inEntry
				if !inDev && !me {
					p.openDevice(w, ds, devs == 0, '[')
				}
				switch {
				case inEntry:
					w.buf = append(w.buf, ',')
				case entries > 0:
					w.buf = append(w.buf, ',')
					entry(gr.ts)
				default:
					entry(gr.ts)
				}
				w.buf = appendKV(w.buf, dp)
				if w.over(closers) {
					w.buf = w.buf[:mark]
					if inEntry {
						w.buf = append(w.buf, '}', '}')
					}
					closeMsg()
					openMsg()
					if !me {
						p.openDevice(w, ds, true, '[')
					}
					entry(gr.ts)
					w.buf = appendKV(w.buf, dp)
					wasInEntry = false
				}
				if !wasInEntry {
					entries++
				}
				if !inDev {
					inDev = true
					devs++
				}
				inEntry = true
				w.n++
			}
			if inEntry {
				w.buf = append(w.buf, '}', '}')
			}
		}
		if inDev && !me {
			w.buf = append(w.buf, ']')
		}
		inDev, entries = false, 0
	}
	if w.open {
		closeMsg()
	}
}
