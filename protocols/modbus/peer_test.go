package modbus

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/industryos/gateway/protocols/kit/testpeer"
)

// Real peers for the wire tests: Debian's python3-pymodbus (run with the
// system interpreter, whose dist-packages hold it) and socat for pty pairs.

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
	testpeer.NeedPymodbus(t)
	cmd := exec.Command(testpeer.SystemPython, "testdata/pyslave.py", kind, framing, where, units)
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
