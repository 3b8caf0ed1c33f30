//go:build linux

package persistence

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"testing"
)

const rssDirEnv = "PERSISTENCE_RSS_CHILD_DIR"

// procStatusKB reads a "VmRSS:   1234 kB" style field of /proc/self/status.
func procStatusKB(field string) int64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return -1
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), field+":"); ok {
			n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return n
		}
	}
	return -1
}

type rssReport struct {
	StartKB   int64 `json:"start_kb"`   // before OpenBadger
	OpenKB    int64 `json:"open_kb"`    // right after OpenBadger
	StreamKB  int64 `json:"stream_kb"`  // after 100k records appended and acked batch by batch
	BacklogKB int64 `json:"backlog_kb"` // after 100k more appended with no ack (uplink down)
	DrainedKB int64 `json:"drained_kb"` // after reading and acking that backlog
	IdleKB    int64 `json:"idle_kb"`    // after runtime.GC + debug.FreeOSMemory
	PeakKB    int64 `json:"peak_kb"`    // VmHWM
	HeapKB    int64 `json:"heap_kb"`    // Go HeapInuse at the end
}

// TestBadgerRSSChild measures in a fresh process so nothing else the test binary did inflates
// the figures; BenchmarkBadgerRSS runs it.
func TestBadgerRSSChild(t *testing.T) {
	dir := os.Getenv(rssDirEnv)
	if dir == "" {
		t.Skip("run by BenchmarkBadgerRSS")
	}
	var r rssReport
	r.StartKB = procStatusKB("VmRSS")
	j, err := OpenBadger(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	r.OpenKB = procStatusKB("VmRSS")
	data := batch(1, benchBatch, benchRecord)
	for range 1000 {
		_, last, err := j.Append(data)
		if err == nil {
			err = j.Ack(last)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	r.StreamKB = procStatusKB("VmRSS")
	for range 1000 {
		if _, _, err := j.Append(data); err != nil {
			t.Fatal(err)
		}
	}
	r.BacklogKB = procStatusKB("VmRSS")
	for {
		recs, err := j.Read(j.Cursor(), 1000, 256<<10)
		if err != nil {
			t.Fatal(err)
		}
		if len(recs) == 0 {
			break
		}
		if err := j.Ack(recs[len(recs)-1].Seq); err != nil {
			t.Fatal(err)
		}
	}
	r.DrainedKB = procStatusKB("VmRSS")
	runtime.GC()
	debug.FreeOSMemory()
	r.IdleKB = procStatusKB("VmRSS")
	r.PeakKB = procStatusKB("VmHWM")
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	r.HeapKB = int64(ms.HeapInuse >> 10)
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	line, _ := json.Marshal(r)
	fmt.Printf("\nRSS %s\n", line)
}

// BenchmarkBadgerRSS reports the Badger journal's resident memory (MB) after open and after
// pushing 100k x 200 B records through it, each run in a fresh child process. The ns/op is
// the child's whole run.
func BenchmarkBadgerRSS(b *testing.B) {
	for _, tc := range []struct{ name, memLimit string }{
		{"default", ""},
		{"GOMEMLIMIT=32MiB", "32MiB"},
	} {
		b.Run(tc.name, func(b *testing.B) {
			var r rssReport
			for range b.N {
				cmd := exec.Command(os.Args[0], "-test.run=^TestBadgerRSSChild$", "-test.count=1", "-test.v")
				cmd.Env = append(os.Environ(), rssDirEnv+"="+b.TempDir(), "GOMEMLIMIT="+tc.memLimit)
				out, err := cmd.CombinedOutput()
				if err != nil {
					b.Fatalf("child: %v\n%s", err, out)
				}
				i := bytes.LastIndex(out, []byte("RSS {"))
				if i < 0 {
					b.Fatalf("child output: %s", out)
				}
				line, _, _ := bytes.Cut(out[i+len("RSS "):], []byte("\n"))
				if err := json.Unmarshal(line, &r); err != nil {
					b.Fatalf("child report %q: %v", line, err)
				}
			}
			mb := func(kb int64) float64 { return float64(kb) / 1024 }
			b.ReportMetric(mb(r.OpenKB), "MB-rss-open")
			b.ReportMetric(mb(r.StreamKB), "MB-rss-100k-acked")
			b.ReportMetric(mb(r.BacklogKB), "MB-rss-100k-backlog")
			b.ReportMetric(mb(r.IdleKB), "MB-rss-idle")
			b.ReportMetric(mb(r.PeakKB), "MB-rss-peak")
			b.Logf("RSS MB: start %.1f, open %.1f, 100k streamed+acked %.1f, +100k backlog %.1f, drained %.1f, after GC+FreeOSMemory %.1f, peak %.1f; Go heap in use %.1f",
				mb(r.StartKB), mb(r.OpenKB), mb(r.StreamKB), mb(r.BacklogKB), mb(r.DrainedKB), mb(r.IdleKB), mb(r.PeakKB), mb(r.HeapKB))
		})
	}
}
