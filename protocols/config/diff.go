package config

import (
	"crypto/sha256"
	"fmt"
	"reflect"
	"sort"
	"strings"
)

// Scope is what has to restart for a change to take effect, from least to
// most: a plan restarts the widest scope among its changes.
type Scope int

const (
	// ScopeLive: read where it is used, so it applies at once (the device
	// filter, activity checks, shared-attribute sync).
	ScopeLive Scope = iota
	// ScopeConnector: the named connector's actor (with its devices).
	ScopeConnector
	// ScopePlatform: the platform client. Its session, the statistics loop
	// and the global report strategy every connector was built with hang off
	// the tree, so today the tree restarts.
	ScopePlatform
	// ScopeTree: the actor tree over the open journal (storage settings the
	// journal and uplink actors read when they start).
	ScopeTree
	// ScopeProcess: only read when the process starts (the HTTP endpoint,
	// logs.level, the memory limit, the journal's kind and place); saved,
	// and applied at the next start.
	ScopeProcess
)

func (s Scope) String() string {
	switch s {
	case ScopeLive:
		return "live"
	case ScopeConnector:
		return "connector"
	case ScopePlatform:
		return "platform"
	case ScopeTree:
		return "tree"
	case ScopeProcess:
		return "process"
	}
	return fmt.Sprintf("Scope(%d)", int(s))
}

// Change is one difference between two configurations, typed after what it
// touches, in the manner of nats-server's reload options: each knows what it
// restarts.
type Change interface {
	// Scope is what restarts for the change to apply.
	Scope() Scope
	// String describes the change for the log.
	String() string
}

// ConnectorAdded is a connector that was not configured before: start it.
type ConnectorAdded struct{ Connector Connector }

// ConnectorRemoved is a connector no longer configured: stop it.
type ConnectorRemoved struct{ Name string }

// ConnectorChanged is a connector whose entry or file changed: restart it
// with New.
type ConnectorChanged struct {
	New    Connector
	Fields []string // what differs: type, file, enableRemoteLogging, configuration
}

// PlatformChanged lists the thingsboard fields that change the platform
// session or what hangs off it.
type PlatformChanged struct{ Fields []string }

// StorageChanged lists the storage fields that changed. Fields the open
// journal was opened with wait for the next start of the process; the rest
// (read batch, commit interval) apply when the tree restarts.
type StorageChanged struct {
	Fields []string
	// Reopen is true when the journal itself would have to be reopened.
	Reopen bool
}

// LiveChanged is a setting read where it is used.
type LiveChanged struct{ Field string }

// ProcessChanged is a setting read only at process start.
type ProcessChanged struct{ Field string }

func (ConnectorAdded) Scope() Scope   { return ScopeConnector }
func (ConnectorRemoved) Scope() Scope { return ScopeConnector }
func (ConnectorChanged) Scope() Scope { return ScopeConnector }
func (PlatformChanged) Scope() Scope  { return ScopePlatform }
func (StorageChanged) Scope() Scope   { return ScopeTree }
func (LiveChanged) Scope() Scope      { return ScopeLive }
func (ProcessChanged) Scope() Scope   { return ScopeProcess }

func (c ConnectorAdded) String() string   { return fmt.Sprintf("connector %q added", c.Connector.Name) }
func (c ConnectorRemoved) String() string { return fmt.Sprintf("connector %q removed", c.Name) }
func (c ConnectorChanged) String() string {
	return fmt.Sprintf("connector %q changed (%s)", c.New.Name, strings.Join(c.Fields, ", "))
}
func (c PlatformChanged) String() string {
	return "thingsboard changed (" + strings.Join(c.Fields, ", ") + ")"
}
func (c StorageChanged) String() string {
	return "storage changed (" + strings.Join(c.Fields, ", ") + ")"
}
func (c LiveChanged) String() string    { return c.Field + " changed" }
func (c ProcessChanged) String() string { return c.Field + " changed (applies at the next start)" }

// Connector names the connector a connector change is about ("" otherwise).
func ConnectorName(c Change) string {
	switch c := c.(type) {
	case ConnectorAdded:
		return c.Connector.Name
	case ConnectorRemoved:
		return c.Name
	case ConnectorChanged:
		return c.New.Name
	}
	return ""
}

