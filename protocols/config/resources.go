package config

import "github.com/industryos/gateway/protocols/kit/spec"

// Resources is our own "resources" section (upstream has none): limits for small boxes.
type Resources struct {
	// MemoryLimitMB is the Go runtime's soft memory limit in MiB; 0 leaves it to GOMEMLIMIT
	// or, without that, to 90 % of the cgroup (container, systemd MemoryMax) limit.
	MemoryLimitMB int64
	// KeepStartupPages keeps the binary's start-up code and data mapped:
	// by default, once start-up has settled, those read-only pages are
	// handed back to the kernel (most of the binary is touched only while
	// starting, and stays resident otherwise).
	KeepStartupPages bool
	// MaxProcs fixes the scheduler's processor count (GOMAXPROCS). 0, the
	// default, runs on one processor while the load fits in it and on every
	// CPU the process may use when it does not (see cmd/iotgw).
	MaxProcs int
}

func parseResources(root *spec.Obj) Resources {
	var r Resources
	if o := root.Obj("resources"); o != nil {
		// 16 MiB is below what the gateway needs to start; 1 TiB is a typo.
		r.MemoryLimitMB = o.IntRange("memoryLimitMB", 0, 0, 1<<20)
		if r.MemoryLimitMB > 0 && r.MemoryLimitMB < 16 {
			o.Errorf("memoryLimitMB", "%d is below the 16 MiB the gateway needs", r.MemoryLimitMB)
		}
		r.KeepStartupPages = o.Bool("keepStartupPages", false)
		r.MaxProcs = int(o.IntRange("maxProcs", 0, 0, 1024))
		o.Done()
	}
	return r
}
