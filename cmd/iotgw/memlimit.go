package main

import (
	"errors"
	"math"
	"os"
	"runtime/debug"

	"github.com/KimMachineGun/automemlimit/memlimit"
	"github.com/rs/zerolog"
)

// applyMemoryLimit sets the Go runtime's soft memory limit, so that the GC works harder
// before a small box or a container's limit kills the process: GOMEMLIMIT when set (the
// runtime has applied it), else the config's resources.memoryLimitMB, else 90 % of the
// cgroup memory limit (container, systemd MemoryMax=) when there is one. It returns the
// limit in bytes, 0 for none.
func applyMemoryLimit(configMB int64, log zerolog.Logger) int64 {
	var limit int64
	switch {
	case os.Getenv("GOMEMLIMIT") != "":
		limit = debug.SetMemoryLimit(-1)
	case configMB > 0:
		limit = configMB << 20
		debug.SetMemoryLimit(limit)
	default:
		l, err := memlimit.Set(memlimit.WithRatio(0.9), memlimit.WithProvider(memlimit.FromCgroup))
		if err != nil && !errors.Is(err, memlimit.ErrCgroupsNotSupported) {
			log.Warn().Err(err).Msg("cannot read the cgroup memory limit; no Go memory limit set")
		}
		limit = l
	}
	if limit <= 0 || limit == math.MaxInt64 {
		return 0
	}
	log.Info().Int64("limitMB", limit>>20).Msg("Go memory limit")
	return limit
}
