package modbus

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Real peers for the wire tests: Debian's python3-pymodbus (run with the
// system interpreter, whose dist-packages hold it) and socat for pty pairs.

const systemPython = "/usr/bin/python3"

// needPeer skips when a peer is missing, unless IOTGW_REQUIRE_PEERS=1 (CI),
// where a missing peer is a failure.
func needPeer(t testing.TB, what string, check func() error) {
	t.Helper()
	if err := check(); err != nil {
		if os.Getenv("IOTGW_REQUIRE_PEERS") == "1" {
			t.Fatalf("peer %s missing (IOTGW_REQUIRE_PEERS=1): %v", what, err)
		}
		t.Skipf("peer %s missing: %v", what, err)
	}
}

func needPymodbus(t testing.TB) {
	needPeer(t, "python3-pymodbus", func() error {
		out, err := exec.Command(systemPython, "-c", "import pymodbus.server.async_io").CombinedOutput()
		if err != nil {
			return fmt.Errorf("%s: %v: %s", systemPython, err, out)
		}
		return nil
	})
}

func needSocat(t testing.TB) {
	needPeer(t, "socat", func() error { _, err := exec.LookPath("socat"); return err })
}

// ptyPair starts socat linking two pseudo-terminals and returns their paths
// once socat reports it is transferring data.
func ptyPair(t testing.TB) (string, string) {
	t.Helper()
	needSocat(t)
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a"), filepath.Join(dir, "b")
	cmd := exec.Command("socat", "-d", "-d", "pty,raw,echo=0,link="+a, "pty,raw,echo=0,link="+b)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	ready := make(chan error, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		var seen []string
		for sc.Scan() {
			seen = append(seen, sc.Text())
			if strings.Contains(sc.Text(), "starting data transfer loop") {
				ready <- nil
				_, _ = io.Copy(io.Discard, stderr)
				return
			}
		}
		ready <- fmt.Errorf("socat ended before linking: %s", strings.Join(seen, "\n"))
	}()
	select {
	case err := <-ready:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("socat did not link the ptys within 10s")
	}
	return a, b
}

// pySlave is testdata/pyslave.py: unit u serves holding register i =
// u*1000+i, input register i = u*1000+500+i, coil i = i even.
type pySlave struct {
	t     testing.TB
	Port  string // the bound port (tcp/udp) or the device path
	in    io.WriteCloser
	lines chan string
}

func startPySlave(t testing.TB, kind, framing, where, units string) *pySlave {
	t.Helper()
	needPymodbus(t)
	cmd := exec.Command(systemPython, "testdata/pyslave.py", kind, framing, where, units)
	cmd.Env = append(os.Environ(), "PYSLAVE_DEBUG="+os.Getenv("PYSLAVE_DEBUG"))
	cmd.Stderr = &testWriter{t: t, prefix: "pyslave: "}
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s := &pySlave{t: t, in: in, lines: make(chan string, 16)}
	t.Cleanup(func() { _ = in.Close(); _ = cmd.Process.Kill(); _ = cmd.Wait() })
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			s.lines <- sc.Text()
		}
		close(s.lines)
	}()
	line := s.next()
	if !strings.HasPrefix(line, "ready ") {
		t.Fatalf("pyslave: want ready, got %q", line)
	}
	s.Port = strings.TrimPrefix(line, "ready ")
	return s
}

func (s *pySlave) next() string {
	s.t.Helper()
	select {
	case l, ok := <-s.lines:
		if !ok {
			s.t.Fatal("pyslave exited")
		}
		return l
	case <-time.After(15 * time.Second):
		s.t.Fatal("pyslave: no answer within 15s")
	}
	return ""
}

// Do sends one command and returns its answer line.
func (s *pySlave) Do(format string, args ...any) string {
	s.t.Helper()
	if _, err := fmt.Fprintf(s.in, format+"\n", args...); err != nil {
		s.t.Fatal(err)
	}
	return s.next()
}

type testWriter struct {
	t      testing.TB
	prefix string
}

func (w *testWriter) Write(p []byte) (int, error) {
	w.t.Log(w.prefix + strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
