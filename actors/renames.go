package actors

import (
	"sync"

	"github.com/industryos/gateway/protocols"
)

// renames maps connector-side device names to the names the platform uses
// after a rename, both ways. Outgoing data uses the platform name; incoming
// commands for it reach the original device.
type renames struct {
	mu    sync.RWMutex
	toNew map[string]string
	toOld map[string]string
}

func newRenames() *renames {
	return &renames{toNew: map[string]string{}, toOld: map[string]string{}}
}

func (r *renames) toPlatform(original string) string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if n, ok := r.toNew[original]; ok {
		return n
	}
	return original
}

func (r *renames) toOriginal(platformName string) string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if o, ok := r.toOld[platformName]; ok {
		return o
	}
	return platformName
}

func (r *renames) toOriginalUpdate(u protocols.AttributeUpdate) protocols.AttributeUpdate {
	u.Device = r.toOriginal(u.Device)
	return u
}

// set records that original is now called newName on the platform.
func (r *renames) set(original, newName string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if prev, ok := r.toNew[original]; ok {
		delete(r.toOld, prev)
	}
	if original == newName {
		delete(r.toNew, original)
		return
	}
	r.toNew[original] = newName
	r.toOld[newName] = original
}
