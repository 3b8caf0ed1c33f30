package main

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"time"
)

// A p99 is one number for the whole window. Whether a bad one is a stall (the
// machine or one of the processes stopped for a moment and a burst of polls
// waited behind it) or a steady share of slow polls decides where to look, so
// the bench prints where in the window the slowest polls started and, with
// -stalls, how late a sleeping thread of a process of its own woke in the same
// seconds.

// latSample is one delivered entry: when its poll started (the entry's ts)
// and how long after that the subscriber received it.
type latSample struct {
	start time.Time
	lat   time.Duration
}

// tailSecond is one second of the window and how many of the slowest polls
// started in it.
type tailSecond struct {
	sec, n int
}

// tailShape takes the samples at or above the q quantile (sorted by latency)
// and counts them by the second of the window they started in, most first.
func tailShape(sorted []latSample, q float64, window time.Time) (threshold time.Duration, tail int, secs []tailSecond) {
	if len(sorted) == 0 {
		return 0, 0, nil
	}
	i := int(q * float64(len(sorted)-1))
	threshold = sorted[i].lat
	for i > 0 && sorted[i-1].lat == threshold {
		i--
	}
	bySec := map[int]int{}
	for _, s := range sorted[i:] {
		bySec[windowSecond(s.start, window)]++
	}
	for sec, n := range bySec {
		secs = append(secs, tailSecond{sec, n})
	}
	sort.Slice(secs, func(a, b int) bool {
		if secs[a].n != secs[b].n {
			return secs[a].n > secs[b].n
		}
		return secs[a].sec < secs[b].sec
	})
	return threshold, len(sorted) - i, secs
}

// printTail prints the tail line and, with stall figures, each listed
// second's worst wake-up delay.
func printTail(sorted []latSample, window time.Time, stalls map[int]time.Duration) {
	threshold, n, secs := tailShape(sorted, 0.99, window)
	if n == 0 {
		return
	}
	shown := secs[:min(len(secs), 5)]
	parts := make([]string, len(shown))
	for i, s := range shown {
		parts[i] = fmt.Sprintf("+%d s: %d", s.sec, s.n)
		if stalls != nil {
			parts[i] += fmt.Sprintf(" (stall %s)", stalls[s.sec].Round(100*time.Microsecond))
		}
	}
	worst := sorted[len(sorted)-1]
	fmt.Printf("tail         the %d polls at p99 or slower (≥ %s) started in %d of the window's seconds; most in %s; the slowest started at %s\n",
		n, threshold.Round(time.Millisecond), len(secs), strings.Join(parts, ", "), worst.start.Format("15:04:05.000"))
}

// windowSecond numbers the wall-clock seconds from the one the window began
// in, so the subscriber's figures and the probe's meet.
func windowSecond(t, window time.Time) int {
	return int(t.Truncate(time.Second).Sub(window.Truncate(time.Second)) / time.Second)
}

// stallEnv marks the bench re-executed as the stall probe.
const stallEnv = "IOTGW_BENCH_STALL_PROBE"

// stallPeriod is the probe's sleep: short enough to see a stall of a few
// milliseconds, long enough that its 100 wake-ups a second cost the machine
// next to nothing.
const stallPeriod = 10 * time.Millisecond

// runStallProbe is the probe process: one processor, one goroutine that
// sleeps stallPeriod at a time and prints, every second, the worst delay past
// it. Being a process of its own keeps the bench's busy goroutines from
// delaying it: what it sees is the kernel's (and the hypervisor's) lateness.
func runStallProbe() {
	runtime.GOMAXPROCS(1)
	w := bufio.NewWriter(os.Stdout)
	var worst time.Duration
	next := time.Now().Truncate(time.Second).Add(time.Second)
	for {
		t0 := time.Now()
		time.Sleep(stallPeriod)
		now := time.Now()
		worst = max(worst, now.Sub(t0)-stallPeriod)
		if !now.Before(next) {
			fmt.Fprintf(w, "%d %d\n", next.Unix()-1, worst.Nanoseconds())
			if w.Flush() != nil {
				return
			}
			worst, next = 0, now.Truncate(time.Second).Add(time.Second)
		}
	}
}

// stallProbe runs the probe process and collects its per-second figures.
type stallProbe struct {
	cmd   *exec.Cmd
	late  map[int64]time.Duration // Unix second → worst delay in it; the reader's until done
	done  chan struct{}
	ended bool
}

func startStallProbe() (*stallProbe, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(self)
	cmd.Env = append(os.Environ(), stallEnv+"=1")
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("stall probe: %w", err)
	}
	p := &stallProbe{cmd: cmd, late: map[int64]time.Duration{}, done: make(chan struct{})}
	go func() {
		defer close(p.done)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			sec, ns, ok := strings.Cut(sc.Text(), " ")
			s, err1 := strconv.ParseInt(sec, 10, 64)
			n, err2 := strconv.ParseInt(ns, 10, 64)
			if !ok || err1 != nil || err2 != nil {
				continue
			}
			p.late[s] = time.Duration(n)
		}
	}()
	return p, nil
}

// end kills the probe and reaps it, once; a deferred end covers the paths
// that return before stop.
func (p *stallProbe) end() {
	if p.ended {
		return
	}
	p.ended = true
	_ = p.cmd.Process.Kill()
	<-p.done
	_ = p.cmd.Wait()
}

// stop ends the probe and returns its figures by second of the window that
// began at window, and the worst of them all.
func (p *stallProbe) stop(window time.Time, d time.Duration) (bySec map[int]time.Duration, worst time.Duration, over int) {
	p.end()
	bySec = map[int]time.Duration{}
	for s, late := range p.late {
		sec := windowSecond(time.Unix(s, 0), window)
		if sec < 0 || sec > int(d/time.Second) {
			continue
		}
		bySec[sec] = late
		worst = max(worst, late)
		if late > 5*time.Millisecond {
			over++
		}
	}
	return bySec, worst, over
}
