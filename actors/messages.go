// Package actors is the gateway's runtime: a supervised protoactor tree that
// drives any registered protocol, journals every event and delivers it to the
// platform. Protocol, journal, mailbox and supervision code live in their own
// packages; this package only wires them together.
package actors

import (
	"errors"

	"github.com/industryos/gateway/protocols"
)

// AppendEvents asks the journal to commit events. Device actors send it; the
// events are accepted once the journal has committed them.
type AppendEvents struct {
	Events []protocols.Event
	// Done, when set, is called once the events are committed (nil) or
	// lost (the error; the loss is counted and logged). It must not block.
	Done func(error)
	// Recycle: every event's Values array is the journal's alone (no bus
	// subscriber shares it, no sender keeps it), so the journal hands it
	// to protocols.RecycleDatapoints once encoded.
	Recycle bool
}

// errMailboxFull is what Done learns when a full mailbox dropped the message.
var errMailboxFull = errors.New("mailbox full; message dropped")

func (m *AppendEvents) dropped() {
	if m.Done != nil {
		m.Done(errMailboxFull)
	}
}

// JournalAppended tells the uplink that records up to Last are committed.
type JournalAppended struct{ Last uint64 }

// Ack tells the journal the platform acknowledged every record up to UpTo.
type Ack struct{ UpTo uint64 }

// Flush asks the journal to commit everything pending; it responds Flushed.
// It is deliberately an ordinary data message, not a control one: queued
// behind the AppendEvents sent before it, its answer covers all of them, which
// is what a final flush at shutdown needs. A control Flush would overtake them
// and leave them to be committed after the uplink had stopped.
type Flush struct{}

// Flushed answers Flush.
type Flushed struct{ Last uint64 }

// DeviceConnected is sent to the registry when a device first answers.
type DeviceConnected struct {
	Device    string
	Type      string
	Connector string
}

// DeviceDisconnected is sent to the registry when a device is given up on.
type DeviceDisconnected struct {
	Device    string
	Connector string
}

// ListDevices asks the registry for the connected devices; it responds DeviceList.
type ListDevices struct{}

// ControlMessage marks ListDevices as a control message.
func (*ListDevices) ControlMessage() {}

// DeviceList answers ListDevices.
type DeviceList struct{ Devices []DeviceConnected }

// connectionUp and connectionDown come from the platform client's callbacks.
type connectionUp struct{}
type connectionDown struct{ err error }

func (*connectionUp) ControlMessage()   {}
func (*connectionDown) ControlMessage() {}
