package main

import (
	"os"
	"strings"
	"testing"
)

func TestParseDiskStat(t *testing.T) {
	// A virtio disk on kernel 6.18: 17 fields.
	s, err := parseDiskStat(" 1046100    93220 46381362   398770   601984   260419 95946024   463075        0   213900   947673   113279       12 69719888    26442   292918    59385\n")
	if err != nil {
		t.Fatal(err)
	}
	if s.writes != 601984 || s.sectors != 95946024 || !s.hasFlush || s.flushes != 292918 || s.flushMs != 59385 {
		t.Fatalf("parsed %+v", s)
	}
	// Before kernel 4.18 there were 11 fields and no flush counts.
	s, err = parseDiskStat("1 2 3 4 5 6 7 8 9 10 11")
	if err != nil || s.writes != 5 || s.sectors != 7 || s.hasFlush {
		t.Fatalf("11 fields: %+v, %v", s, err)
	}
	for _, bad := range []string{"", "1 2 3", "1 2 3 4 x 6 7 8 9 10 11"} {
		if _, err := parseDiskStat(bad); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
}

func TestDiskOfTheTempFolder(t *testing.T) {
	if _, err := os.Stat("/sys/dev/block"); err != nil {
		t.Skip("no /sys/dev/block:", err)
	}
	dir := t.TempDir()
	name, file, err := diskOf(dir)
	if err != nil {
		t.Skipf("the temp folder is on no block device here: %v", err)
	}
	s := newDiskSampler(dir, os.Getpid())
	if s == nil || s.name != name || s.file != file {
		t.Fatalf("sampler %+v for %s (%s)", s, name, file)
	}
	// 1 MB this process writes shows in its own figure.
	if err := os.WriteFile(dir+"/f", make([]byte, 1<<20), 0o600); err != nil {
		t.Fatal(err)
	}
	if w, err := writeBytes(os.Getpid()); err != nil || w < s.pidStart+1<<20 {
		t.Fatalf("write_bytes %d after 1 MB from %d: %v", w, s.pidStart, err)
	}
	if line := s.line(); !strings.Contains(line, "the gateway wrote") || !strings.Contains(line, name) {
		t.Fatalf("line %q", line)
	}
}
