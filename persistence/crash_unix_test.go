//go:build unix

package persistence

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
)

const crashDirEnv = "PERSISTENCE_CRASH_CHILD_DIR"

// TestBadgerCrashChild is the victim process of TestBadgerCrash; on its own it does nothing.
func TestBadgerCrashChild(t *testing.T) {
	dir := os.Getenv(crashDirEnv)
	if dir == "" {
		t.Skip("run by TestBadgerCrash")
	}
	j, err := OpenBadger(dir, Options{}) // SyncWrites=false: the process-crash guarantee
	if err != nil {
		t.Fatal(err)
	}
	for range 50 {
		if _, _, err := j.Append(batch(j.LastSeq()+1, 100, 200)); err != nil {
			t.Fatal(err)
		}
	}
	if err := j.Ack(1234); err != nil {
		t.Fatal(err)
	}
	// A deferred ack reaches the disk with the next Append; the last one never does.
	if err := j.AckDeferred(2000); err != nil {
		t.Fatal(err)
	}
	if _, _, err := j.Append(batch(j.LastSeq()+1, 100, 200)); err != nil {
		t.Fatal(err)
	}
	durable := j.Cursor()
	if err := j.AckDeferred(3000); err != nil {
		t.Fatal(err)
	}
	// Report what was committed, then die without Close: no memtable flush, no cleanup.
	fmt.Fprintf(os.Stdout, "\ncommitted %d %d\n", j.LastSeq(), durable)
	_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
	select {}
}

func TestBadgerCrash(t *testing.T) {
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestBadgerCrashChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), crashDirEnv+"="+dir)
	out, err := cmd.Output()
	if errors.Is(err, syscall.ENOEXEC) {
		// Under user-mode emulation (qemu-arm via go test -exec, no binfmt handler) the
		// test binary cannot start itself again.
		t.Skipf("cannot re-run the test binary as the child: %v", err)
	}
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		t.Fatalf("child was not killed: err=%v output=%s", err, out)
	}
	if ws, ok := ee.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("child ended with %v, want SIGKILL; output=%s stderr=%s", err, out, ee.Stderr)
	}
	var last, cursor uint64
	i := strings.LastIndex(string(out), "committed ")
	if i < 0 {
		t.Fatalf("child output %q", out)
	}
	if _, err := fmt.Sscanf(string(out[i:]), "committed %d %d", &last, &cursor); err != nil {
		t.Fatalf("child output %q: %v", out, err)
	}
	// The ack of 2000 was folded into the last Append; the one of 3000 was still pending in
	// memory, so 2001..3000 come back (at-least-once: sent again, never lost).
	if last != 5100 || cursor != 2000 {
		t.Fatalf("child committed last=%d cursor=%d", last, cursor)
	}

	j := openBadger(t, dir, Options{})
	if j.LastSeq() != last || j.Cursor() != cursor {
		t.Fatalf("after crash LastSeq %d Cursor %d, want %d %d", j.LastSeq(), j.Cursor(), last, cursor)
	}
	recs := mustRead(t, j, 0, 0, 0)
	wantSeqs(t, recs, cursor+1, last)
	checkData(t, recs, 200)
	if s := j.Stats(); s.Depth != last-cursor || s.DepthBytes != (last-cursor)*200 {
		t.Fatalf("stats after crash %+v", s)
	}
	if f, _ := mustAppend(t, j, batch(last+1, 1, 200)); f != last+1 {
		t.Fatalf("seq after crash %d, want %d", f, last+1)
	}
}
