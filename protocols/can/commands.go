package can

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/industryos/gateway/protocols"
	"github.com/industryos/gateway/protocols/kit/script"
)

// setExample is the reserved set params form, quoted in messages.
const setExample = "nodeId=0x123;isExtendedId=false;dataInHex=01 02"

// successResult is upstream's RPC reply, send_rpc_reply(..., {"success": done}).
var successResult = protocols.RPCResult(`{"success":true}`)

// Commander returns the platform-write side of a configured device, nil for
// a device this connector does not configure.
func (c *Connector) Commander(device, _ string) protocols.Commander {
	d := c.byName[device]
	if d == nil {
		return nil
	}
	cm := &commander{c: c, d: d.cfg}
	if d.script != nil && d.script.HasDownlink() {
		cm.script = d.script
	}
	return cm
}

// commander turns one device's attribute updates and RPC into frames.
type commander struct {
	c      *Connector
	d      *DeviceConfig
	script *script.Script // the device script, when it defines downlink(cmd)
}

// SharedAttributeKeys are the attributeUpdates[] attribute names, in file order.
func (m *commander) SharedAttributeKeys() []string {
	var out []string
	seen := map[string]bool{}
	for _, dl := range m.d.AttributeUpdates {
		if !seen[dl.Attribute] {
			seen[dl.Attribute] = true
			out = append(out, dl.Attribute)
		}
	}
	return out
}

// UpdateAttributes sends, for every value whose name an attributeUpdates[]
// entry declares, that entry's frame built from {"value": v}. A failed key
// does not stop the others; the errors are joined, each naming its key.
// An attribute whose entry was skipped at load fails with the reason; one
// no entry declares goes to the device script's downlink(cmd), if any.
func (m *commander) UpdateAttributes(ctx context.Context, values map[string]json.RawMessage) ([]string, error) {
	type entry struct {
		dl   *DownlinkConfig
		skip *SkippedDownlink
	}
	entries := make([]entry, 0, len(m.d.AttributeUpdates)+len(m.d.Skipped))
	for _, dl := range m.d.AttributeUpdates {
		entries = append(entries, entry{dl: dl})
	}
	for _, sk := range m.d.Skipped {
		if sk.Attribute != "" {
			entries = append(entries, entry{skip: sk})
		}
	}
	ignored, err := protocols.UpdateEach(values, entries,
		func(e entry, name string) bool {
			if e.skip != nil {
				return e.skip.Attribute == name
			}
			return e.dl.Attribute == name
		},
		func(e entry, name string, raw json.RawMessage) error {
			if e.skip != nil {
				return fmt.Errorf("can device %q: attribute %q (%s): %w", m.d.Name, name, e.skip.Path, e.skip.err())
			}
			if err := m.update(ctx, e.dl, raw); err != nil {
				return fmt.Errorf("can device %q: attribute %q (%s): %w", m.d.Name, name, e.dl.Path, err)
			}
			return nil
		})
	if len(ignored) == 0 || m.script == nil {
		return ignored, err
	}
	ignored, serr := m.script.UpdateUnclaimed(m.d.Name, values, ignored, script.FrameKeys,
		func(_ string, outs []script.Output) error { return m.sendAll(ctx, outs) })
	if serr != nil {
		serr = fmt.Errorf("can device %q: %w", m.d.Name, serr)
	}
	return ignored, errors.Join(err, serr)
}

// scriptRPC hands an RPC no serverSideRpc entry names to the device
// script's downlink(cmd); handled is false when the device has no such
// script or it returned nothing (then "set" and enableUnknownRpc follow as
// without a script).
func (m *commander) scriptRPC(ctx context.Context, req protocols.RPCRequest) (res protocols.RPCResult, handled bool, err error) {
	if m.script == nil || m.method(req.Method) != nil {
		return nil, false, nil
	}
	for _, sk := range m.d.Skipped {
		if sk.Method != "" && sk.Method == req.Method {
			return nil, false, nil
		}
	}
	outs, err := m.script.DownlinkFor(script.RPCCommand(req), script.FrameKeys)
	if err != nil {
		return nil, true, err
	}
	if len(outs) == 0 {
		return nil, false, nil
	}
	if err := m.sendAll(ctx, outs); err != nil {
		return nil, true, err
	}
	return protocols.RPCResult(script.Reply(outs, json.RawMessage(successResult))), true, nil
}

// sendAll sends one frame per output, in order: "nodeId" and the flags
// from the output, "payload" its data. An output with neither nodeId nor
// payload sends nothing (it only answers).
func (m *commander) sendAll(ctx context.Context, outs []script.Output) error {
	for i, o := range outs {
		if o.NodeID < 0 {
			if len(o.Payload) == 0 {
				continue
			}
			return fmt.Errorf("%s: downlink output %d has a payload but no \"nodeId\"", m.script.File, i)
		}
		f := Frame{ID: uint32(o.NodeID), Extended: o.Extended, FD: o.FD, BRS: o.BitSwitch, Data: o.Payload}
		if err := f.Validate(); err != nil {
			return fmt.Errorf("%s: downlink output %d: %w", m.script.File, i, err)
		}
		if err := m.c.send(ctx, f); err != nil {
			return err
		}
	}
	return nil
}

