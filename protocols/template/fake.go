package template

import (
	"fmt"
	"strings"
	"sync"
)

// fakeDevice stands in for the hardware: named registers holding values.
// A real protocol replaces it with its client (a socket, a serial port, a
// library) behind the same few calls.
type fakeDevice struct {
	mu   sync.Mutex
	regs map[string]any
}

// fakes are the devices by address, so a test and the connector share one.
var (
	fakesMu sync.Mutex
	fakes   = map[string]*fakeDevice{}
)

// openFake returns the fake device at address (fake://<name>), creating it
// with a temperature and a model the first time.
func openFake(address string) (*fakeDevice, error) {
	name, ok := strings.CutPrefix(address, "fake://")
	if !ok {
		return nil, fmt.Errorf("template: address %q: want fake://<name>", address)
	}
	fakesMu.Lock()
	defer fakesMu.Unlock()
	f := fakes[name]
	if f == nil {
		f = &fakeDevice{regs: map[string]any{"temp": 21.5, "model": "T-1000"}}
		fakes[name] = f
	}
	return f, nil
}

// read returns a copy of the registers.
func (f *fakeDevice) read() map[string]any {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make(map[string]any, len(f.regs))
	for k, v := range f.regs {
		out[k] = v
	}
	return out
}

func (f *fakeDevice) write(reg string, v any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.regs[reg] = v
}
