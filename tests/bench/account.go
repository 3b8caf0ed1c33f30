package main

import (
	"bufio"
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/industryos/gateway/protocols/modbus/sim"
)

// accountOn (-account) checks, poll by poll, that every read a simulator
// served reached the platform: the simulators put a per-unit sequence
// number of served reads in each unit's last register, the subscriber
// follows it per device, and at the end the gateway's own poll-error
// counters (from /metrics) must explain every served read that never
// arrived (a read the simulator answered after the gateway's timeout is
// a poll error, never an accepted event).
var accountOn bool

// devAccount is one device's delivered polls, followed by sequence number.
type devAccount struct {
	delivered uint64 // entries with a new sequence number
	dups      uint64 // entries with a sequence number seen before
	late      uint64 // entries that arrived after a later one (filled a gap)
	gaps      uint64 // sequence numbers skipped between delivered entries
	last      int    // highest sequence number seen, -1 before the first
	missing   map[int]bool
	firstGaps []string
	firstLate []string
}

// account is the subscriber's side. Its methods are called with stats.mu held.
type account struct {
	seqKey string
	devs   map[string]*devAccount
}

func newAccount(registers int) *account {
	return &account{seqKey: fmt.Sprintf("r%d", registers-1), devs: map[string]*devAccount{}}
}

func (a *account) entry(device []byte, seqRaw []byte, at time.Time) {
	d := a.devs[string(device)]
	if d == nil {
		d = &devAccount{last: -1}
		a.devs[string(device)] = d
	}
	seq, err := strconv.Atoi(string(seqRaw))
	if err != nil {
		return
	}
	if d.missing == nil {
		d.missing = map[int]bool{}
	}
	// Runs stay far below 65536 reads per device (22 min at 20 ms), so
	// the sequence is taken as not wrapping.
	switch {
	case seq <= d.last && d.missing[seq]:
		delete(d.missing, seq)
		d.late++
		d.gaps--
		if len(d.firstLate) < 4 {
			d.firstLate = append(d.firstLate, fmt.Sprintf("%d after %d at %s", seq, d.last, at.Format("15:04:05.000")))
		}
		d.delivered++
		return
	case seq <= d.last:
		d.dups++
		return
	case seq > d.last+1:
		for q := d.last + 1; q < seq; q++ {
			d.missing[q] = true
		}
		d.gaps += uint64(seq - d.last - 1)
		if len(d.firstGaps) < 4 {
			d.firstGaps = append(d.firstGaps, fmt.Sprintf("%d..%d before %s", d.last+1, seq-1, at.Format("15:04:05.000")))
		}
	}
	d.delivered++
	d.last = seq
}

// scrapeDeviceErrors reads iotgw_device_poll_errors_total per device and kind.
func scrapeDeviceErrors(url string) (map[string]map[string]uint64, float64, error) {
	resp, err := http.Get(url)
	if err != nil {
		return nil, 0, err
	}
	defer resp.Body.Close()
	out := map[string]map[string]uint64{}
	depth := -1.0
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if v, ok := strings.CutPrefix(line, "iotgw_journal_depth_events "); ok {
			depth, _ = strconv.ParseFloat(v, 64)
			continue
		}
		rest, ok := strings.CutPrefix(line, "iotgw_device_poll_errors_total{")
		if !ok {
			continue
		}
		labels, val, ok := strings.Cut(rest, "} ")
		if !ok {
			continue
		}
		n, _ := strconv.ParseFloat(val, 64)
		var dev, kind string
		for _, kv := range strings.Split(labels, ",") {
			k, v, _ := strings.Cut(kv, "=")
			v = strings.Trim(v, `"`)
			switch k {
			case "device":
				dev = v
			case "kind":
				kind = v
			}
		}
		if out[dev] == nil {
			out[dev] = map[string]uint64{}
		}
		out[dev][kind] += uint64(n)
	}
	return out, depth, sc.Err()
}

// settle stops the simulators serving data (every read gets an exception,
// which the gateway counts as kind "exception", never "timeout"), waits
// for the journal to drain and the deliveries to stop, then prints the
// accounting: per device, served − delivered must be covered by its
// timeout and I/O poll errors.
func settle(sims []*sim.Sim, devicesPerSim int, st *stats, metricsURL string) error {
	for _, s := range sims {
		for u := 1; u <= devicesPerSim; u++ {
			s.SetFailing(uint8(u), true)
		}
	}
	deadline := time.Now().Add(60 * time.Second)
	var lastCount uint64
	stableSince := time.Now()
	for {
		time.Sleep(250 * time.Millisecond)
		st.mu.Lock()
		var n uint64
		for _, d := range st.acct.devs {
			n += d.delivered + d.dups
		}
		st.mu.Unlock()
		if n != lastCount {
			lastCount, stableSince = n, time.Now()
		}
		_, depth, err := scrapeDeviceErrors(metricsURL)
		if err == nil && depth == 0 && time.Since(stableSince) > 2*time.Second {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("account: journal not drained after 60 s (depth %v)", depth)
		}
	}
	errs, _, err := scrapeDeviceErrors(metricsURL)
	if err != nil {
		return fmt.Errorf("account: %w", err)
	}
	var served, delivered, dups, late, gaps, timeouts, ioErrs, others uint64
	var lateDevs []string
	var unexplained []string
	st.mu.Lock()
	defer st.mu.Unlock()
	for i, s := range sims {
		for u := 1; u <= devicesPerSim; u++ {
			name := fmt.Sprintf("sim%d-dev-%d", i, u)
			sv := s.Served(uint8(u))
			d := st.acct.devs[name]
			if d == nil {
				d = &devAccount{last: -1}
			}
			e := errs[name]
			served += sv
			delivered += d.delivered
			dups += d.dups
			late += d.late
			if d.late > 0 && len(lateDevs) < 5 {
				lateDevs = append(lateDevs, fmt.Sprintf("%s %v", name, d.firstLate))
			}
			gaps += d.gaps
			timeouts += e["timeout"]
			ioErrs += e["io"]
			for k, v := range e {
				if k != "timeout" && k != "io" && k != "exception" {
					others += v
				}
			}
			missing := int64(sv) - int64(d.delivered)
			if missing > int64(e["timeout"]+e["io"]) {
				unexplained = append(unexplained, fmt.Sprintf("%s: served %d, delivered %d, timeouts %d, io %d, gaps %v, never filled %v", name, sv, d.delivered, e["timeout"], e["io"], d.firstGaps, keys(d.missing)))
			}
		}
	}
	sort.Strings(unexplained)
	fmt.Printf("account      served %d reads, delivered %d polls (%d duplicates, %d out of order), missing %d (%d as gaps in the sequence)\n", served, delivered, dups, late, int64(served)-int64(delivered), gaps)
	for _, l := range lateDevs {
		fmt.Printf("             out of order: %s\n", l)
	}
	fmt.Printf("account      gateway poll errors: %d timeout, %d io, %d other (exceptions after the stop not counted)\n", timeouts, ioErrs, others)
	if len(unexplained) == 0 {
		fmt.Printf("account      every missing poll is a counted timeout or I/O error: no loss\n")
		return nil
	}
	fmt.Printf("account      %d devices with missing polls the poll errors do not explain:\n", len(unexplained))
	for i, u := range unexplained {
		if i == 20 {
			fmt.Printf("             ... %d more\n", len(unexplained)-20)
			break
		}
		fmt.Printf("             %s\n", u)
	}
	return nil
}

func keys(m map[int]bool) []int {
	out := make([]int, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Ints(out)
	if len(out) > 8 {
		out = out[:8]
	}
	return out
}