// Widest is the widest scope among changes; ScopeLive for none.
func Widest(changes []Change) Scope {
	s := ScopeLive
	for _, c := range changes {
		s = max(s, c.Scope())
	}
	return s
}

// liveThingsBoard are thingsboard fields read on use, not by the session.
var liveThingsBoard = map[string]bool{"SyncSharedAttributes": true}

// reopenStorage are the storage fields the journal is opened with.
var reopenStorage = map[string]bool{"UpstreamType": true, "Durable": true, "Dir": true,
	"MaxRecords": true, "MaxBytes": true, "MaxAge": true, "SyncWrites": true}

// Diff lists what changes from old to new: connectors by name (added,
// removed, changed), then the platform, storage and the other sections. The
// order is stable: connectors sorted by name, sections in a fixed order.
func Diff(old, new *Gateway) []Change {
	var out []Change
	before := map[string]Connector{}
	for _, c := range old.Connectors {
		before[c.Name] = c
	}
	after := map[string]Connector{}
	for _, c := range new.Connectors {
		after[c.Name] = c
	}
	names := make([]string, 0, len(before)+len(after))
	for n := range before {
		names = append(names, n)
	}
	for n := range after {
		if _, ok := before[n]; !ok {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	for _, n := range names {
		o, had := before[n]
		c, has := after[n]
		switch {
		case !had:
			out = append(out, ConnectorAdded{Connector: c})
		case !has:
			out = append(out, ConnectorRemoved{Name: n})
		default:
			var fields []string
			if o.Type != c.Type {
				fields = append(fields, "type")
			}
			if o.File != c.File {
				fields = append(fields, "file")
			}
			if o.RemoteLogging != c.RemoteLogging {
				fields = append(fields, "enableRemoteLogging")
			}
			if o.Sum != c.Sum {
				fields = append(fields, "configuration")
			}
			if len(fields) > 0 {
				out = append(out, ConnectorChanged{New: c, Fields: fields})
			}
		}
	}
	var platform []string
	for _, f := range fieldDiff(old.ThingsBoard, new.ThingsBoard) {
		if liveThingsBoard[f] {
			out = append(out, LiveChanged{Field: "thingsboard." + f})
		} else {
			platform = append(platform, f)
		}
	}
	if len(platform) > 0 {
		out = append(out, PlatformChanged{Fields: platform})
	}
	var storage []string
	reopen := false
	for _, f := range fieldDiff(old.Storage, new.Storage) {
		if f == "Note" {
			continue // follows the others
		}
		storage = append(storage, f)
		reopen = reopen || reopenStorage[f]
	}
	if len(storage) > 0 {
		out = append(out, StorageChanged{Fields: storage, Reopen: reopen})
	}
	if !reflect.DeepEqual(old.Filter, new.Filter) {
		out = append(out, LiveChanged{Field: "thingsboard.deviceFiltering"})
	}
	if old.Activity != new.Activity {
		out = append(out, LiveChanged{Field: "thingsboard.checkingDeviceActivity"})
	}
	if old.HTTP != new.HTTP {
		out = append(out, ProcessChanged{Field: "http"})
	}
	for _, section := range changedServices(old.Services, new.Services) {
		out = append(out, ProcessChanged{Field: section})
	}
	if old.Logs != new.Logs {
		out = append(out, ProcessChanged{Field: "logs"})
	}
	if old.Resources != new.Resources {
		out = append(out, ProcessChanged{Field: "resources"})
	}
	return out
}

// fieldDiff names the fields of two structs of one type that differ.
func fieldDiff(a, b any) []string {
	va, vb := reflect.ValueOf(a), reflect.ValueOf(b)
	var out []string
	for i := range va.NumField() {
		if !reflect.DeepEqual(va.Field(i).Interface(), vb.Field(i).Interface()) {
			out = append(out, va.Type().Field(i).Name)
		}
	}
	return out
}

// changedServices names the service sections switched on, off or edited.
func changedServices(old, new []Service) []string {
	sums := map[string][sha256.Size]byte{}
	for _, s := range old {
		sums[s.Section] = s.Sum
	}
	var out []string
	for _, s := range new {
		if sum, ok := sums[s.Section]; !ok || sum != s.Sum {
			out = append(out, s.Section)
		}
		delete(sums, s.Section)
	}
	for section := range sums {
		out = append(out, section)
	}
	sort.Strings(out)
	return out
}
