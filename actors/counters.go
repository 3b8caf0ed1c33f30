package actors

import "sync/atomic"

// Counters are process-wide figures the demo, the bench and (later) the
// statistics and metrics read. All fields are updated atomically.
type Counters struct {
	Polls            atomic.Uint64
	PollErrors       atomic.Uint64
	ValuesPolled     atomic.Uint64 // values produced by polls, before report filtering
	ValuesEmitted    atomic.Uint64 // values after report filtering, sent to the journal
	EventsJournaled  atomic.Uint64
	JournalErrors    atomic.Uint64
	EventsLost       atomic.Uint64 // events that could not be committed (counted, logged)
	MessagesSent     atomic.Uint64 // PUBACKed messages
	ValuesDelivered  atomic.Uint64 // values in PUBACKed telemetry/attribute messages
	PublishFailures  atomic.Uint64
	PlatformRejected atomic.Uint64 // messages the platform refused permanently
	CorruptRecords   atomic.Uint64
	MailboxDrops     atomic.Uint64
	Restarts         atomic.Uint64
	DevicesConnected atomic.Int64
	Reconnects       atomic.Uint64
	BadInbound       atomic.Uint64 // malformed platform messages (counted, logged, ignored)
	InboundMessages  atomic.Uint64 // platform messages received since the last statistics send
	TreeRestarts     atomic.Uint64 // in-process restarts of the whole tree (gateway_restart)
	Malformed        atomic.Uint64 // push-source input that could not be converted (counted, logged)
	Unmatched        atomic.Uint64 // push-source input no mapping wanted
	InputDropped     atomic.Uint64 // values or messages a push source had to give up (counted, logged)
	Refused          atomic.Uint64 // local-API connections and requests refused for unknown credentials
}
