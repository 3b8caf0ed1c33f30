package protocols

import (
	"context"
	"encoding/json"
	"time"
)

// Source is implemented by connectors whose devices report by themselves:
// MQTT messages, CAN frames, OPC-UA notifications. Such a connector usually
// returns no Devices; the runtime creates a device actor for every device
// the source names, the first time it names it.
type Source interface {
	// Run delivers data into sink until ctx is cancelled. It owns its
	// transport: it connects, reconnects with backoff and reports the link
	// state through sink.Link. It returns nil when ctx is done; any other
	// return is a fatal connector error and the connector is restarted.
	Run(ctx context.Context, sink Sink) error
}

// DeviceCommands is implemented by push connectors whose devices take
// platform writes. The returned Commander is used from that device's actor
// only; nil means the device takes no writes.
type DeviceCommands interface {
	Commander(device, profile string) Commander
}

// Push is one device's data from a Source.
type Push struct {
	Device  string
	Profile string    // device profile (type) used when the device connects
	Ts      time.Time // the data's timestamp; zero means "now"
	Reading Reading
	// Pooled says that Reading's Telemetry and Attributes are arrays of
	// their own that nothing else holds, best taken from MakeDatapoints:
	// the runtime recycles them (RecycleDatapoints) once the journal has
	// encoded them.
	Pooled bool
	// Report and KeyReport are the report strategies of the mapping that
	// produced the data; the device actor takes them from the first Push
	// that has any (a device created by Connect has none before).
	Report    ReportStrategy
	KeyReport map[string]ReportStrategy
	// Done, when set, is called exactly once when the data is committed to
	// the journal, or when nothing of it had to be kept (the report strategy
	// filtered it). A source that acknowledges its peer (MQTT QoS 1) does it
	// here, so nothing it acknowledged can be lost. err is non-nil when the
	// journal failed to commit (the loss is already counted and logged).
	// Done runs on a runtime goroutine and must not block.
	Done func(err error)
}

// Sink is the runtime's side of a Source. All methods are safe for
// concurrent use.
type Sink interface {
	// Push hands over one device's data. It blocks while too much pushed
	// data is not yet committed — that is the back-pressure a source passes
	// on to its peer. Any error means the data was not accepted and Done
	// is never called: ctx.Err() when ctx ended first, another error when
	// the connector is stopping. A source that can have the data re-sent
	// (MQTT) leaves it unacknowledged; one that cannot (CAN) counts a drop.
	// Once Push returns nil the runtime owns p.Reading's slices (it filters
	// them in place): the source must not touch them again.
	Push(ctx context.Context, p Push) error
	// Connect and Disconnect announce a device's state to the platform
	// (MQTT connectRequests / disconnectRequests).
	Connect(device, profile string)
	Disconnect(device string)
	// RequestAttributes asks the platform for a device's attribute values
	// (client scope when client is set, shared otherwise).
	RequestAttributes(ctx context.Context, device string, client bool, keys []string) (map[string]json.RawMessage, error)
	// Malformed counts input that could not be converted and logs it,
	// rate-limited per where (a mapping's topic filter, a CAN id).
	Malformed(where string, err error)
	// Unmatched counts input no mapping wanted (a frame no device declares).
	Unmatched()
	// Dropped counts n values or messages the source had to give up —
	// a CAN bus overrun, OPC-UA values superseded while the runtime was
	// behind — and logs it, rate-limited per where.
	Dropped(where string, n int, err error)
	// Refused counts a peer refused for unknown credentials (a local-API
	// device with a wrong token) and logs it, rate-limited per where; the
	// secret itself is never logged.
	Refused(where string, err error)
	// Link reports the source's transport state; a down link is logged
	// (rate-limited) and makes /readyz name the connector.
	Link(up bool, err error)
}
