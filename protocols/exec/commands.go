package exec

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/industryos/gateway/protocols"
)

// proc is one run of the program as commands see it.
type proc struct {
	wmu   sync.Mutex
	stdin *os.File

	mu      sync.Mutex
	waiting map[int64]chan Record // RPCs waiting for their reply line
	closed  bool
}

// writeLine writes one JSON line to the program's stdin, giving up at the
// deadline (a program that does not read its stdin).
func (p *proc) writeLine(v any, deadline time.Time) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	p.wmu.Lock()
	defer p.wmu.Unlock()
	_ = p.stdin.SetWriteDeadline(deadline)
	if _, err := p.stdin.Write(append(b, '\n')); err != nil {
		return fmt.Errorf("write to the program's stdin: %v: %w", err, protocols.ErrIO)
	}
	return nil
}

func (p *proc) wait(id int64) (chan Record, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil, false
	}
	ch := make(chan Record, 1)
	p.waiting[id] = ch
	return ch, true
}

func (p *proc) forget(id int64) {
	p.mu.Lock()
	delete(p.waiting, id)
	p.mu.Unlock()
}

// answer hands a reply to its waiter; false when none waits.
func (p *proc) answer(r Record) bool {
	p.mu.Lock()
	ch, ok := p.waiting[r.ID]
	delete(p.waiting, r.ID)
	p.mu.Unlock()
	if ok {
		ch <- r
	}
	return ok
}

// close ends the run: waiting RPCs fail at once and the stdin is closed.
func (p *proc) close() {
	p.mu.Lock()
	p.closed = true
	for id, ch := range p.waiting {
		close(ch)
		delete(p.waiting, id)
	}
	p.mu.Unlock()
	p.wmu.Lock()
	p.stdin.Close()
	p.wmu.Unlock()
}

// Commander implements protocols.DeviceCommands: every device the program
// names takes RPCs and attribute updates, which go to the program.
func (c *Connector) Commander(device, profile string) protocols.Commander {
	return &commander{c: c, device: device}
}

type commander struct {
	c      *Connector
	device string
}

// rpcLine and attrLine are what the program reads on stdin.
type rpcLine struct {
	ID     int64           `json:"id"`
	Type   string          `json:"type"`
	Device string          `json:"device"`
	Method string          `json:"method"`
	Params json.RawMessage `json:"params,omitempty"`
}

type attrLine struct {
	Type   string                     `json:"type"`
	Device string                     `json:"device"`
	Values map[string]json.RawMessage `json:"values"`
}

// RPC writes the request and waits for the program's reply line with the
// same id, rpcTimeout at most.
func (cm *commander) RPC(ctx context.Context, req protocols.RPCRequest) (protocols.RPCResult, error) {
	c := cm.c
	fail := func(err error) error {
		return fmt.Errorf("exec device %q: rpc %q: %w", cm.device, req.Method, err)
	}
	p := c.cur.Load()
	if p == nil {
		return nil, fail(ErrNotRunning)
	}
	id := c.nextID.Add(1)
	ch, ok := p.wait(id)
	if !ok {
		return nil, fail(ErrNotRunning)
	}
	defer p.forget(id)
	deadline := time.Now().Add(c.cfg.RPCTimeout)
	if dl, ok := ctx.Deadline(); ok && dl.Before(deadline) {
		deadline = dl
	}
	params := req.Params
	if len(params) > 0 && !json.Valid(params) {
		params = nil
	}
	if err := p.writeLine(rpcLine{ID: id, Type: "rpc", Device: cm.device, Method: req.Method, Params: params}, deadline); err != nil {
		c.stdinErrs.Add(1)
		return nil, fail(err)
	}
	t := time.NewTimer(time.Until(deadline))
	defer t.Stop()
	select {
	case r, ok := <-ch:
		if !ok {
			return nil, fail(fmt.Errorf("the program exited before replying: %w", protocols.ErrIO))
		}
		if r.Error != "" {
			return nil, fail(fmt.Errorf("the program answered: %s", r.Error))
		}
		return protocols.RPCResult(r.Reply), nil
	case <-t.C:
		return nil, fail(fmt.Errorf("no reply line with id %d within %v: %w", id, c.cfg.RPCTimeout, protocols.ErrTimeout))
	case <-ctx.Done():
		return nil, fail(ctx.Err())
	}
}

// UpdateAttributes writes the update as one line; the program takes every
// key (there is no reply).
func (cm *commander) UpdateAttributes(ctx context.Context, values map[string]json.RawMessage) ([]string, error) {
	p := cm.c.cur.Load()
	if p == nil {
		return nil, fmt.Errorf("exec device %q: attribute update: %w", cm.device, ErrNotRunning)
	}
	deadline := time.Now().Add(cm.c.cfg.RPCTimeout)
	if err := p.writeLine(attrLine{Type: "attributes", Device: cm.device, Values: values}, deadline); err != nil {
		cm.c.stdinErrs.Add(1)
		return nil, fmt.Errorf("exec device %q: attribute update: %w", cm.device, err)
	}
	return nil, nil
}

// SharedAttributeKeys implements protocols.Commander: the program asks
// for nothing at connect time.
func (cm *commander) SharedAttributeKeys() []string { return nil }

var _ protocols.Commander = (*commander)(nil)
