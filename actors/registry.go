package actors

import (
	"errors"
	"os"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/rs/zerolog"

	"github.com/industryos/gateway/persistence"
)

// renameDevice and deleteDevice come from gateway_device_renamed/_deleted.
type renameDevice struct{ from, to string }
type deleteDevice struct{ name string }

// saveRegistry flushes a pending save; saves are coalesced so a thousand
// devices connecting at start cost one write, not a thousand.
type saveRegistry struct{}

const registrySaveDelay = time.Second

// forgetConnection makes a device announce itself again on its next data.
type forgetConnection struct{}

// announceDevices tells the uplink which devices to re-connect after a
// (re)connect of the platform session.
type announceDevices struct{ devices map[string]string }

func (*renameDevice) ControlMessage()     {}
func (*deleteDevice) ControlMessage()     {}
func (*forgetConnection) ControlMessage() {}
func (*announceDevices) ControlMessage()  {}
func (*saveRegistry) ControlMessage()     {}

// registryActor knows every device: which connector owns it, its profile,
// its platform name, and its actor. It persists that list atomically so a
// restarted gateway re-announces the same devices under the same names.
type registryActor struct {
	renames *renames
	// connector finds the actor of a connector by name, for a command to a
	// push device that has no actor yet (nil when none is running).
	connector func(name string) *actor.PID
	uplink    func() *actor.PID // where saved devices are announced
	log       zerolog.Logger
	path      string // connected_devices.json; empty: not persisted
	saved     map[string]*persistence.SavedDevice
	devices   map[string]DeviceConnected
	pids      map[string]*actor.PID
	dirty     bool
}

func (r *registryActor) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *actor.Started:
		r.devices = map[string]DeviceConnected{}
		r.pids = map[string]*actor.PID{}
		if r.saved == nil {
			r.saved = map[string]*persistence.SavedDevice{}
		}
		r.announceSaved(ctx)
	case *saveRegistry:
		r.flush()
	case *actor.Stopping:
		r.flush()
	case *deviceUp:
		r.pids[m.name] = m.pid
	case *deviceDown:
		if r.pids[m.name] == m.pid {
			delete(r.pids, m.name)
		}
	case *routeRPC:
		r.route(ctx, m.req.Device, m)
	case *routeAttributes:
		r.route(ctx, m.upd.Device, m)
	case *DeviceConnected:
		r.devices[m.Device] = *m
		s := r.saved[m.Device]
		if s == nil {
			s = &persistence.SavedDevice{}
			r.saved[m.Device] = s
		}
		if s.ConnectorName != m.Connector || s.DeviceType != m.Type || s.Disconnected {
			s.ConnectorName, s.DeviceType, s.Disconnected = m.Connector, m.Type, false
			r.markDirty(ctx)
		}
	case *DeviceDisconnected:
		delete(r.devices, m.Device)
		if s := r.saved[m.Device]; s != nil && !s.Disconnected {
			s.Disconnected = true
			r.markDirty(ctx)
		}
	case *renameDevice:
		original := r.renames.toOriginal(m.from)
		r.renames.set(original, m.to)
		if s := r.saved[original]; s != nil {
			to := m.to
			s.Renaming = &to
			if to == original {
				s.Renaming = nil
			}
		}
		r.log.Info().Str("device", original).Str("from", m.from).Str("to", m.to).Msg("device renamed on the platform")
		r.markDirty(ctx)
		ctx.Respond(&rpcResult{data: []byte(`{"success":true}`)})
	case *deleteDevice:
		original := r.renames.toOriginal(m.name)
		r.renames.set(original, original)
		delete(r.saved, original)
		delete(r.devices, original)
		if pid, ok := r.pids[original]; ok {
			ctx.Send(pid, &forgetConnection{})
		}
		r.log.Info().Str("device", original).Msg("device deleted on the platform; it is re-connected on its next data")
		r.markDirty(ctx)
		ctx.Respond(&rpcResult{data: []byte(`{"success":true}`)})
	case *ListDevices:
		out := make([]DeviceConnected, 0, len(r.devices))
		for _, d := range r.devices {
			out = append(out, d)
		}
		ctx.Respond(&DeviceList{Devices: out})
	}
}

// loadRegistry reads the persisted list before anything starts, so renames
// hold from the first message on. A broken file is kept aside, not lost.
func loadRegistry(path string, log zerolog.Logger) map[string]*persistence.SavedDevice {
	if path == "" {
		return map[string]*persistence.SavedDevice{}
	}
	saved, err := persistence.LoadDevices(path)
	switch {
	case errors.Is(err, persistence.ErrBadDevicesFile):
		bad := path + ".bad"
		_ = os.Rename(path, bad)
		log.Error().Err(err).Str("file", path).Str("moved_to", bad).Msg("device registry unreadable; starting empty")
		return map[string]*persistence.SavedDevice{}
	case err != nil:
		log.Error().Err(err).Str("file", path).Msg("cannot read the device registry; starting empty")
		return map[string]*persistence.SavedDevice{}
	}
	if len(saved) > 0 {
		log.Info().Int("devices", len(saved)).Msg("device registry loaded")
	}
	return saved
}

// announceSaved asks the uplink to re-connect every device that was
// connected when the gateway last ran.
func (r *registryActor) announceSaved(ctx actor.Context) {
	announce := map[string]string{}
	for name, s := range r.saved {
		if !s.Disconnected {
			announce[r.renames.toPlatform(name)] = s.DeviceType
		}
	}
	if len(announce) > 0 {
		ctx.Send(r.uplink(), &announceDevices{devices: announce})
	}
}

// markDirty schedules one save for all changes of the next second.
func (r *registryActor) markDirty(ctx actor.Context) {
	if r.path == "" || r.dirty {
		return
	}
	r.dirty = true
	sys, self := ctx.ActorSystem(), ctx.Self()
	time.AfterFunc(registrySaveDelay, func() { sys.Root.Send(self, &saveRegistry{}) })
}

func (r *registryActor) flush() {
	if r.dirty {
		r.dirty = false
		r.save()
	}
}

// save writes the registry atomically: a crash leaves the old or the new
// file, never half of one.
func (r *registryActor) save() {
	if r.path == "" {
		return
	}
	if err := persistence.SaveDevices(r.path, r.saved); err != nil {
		r.log.Error().Err(err).Str("file", r.path).Msg("cannot save the device registry")
	}
}
