package main

import (
	"os"
	"slices"
	"testing"
)

func TestSysmonEnviron(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   []string
		want []string // nil: no re-execution
	}{
		{"no GODEBUG", []string{"PATH=/bin"},
			[]string{"PATH=/bin", "GODEBUG=" + sysmonTrace, sysmonBefore + "=unset"}},
		{"empty GODEBUG", []string{"GODEBUG=", "PATH=/bin"},
			[]string{"PATH=/bin", "GODEBUG=" + sysmonTrace, sysmonBefore + "=set:"}},
		{"other settings kept", []string{"GODEBUG=madvdontneed=1,gctrace=1"},
			[]string{"GODEBUG=madvdontneed=1,gctrace=1," + sysmonTrace, sysmonBefore + "=set:madvdontneed=1,gctrace=1"}},
		{"operator's schedtrace=0", []string{"GODEBUG=gctrace=1, schedtrace=0"}, nil},
		{"already re-executed", []string{"GODEBUG=" + sysmonTrace, sysmonBefore + "=unset"}, nil},
		{"stray marker replaced", []string{sysmonBefore + "=set:x", "HOME=/root"},
			[]string{"HOME=/root", "GODEBUG=" + sysmonTrace, sysmonBefore + "=unset"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := sysmonEnviron(tc.in)
			if !slices.Equal(got, tc.want) {
				t.Errorf("sysmonEnviron(%q)\n got %q\nwant %q", tc.in, got, tc.want)
			}
		})
	}
}

func TestRestoreGODEBUG(t *testing.T) {
	t.Setenv("GODEBUG", "gctrace=0,"+sysmonTrace)
	t.Setenv(sysmonBefore, "set:gctrace=0")
	if !restoreGODEBUG() {
		t.Fatal("restoreGODEBUG() = false with the marker set")
	}
	if v, ok := os.LookupEnv("GODEBUG"); !ok || v != "gctrace=0" {
		t.Errorf("GODEBUG = %q, %v; want %q as before the re-execution", v, ok, "gctrace=0")
	}
	if _, ok := os.LookupEnv(sysmonBefore); ok {
		t.Errorf("%s still set after the restore", sysmonBefore)
	}
	if restoreGODEBUG() {
		t.Error("restoreGODEBUG() = true on a second call: the marker is gone")
	}

	t.Setenv("GODEBUG", sysmonTrace)
	t.Setenv(sysmonBefore, "unset")
	restoreGODEBUG()
	if v, ok := os.LookupEnv("GODEBUG"); ok {
		t.Errorf("GODEBUG = %q; want it unset, as before the re-execution", v)
	}
}
