package testpeer

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

// script is the path of testdata/name beside this file.
func script(name string) string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "testdata", name)
}

// PySlave is testdata/pyslave.py, a pymodbus slave: unit u serves holding
// register i = u*1000+i, input register i = u*1000+500+i, coil i = i even.
// Commands go to its stdin; Do returns the answer line.
type PySlave struct {
	// Port is the bound port (tcp/udp) or the device path.
	Port  string
	t     testing.TB
	in    io.WriteCloser
	lines chan string
}

// StartPySlave runs the slave: kind serial|tcp|udp, framing rtu|socket,
// where a device path or port ("0" for a free one), units "1,2". It
// returns once the slave is ready and stops it when the test ends.
// PYSLAVE_DEBUG is passed on.
func StartPySlave(t testing.TB, kind, framing, where, units string) *PySlave {
	t.Helper()
	NeedPymodbus(t)
	cmd := exec.Command(SystemPython, script("pyslave.py"), kind, framing, where, units)
	cmd.Env = append(os.Environ(), "PYSLAVE_DEBUG="+os.Getenv("PYSLAVE_DEBUG"))
	cmd.Stderr = &logWriter{t: t, prefix: "pyslave: "}
	in, out := startWithPipes(t, cmd)
	s := &PySlave{t: t, in: in, lines: make(chan string, 16)}
	t.Cleanup(func() { _ = in.Close(); _ = cmd.Process.Kill(); _ = cmd.Wait() })
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			s.lines <- sc.Text()
		}
		close(s.lines)
	}()
	line := s.next()
	if !strings.HasPrefix(line, "ready") {
		t.Fatalf("pyslave: want ready, got %q", line)
	}
	s.Port = strings.TrimSpace(strings.TrimPrefix(line, "ready"))
	return s
}

func (s *PySlave) next() string {
	s.t.Helper()
	select {
	case l, ok := <-s.lines:
		if !ok {
			s.t.Fatal("pyslave exited")
		}
		return l
	case <-time.After(MinTimeout):
		s.t.Fatalf("pyslave: no answer within %v", MinTimeout)
	}
	return ""
}

// Do sends one command and returns its answer line.
func (s *PySlave) Do(format string, args ...any) string {
	s.t.Helper()
	if _, err := fmt.Fprintf(s.in, format+"\n", args...); err != nil {
		s.t.Fatal(err)
	}
	return s.next()
}

// PyMaster runs testdata/pymaster.py, a pymodbus master, against
// 127.0.0.1:port (unit 1) and returns its output lines, one per op.
func PyMaster(t testing.TB, port int, ops ...string) []string {
	t.Helper()
	return pyMaster(t, fmt.Sprint(port), ops)
}

// PySerialMaster is PyMaster as an RTU master on the serial line at path
// (baud 0: 19200). The op "unit:<u>:" sends later requests to unit u.
func PySerialMaster(t testing.TB, path string, baud int, ops ...string) []string {
	t.Helper()
	if baud > 0 {
		path = fmt.Sprintf("%s@%d", path, baud)
	}
	return pyMaster(t, path, ops)
}

func pyMaster(t testing.TB, where string, ops []string) []string {
	t.Helper()
	NeedPymodbus(t)
	out, err := exec.Command(SystemPython, append([]string{script("pymaster.py"), where}, ops...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("pymaster %s %v: %v: %s", where, ops, err, out)
	}
	return strings.Split(strings.TrimSpace(string(out)), "\n")
}

// logWriter logs what a peer writes, e.g. its stderr.
type logWriter struct {
	t      testing.TB
	prefix string
}

func (w *logWriter) Write(p []byte) (int, error) {
	w.t.Log(w.prefix + strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// startWithPipes starts a peer process that the test drives through its
// stdin and reads lines from on its stdout.
func startWithPipes(t testing.TB, cmd *exec.Cmd) (stdin io.WriteCloser, stdout io.ReadCloser) {
	t.Helper()
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
	return in, out
}
