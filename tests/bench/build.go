package main

import (
	"fmt"
	"os"
	"os/exec"
	"time"

	"github.com/industryos/gateway/actors/observe"
)

// buildGateway builds cmd/iotgw into bin the way a release is built (static,
// stripped), so CPU and RSS are those of the binary users run: a cgo build
// links libc and maps more code.
// It uses go.mod's toolchain, as a release does, unless GOTOOLCHAIN is set.
// extra are further build flags (the -modfile of the bench's patched modules).
func buildGateway(bin string, extra ...string) error {
	args := append([]string{"build", "-trimpath", "-ldflags", "-s -w", "-o", bin}, extra...)
	cmd := exec.Command("go", append(args, "./cmd/iotgw")...)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if os.Getenv("GOTOOLCHAIN") == "" {
		cmd.Env = append(cmd.Env, "GOTOOLCHAIN=auto")
	}
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("build: %v\n%s", err, out)
	}
	return nil
}

// rssStats are the gateway's RSS samples over a measurement window.
type rssStats struct {
	avg, avgFile float64
	last         int64
}

// sampleRSS samples pid's RSS every second until stop, then reports.
func sampleRSS(pid int, stop <-chan struct{}, out chan<- rssStats) {
	var sum, sumFile float64
	var n int
	var last int64
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-stop:
			if n > 0 {
				sum, sumFile = sum/float64(n), sumFile/float64(n)
			}
			out <- rssStats{avg: sum, avgFile: sumFile, last: last}
			return
		case <-tick.C:
			rss, file := observe.ProcessRSS(pid)
			if rss > 0 {
				sum += float64(rss)
				sumFile += float64(file)
				last = rss
				n++
			}
		}
	}
}
