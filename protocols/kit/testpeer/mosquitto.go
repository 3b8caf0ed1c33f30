package testpeer

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Mosquitto is a mosquitto broker process with a persistent store in the
// test's temp dir, so Restart keeps sessions and queued QoS 1 messages.
type Mosquitto struct {
	t       testing.TB
	bin     string
	dir     string
	conf    string
	logFile string
	port    int
	tlsPort int

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{}
}

type mosquittoOptions struct {
	certFile, keyFile string
	extra             []string
}

// MosquittoOption configures StartMosquitto.
type MosquittoOption func(*mosquittoOptions)

// MosquittoTLS adds a TLS listener (see TLSAddr) with the given server
// certificate and key files, e.g. from GenerateTLS.
func MosquittoTLS(certFile, keyFile string) MosquittoOption {
	return func(o *mosquittoOptions) { o.certFile, o.keyFile = certFile, keyFile }
}

// MosquittoConfig appends raw lines to the generated mosquitto.conf.
func MosquittoConfig(lines ...string) MosquittoOption {
	return func(o *mosquittoOptions) { o.extra = append(o.extra, lines...) }
}

func findMosquitto() string {
	if p, err := exec.LookPath("mosquitto"); err == nil {
		return p
	}
	for _, p := range []string{"/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto", "/opt/homebrew/sbin/mosquitto"} {
		if st, err := os.Stat(p); err == nil && !st.IsDir() {
			return p
		}
	}
	return ""
}

// StartMosquitto starts mosquitto on a free 127.0.0.1 port with anonymous
// access and persistence, and stops it when the test ends. The test is
// skipped when mosquitto is not installed.
func StartMosquitto(t testing.TB, opts ...MosquittoOption) *Mosquitto {
	t.Helper()
	bin := findMosquitto()
	if bin == "" {
		t.Skip("mosquitto not installed: apt-get install mosquitto")
	}
	var o mosquittoOptions
	for _, opt := range opts {
		opt(&o)
	}
	dir := t.TempDir()
	m := &Mosquitto{t: t, bin: bin, dir: dir, conf: filepath.Join(dir, "mosquitto.conf"),
		logFile: filepath.Join(dir, "mosquitto.log"), port: FreePort(t)}
	lines := []string{
		"per_listener_settings false",
		"allow_anonymous true",
		"persistence true",
		"persistence_location " + dir + string(filepath.Separator),
		// Saved on SIGTERM anyway; the periodic save narrows what Kill loses.
		"autosave_interval 1",
		"max_inflight_messages 1000",
		"max_queued_messages 1000000",
		"log_dest file " + m.logFile,
		"log_type error",
		"log_type warning",
		"log_type notice",
		"log_type information",
		"listener " + strconv.Itoa(m.port) + " 127.0.0.1",
	}
	if os.Geteuid() == 0 {
		// As root mosquitto would switch to the mosquitto user, which cannot
		// write the test's private temp dir.
		lines = append(lines, "user root")
	}
	if o.certFile != "" {
		m.tlsPort = FreePort(t)
		lines = append(lines,
			"listener "+strconv.Itoa(m.tlsPort)+" 127.0.0.1",
			"certfile "+o.certFile,
			"keyfile "+o.keyFile,
		)
	}
	lines = append(lines, o.extra...)
	if err := os.WriteFile(m.conf, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		t.Fatalf("testpeer: write mosquitto.conf: %v", err)
	}
	t.Cleanup(func() {
		m.Stop()
		if t.Failed() {
			t.Logf("mosquitto log:\n%s", m.Log())
		}
	})
	m.start()
	return m
}

func (m *Mosquitto) start() {
	m.t.Helper()
	m.mu.Lock()
	if m.cmd != nil {
		m.mu.Unlock()
		return
	}
	cmd := exec.Command(m.bin, "-c", m.conf)
	out, err := os.OpenFile(filepath.Join(m.dir, "mosquitto.out"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		m.mu.Unlock()
		m.t.Fatalf("testpeer: %v", err)
	}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		out.Close()
		m.mu.Unlock()
		m.t.Fatalf("testpeer: start mosquitto: %v", err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		out.Close()
		close(exited)
	}()
	m.cmd, m.exited = cmd, exited
	m.mu.Unlock()

	alive := func() bool {
		select {
		case <-exited:
			return false
		default:
			return true
		}
	}
	for _, p := range []int{m.port, m.tlsPort} {
		if p == 0 {
			continue
		}
		if err := waitListening(net.JoinHostPort("127.0.0.1", strconv.Itoa(p)), 10*time.Second, alive); err != nil {
			out, _ := os.ReadFile(filepath.Join(m.dir, "mosquitto.out"))
			m.t.Fatalf("testpeer: mosquitto: %v\n%s\n%s", err, out, m.Log())
		}
	}
}

func (m *Mosquitto) signal(sig syscall.Signal) {
	m.mu.Lock()
	cmd, exited := m.cmd, m.exited
	m.cmd = nil
	m.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(sig)
	select {
	case <-exited:
	case <-time.After(10 * time.Second):
		_ = cmd.Process.Kill()
		<-exited
	}
}

// Stop terminates the broker gracefully (it saves its store) and waits for
// it to exit. Stopping a stopped broker does nothing.
func (m *Mosquitto) Stop() { m.signal(syscall.SIGTERM) }

// Kill ends the broker with SIGKILL: sessions and messages not yet
// autosaved (every second) are lost, as in a crash.
func (m *Mosquitto) Kill() { m.signal(syscall.SIGKILL) }

// Restart stops the broker if it runs and starts it again on the same
// port(s) with the same store.
func (m *Mosquitto) Restart() {
	m.t.Helper()
	m.Stop()
	m.start()
}

// Running reports whether the broker process is up.
func (m *Mosquitto) Running() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.cmd != nil
}

// Addr is the plain listener's host:port.
func (m *Mosquitto) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(m.port)) }

// Port is the plain listener's port.
func (m *Mosquitto) Port() int { return m.port }

// TLSAddr is the TLS listener's host:port ("" without MosquittoTLS).
func (m *Mosquitto) TLSAddr() string {
	if m.tlsPort == 0 {
		return ""
	}
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(m.tlsPort))
}

// TLSPort is the TLS listener's port (0 without MosquittoTLS).
func (m *Mosquitto) TLSPort() int { return m.tlsPort }

// Log returns the broker's log so far.
func (m *Mosquitto) Log() string {
	b, err := os.ReadFile(m.logFile)
	if err != nil {
		return fmt.Sprintf("(no log: %v)", err)
	}
	return string(b)
}
