package observe

import (
	"os"
	"runtime"
	"testing"
	"time"
)

func TestHostFiguresOnLinux(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("reads /proc")
	}
	if m := ReadMemory(); m.Total == 0 || m.Available > m.Total {
		t.Fatalf("memory %+v", m)
	}
	if RSS() == 0 || PeakRSS(0) == 0 || PeakRSS(os.Getpid()) == 0 {
		t.Fatalf("rss %d, peak %d", RSS(), PeakRSS(0))
	}
	if free, total, ok := DiskSpace(t.TempDir()); !ok || total == 0 || free > total {
		t.Fatalf("disk %d/%d %v", free, total, ok)
	}
	s := NewCPUSampler()
	for end := time.Now().Add(50 * time.Millisecond); time.Now().Before(end); {
	}
	if u := s.Sample(); u.Total < 0 || u.Total > 100 || u.Process < 0 {
		t.Fatalf("usage %+v", u)
	}
	if ProcessCPU(0) <= 0 || ProcessCPU(os.Getpid()) <= 0 {
		t.Fatal("no CPU time for this process")
	}
}