// ErrSkippedEntry is returned for a write naming an entry that was left out
// at load because of its errors.
var ErrSkippedEntry = errors.New("the entry was skipped at load")

func (s *SkippedDownlink) err() error { return fmt.Errorf("%w: %s", ErrSkippedEntry, s.Reason) }

func (m *commander) update(ctx context.Context, dl *DownlinkConfig, raw json.RawMessage) error {
	v, err := decodeJSON(raw)
	if err != nil {
		return err
	}
	f, err := dl.Frame(map[string]any{"value": v})
	if err != nil {
		return err
	}
	return m.c.send(ctx, f)
}

// RPC sends the frame of a serverSideRpc method, or of the reserved set
// (params "nodeId=…;dataInHex=…"), and replies upstream's {"success":true}
// once it is on the bus. Upstream replies only when the method sets
// "response"; the gateway always answers, so a failure is an error reply
// rather than silence. With overrideRpcConfig the params' frame fields
// override the method's; with enableUnknownRpc any method is taken, the
// frame described entirely by its params. A method no entry names goes
// first to the device script's downlink(cmd), when it has one.
func (m *commander) RPC(ctx context.Context, req protocols.RPCRequest) (protocols.RPCResult, error) {
	if res, handled, err := m.scriptRPC(ctx, req); handled {
		if err != nil {
			return nil, m.rpcErr(req.Method, err)
		}
		return res, nil
	}
	dl, data, err := m.resolve(req)
	if err != nil {
		return nil, m.rpcErr(req.Method, err)
	}
	f, err := dl.Frame(data)
	if err != nil {
		return nil, m.rpcErr(req.Method, err)
	}
	if err := m.c.send(ctx, f); err != nil {
		return nil, m.rpcErr(req.Method, err)
	}
	return successResult, nil
}

// resolve picks the downlink for req and the data its frame is built from.
func (m *commander) resolve(req protocols.RPCRequest) (*DownlinkConfig, any, error) {
	params, err := decodeJSON(req.Params)
	if err != nil {
		return nil, nil, fmt.Errorf("params: %w", err)
	}
	dl := m.method(req.Method)
	if dl == nil {
		for _, sk := range m.d.Skipped {
			if sk.Method != "" && sk.Method == req.Method {
				return nil, nil, fmt.Errorf("serverSideRpc entry %s: %w", sk.Path, sk.err())
			}
		}
	}
	if dl == nil && strings.EqualFold(req.Method, "set") {
		s, isStr := params.(string)
		if !isStr {
			return nil, nil, fmt.Errorf("params must be a string like %q, got %s", setExample, describeJSON(req.Params))
		}
		dl, data, err := ParseSetParams(s, m.d.StrictEval)
		if err != nil {
			return nil, nil, err
		}
		return dl, data, nil
	}
	if dl == nil && !m.d.EnableUnknownRPC {
		return nil, nil, m.unknownMethod(req.Method)
	}
	// Upstream: enableUnknownRpc implies overrideRpcConfig.
	if m.d.OverrideRPCConfig || m.d.EnableUnknownRPC {
		pm, _ := params.(map[string]any)
		var base map[string]any
		if dl != nil {
			base = dl.raw
		}
		merged, err := mergeRPC(req.Method, base, pm, m.d.StrictEval)
		if err != nil {
			return nil, nil, err
		}
		dl = merged
	}
	return dl, params, nil
}

func (m *commander) method(name string) *DownlinkConfig {
	for _, dl := range m.d.RPC {
		if dl.Method == name {
			return dl
		}
	}
	return nil
}

func (m *commander) unknownMethod(method string) error {
	known := []string{"set"}
	seen := map[string]bool{"set": true}
	for _, dl := range m.d.RPC {
		if !seen[dl.Method] {
			seen[dl.Method] = true
			known = append(known, dl.Method)
		}
	}
	return fmt.Errorf("%w %q (known: %s; enableUnknownRpc is off)", protocols.ErrUnknownMethod, method, strings.Join(known, ", "))
}

func (m *commander) rpcErr(method string, err error) error {
	return fmt.Errorf("can device %q: rpc %s: %w", m.d.Name, method, err)
}

// decodeJSON decodes raw with numbers as json.Number, so integers stay
// integers when they become frame bytes; absent means nil.
func decodeJSON(raw json.RawMessage) (any, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return nil, nil
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, fmt.Errorf("%s is not valid JSON: %w", describeJSON(raw), err)
	}
	return v, nil
}

func describeJSON(raw json.RawMessage) string {
	raw = bytes.TrimSpace(raw)
	switch {
	case len(raw) == 0:
		return "none"
	case len(raw) > 80:
		return string(raw[:80]) + "…"
	}
	return string(raw)
}

var _ protocols.Commander = (*commander)(nil)
