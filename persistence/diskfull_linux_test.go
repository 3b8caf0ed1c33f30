package persistence

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

const (
	tmpfsChildEnv  = "PERSISTENCE_TMPFS_CHILD_DIR"
	tmpfsVerifyEnv = "PERSISTENCE_TMPFS_VERIFY_LAST"
	// tmpfsSize and tmpfsReserve: what badger may write after the last accepted event (the
	// rest of a write-ahead log, its table, compactions of up to four level-0 tables, which
	// keep their inputs until done) needs about 20 MB of room.
	tmpfsSize    = "48m"
	tmpfsReserve = 24 << 20
)

// TestBadgerTmpfsFullChild fills, or reopens and reads back, the journal on the tmpfs of
// TestBadgerTmpfsFull; on its own it does nothing. Badger dies of SIGBUS when a write to its
// mmap'ed files finds the filesystem full, so both run in a child process.
func TestBadgerTmpfsFullChild(t *testing.T) {
	dir := os.Getenv(tmpfsChildEnv)
	if dir == "" {
		t.Skip("run by TestBadgerTmpfsFull")
	}
	opts := Options{Limits: Limits{MinFreeBytes: tmpfsReserve}, diskEvery: 1}
	if v := os.Getenv(tmpfsVerifyEnv); v != "" {
		last, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			t.Fatal(err)
		}
		j := openBadger(t, dir, opts)
		if j.LastSeq() != last || j.Cursor() != 0 {
			t.Fatalf("after reopen LastSeq %d Cursor %d, want %d 0", j.LastSeq(), j.Cursor(), last)
		}
		readBackAll(t, j, last, 200)
		mustAck(t, j, last) // acks write too, and go on below the reserve
		mustClose(t, j)
		fmt.Fprintf(os.Stdout, "\nverified %d\n", last)
		return
	}
	j, err := OpenBadger(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	refused := 0
	for i := 0; refused < 20 && i < 100_000; i++ {
		_, _, err := j.Append(batch(j.LastSeq()+1, 100, 200))
		if errors.Is(err, ErrDiskFull) {
			// Compaction may free some space again in the background: keep going.
			refused++
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	s := j.Stats()
	fmt.Fprintf(os.Stdout, "\naccepted %d refused %d\n", j.LastSeq(), s.DroppedByCause["disk_full"])
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
}

// qemuFor names the qemu-user emulator of an architecture, for a child process of a test
// binary that itself runs under emulation.
var qemuFor = map[string]string{"arm": "qemu-arm", "arm64": "qemu-aarch64", "386": "qemu-i386", "riscv64": "qemu-riscv64"}

func runTmpfsChild(t *testing.T, dir string, env ...string) string {
	t.Helper()
	args := []string{"-test.run=^TestBadgerTmpfsFullChild$", "-test.count=1", "-test.v"}
	run := func(name string, args ...string) ([]byte, error) {
		cmd := exec.Command(name, args...)
		cmd.Env = append(os.Environ(), append(env, tmpfsChildEnv+"="+dir)...)
		return cmd.CombinedOutput()
	}
	out, err := run(os.Args[0], args...)
	if errors.Is(err, syscall.ENOEXEC) {
		// Under `go test -exec qemu-arm` (CI's 32-bit run) the binary is foreign to the
		// kernel: run the child through the same emulator, so 32-bit Badger meets a full
		// filesystem too.
		emu, lerr := exec.LookPath(qemuFor[runtime.GOARCH])
		if lerr != nil {
			t.Skipf("cannot re-run the test binary as the child: %v", err)
		}
		out, err = run(emu, append([]string{os.Args[0]}, args...)...)
	}
	if err != nil || strings.Contains(string(out), "panic") || strings.Contains(string(out), "fatal error") {
		t.Fatalf("child: %v\n%s", err, out)
	}
	return string(out)
}

// TestBadgerTmpfsFull fills a real small filesystem: the journal refuses before the disk is
// full, the process ends cleanly, and every accepted record reads back in order after a
// reopen. It needs root to mount the tmpfs.
func TestBadgerTmpfsFull(t *testing.T) {
	dir := t.TempDir()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size="+tmpfsSize); err != nil {
		t.Skipf("cannot mount a tmpfs: %v", err)
	}
	t.Cleanup(func() { _ = syscall.Unmount(dir, 0) })

	out := runTmpfsChild(t, dir)
	var last, refused uint64
	i := strings.LastIndex(out, "accepted ")
	if i < 0 {
		t.Fatalf("child output %q", out)
	}
	if _, err := fmt.Sscanf(out[i:], "accepted %d refused %d", &last, &refused); err != nil {
		t.Fatalf("child output %q: %v", out, err)
	}
	if last == 0 || refused != 20*100 {
		t.Fatalf("child accepted %d, refused %d", last, refused)
	}
	t.Logf("accepted %d records of 200 B, then refused", last)

	out = runTmpfsChild(t, dir, tmpfsVerifyEnv+"="+strconv.FormatUint(last, 10))
	if !strings.Contains(out, fmt.Sprintf("verified %d", last)) {
		t.Fatalf("verifying child output %q", out)
	}
}
