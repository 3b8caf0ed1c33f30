// Package interop runs a real OPC UA server (node-opcua, server.js beside this
// file) for the OPC-UA connector's interop tests.
//
//	srv := interop.Start(t, interop.Options{})
//	c, _ := opcua.NewClient(srv.URL, ...)
//	temp := srv.NodeID("Boiler1.Temperature") // "ns=2;s=Boiler1.Temperature"
//	srv.Restart()                              // same port, same server certificate
//
// node-opcua is installed with `npm ci` in this folder (.ci/run does it). When
// node_modules is missing Start skips the test, or fails it when
// IOTGW_REQUIRE_NODE_OPCUA=1 (set by CI), so CI cannot go green without the
// interop tests having run.
package interop

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/industryos/gateway/protocols/kit/testpeer"
)

// RequireEnv names the environment variable that turns a missing node-opcua
// install from a skip into a test failure ("1" or "true").
const RequireEnv = "IOTGW_REQUIRE_NODE_OPCUA"

// DirEnv overrides the folder holding server.js and node_modules (for a
// binary built with -trimpath, whose source paths are not real).
const DirEnv = "IOTGW_NODE_OPCUA_DIR"

// VerboseEnv, when "1", logs the server's output at the end of every test,
// not only of failed ones.
const VerboseEnv = "IOTGW_OPCUA_VERBOSE"

// Defaults of the server's address space and login.
const (
	NamespaceURI      = "urn:industryos:interop"
	ApplicationURI    = "urn:industryos:interop:server"
	DefaultUsername   = "user"
	DefaultPassword   = "pass"
	DefaultStartWait  = 60 * time.Second
	SetpointDefault   = 50.0
	PressureValue     = 1.5
	StatusValue       = "RUNNING"
	TemperaturePeriod = 100 * time.Millisecond
)

// Options configure Start. The zero value is a server on a free port of
// 127.0.0.1 with user/pass login and a PKI folder under t.TempDir().
type Options struct {
	// Username and Password are the one accepted username login
	// (DefaultUsername / DefaultPassword when empty).
	Username, Password string
	// Port to listen on; 0 picks a free one.
	Port int
	// PKIDir is node-opcua's PKI root (own certificate, trusted, rejected);
	// empty means a new folder under t.TempDir().
	PKIDir string
	// LegacyPolicies also offers Basic128Rsa15 and Basic256 (the upstream
	// connector's default policy is Basic128Rsa15). node then runs with
	// --security-revert=CVE-2023-46809, which re-enables the RSA PKCS#1 v1.5
	// decryption those policies need.
	LegacyPolicies bool
	// StartTimeout bounds the wait for the READY line (DefaultStartWait when 0).
	StartTimeout time.Duration
}

// Server is a running node-opcua server. URL, Port and the other fields stay
// the same across Restart.
type Server struct {
	// URL is the endpoint URL, "opc.tcp://127.0.0.1:<port>".
	URL  string
	Port int
	// NamespaceIndex is the index of NamespaceURI on the server (2).
	NamespaceIndex int
	// ServerCertFile is the server's certificate (PEM), generated on first start.
	ServerCertFile     string
	PKIDir             string
	Username, Password string

	tb      testing.TB
	dir     string
	node    string
	timeout time.Duration
	legacy  bool

	mu     sync.Mutex
	proc   *process
	output []string // last lines of every run's output, for failure reports
}

// ready is the JSON after "READY " on server.js's stdout.
type ready struct {
	URL               string `json:"url"`
	NamespaceURI      string `json:"namespaceUri"`
	NamespaceIndex    int    `json:"namespaceIndex"`
	ServerCertificate string `json:"serverCertificate"`
	PID               int    `json:"pid"`
	NodeVersion       string `json:"nodeVersion"`
}

type process struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	done  chan struct{} // closed when the output reader saw EOF and Wait returned
	err   error         // Wait's result, valid after done
}

// ErrNotInstalled is wrapped by Available's error when node_modules (the
// output of `npm ci` in Dir) is missing.
var ErrNotInstalled = errors.New("node-opcua is not installed")

// Dir returns the folder holding server.js and node_modules.
func Dir() string {
	if d := os.Getenv(DirEnv); d != "" {
		return d
	}
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		return ""
	}
	return filepath.Dir(file)
}

// Available reports whether node and node-opcua are installed, and if not, why.
func Available() (node string, err error) {
	dir := Dir()
	if dir == "" {
		return "", errors.New("cannot locate the interop folder; set " + DirEnv)
	}
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "node-opcua", "package.json")); err != nil {
		return "", fmt.Errorf("%w in %s (run: cd %s && npm ci --no-audit --no-fund)", ErrNotInstalled, dir, dir)
	}
	for _, name := range []string{"node", "nodejs"} {
		if p, err := exec.LookPath(name); err == nil {
			return p, nil
		}
	}
	return "", errors.New("node-opcua is installed but no `node` binary is on PATH")
}

func required() bool {
	v := strings.ToLower(strings.TrimSpace(os.Getenv(RequireEnv)))
	return v == "1" || v == "true" || v == "yes"
}

// Start starts server.js and waits for its READY line. The server is stopped
// when the test ends. A missing node_modules skips the test (fails it with
// IOTGW_REQUIRE_NODE_OPCUA=1); any other problem fails it.
func Start(tb testing.TB, opts Options) *Server {
	tb.Helper()
	node, err := Available()
	if err != nil {
		if errors.Is(err, ErrNotInstalled) && !required() {
			tb.Skipf("interop: %v; set %s=1 to make this a failure", err, RequireEnv)
		}
		tb.Fatalf("interop: %v (%s=%q)", err, RequireEnv, os.Getenv(RequireEnv))
	}
	s := &Server{
		tb:       tb,
		dir:      Dir(),
		node:     node,
		timeout:  opts.StartTimeout,
		Username: opts.Username,
		Password: opts.Password,
		PKIDir:   opts.PKIDir,
		Port:     opts.Port,
		legacy:   opts.LegacyPolicies,
	}
	if s.timeout <= 0 {
		s.timeout = DefaultStartWait
	}
	if s.Username == "" {
		s.Username = DefaultUsername
	}
	if s.Password == "" {
		s.Password = DefaultPassword
	}
	if s.PKIDir == "" {
		s.PKIDir = filepath.Join(tb.TempDir(), "pki")
	}
	tb.Cleanup(func() {
		s.Stop()
		if tb.Failed() || os.Getenv(VerboseEnv) == "1" {
			s.mu.Lock()
			out := strings.Join(s.output, "\n")
			s.mu.Unlock()
			tb.Logf("interop: node-opcua server output:\n%s", out)
		}
	})

	// A free port can be taken by someone else between our probe and node's
	// listen: when we pick the port, try up to three.
	attempts := 1
	if s.Port == 0 {
		attempts = 3
	}
	for i := 0; ; i++ {
		port := s.Port
		if port == 0 {
			port = testpeer.FreePort(tb)
		}
		err := s.start(port)
		if err == nil {
			return s
		}
		if i+1 >= attempts || !strings.Contains(err.Error(), "EADDRINUSE") {
			tb.Fatalf("interop: %v", err)
		}
	}
}

// NodeID returns the node id of one of the server's nodes by its string
// identifier, e.g. NodeID("Boiler1.Temperature") = "ns=2;s=Boiler1.Temperature".
func (s *Server) NodeID(name string) string {
	return "ns=" + strconv.Itoa(s.NamespaceIndex) + ";s=" + name
}

// Restart stops the server (if running) and starts it again on the same port
// with the same PKI folder, so clients see the same endpoint and certificate.
// Sessions and subscriptions do not survive it; values start from their
// defaults again. Call it from the test's goroutine (it fails the test).
func (s *Server) Restart() {
	s.tb.Helper()
	s.Stop()
	if err := s.start(s.Port); err != nil {
		s.tb.Fatalf("interop: restart: %v", err)
	}
}

// Stop stops the server (SIGTERM, then SIGKILL after 5 s) and waits for the
// process to exit. Stopping a stopped server does nothing.
func (s *Server) Stop() {
	s.mu.Lock()
	p := s.proc
	s.proc = nil
	s.mu.Unlock()
	if p == nil {
		return
	}
	t0 := time.Now()
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(5 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
	_ = p.stdin.Close()
	s.addLine(fmt.Sprintf("--- stopped after %v (%v)", time.Since(t0).Round(time.Millisecond), p.err))
}

// Running reports whether the server process is up.
func (s *Server) Running() bool {
	s.mu.Lock()
	p := s.proc
	s.mu.Unlock()
	if p == nil {
		return false
	}
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// Output returns the server's output so far (all runs, last 500 lines).
func (s *Server) Output() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return strings.Join(s.output, "\n")
}

func (s *Server) addLine(line string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.output = append(s.output, line)
	if len(s.output) > 500 {
		s.output = s.output[len(s.output)-500:]
	}
}

// start runs server.js on port and waits for READY, the process's exit or the
// timeout, whichever comes first.
func (s *Server) start(port int) error {
	var args []string
	if s.legacy {
		args = append(args, "--security-revert=CVE-2023-46809")
	}
	args = append(args, filepath.Join(s.dir, "server.js"), "--port", strconv.Itoa(port), "--host", "127.0.0.1", "--pki", s.PKIDir)
	if s.legacy {
		args = append(args, "--legacy")
	}
	cmd := exec.Command(s.node, args...)
	cmd.Dir = s.dir
	cmd.Env = append(os.Environ(),
		"IOTGW_OPCUA_USER="+s.Username,
		"IOTGW_OPCUA_PASSWORD="+s.Password,
		"NODE_NO_WARNINGS=1",
	)
	// Own process group: a Ctrl-C meant for `go test` does not hit the server
	// half-way through a test. When the test binary dies without cleanup
	// (Ctrl-C, -timeout panic) the stdin pipe closes and server.js exits.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return err
	}
	r, w, err := os.Pipe()
	if err != nil {
		return err
	}
	cmd.Stdout, cmd.Stderr = w, w
	s.addLine(fmt.Sprintf("--- %s start on port %d", time.Now().Format(time.RFC3339Nano), port))
	t0 := time.Now()
	if err := cmd.Start(); err != nil {
		r.Close()
		w.Close()
		return fmt.Errorf("start node: %w", err)
	}
	w.Close() // the child holds its copy; EOF once it exits

	p := &process{cmd: cmd, stdin: stdin, done: make(chan struct{})}
	readyCh := make(chan ready, 1)
	go func() {
		sc := bufio.NewScanner(r)
		sc.Buffer(make([]byte, 64*1024), 1024*1024)
		sent := false
		for sc.Scan() {
			line := sc.Text()
			s.addLine(line)
			if rest, ok := strings.CutPrefix(line, "READY "); ok && !sent {
				var rd ready
				if json.Unmarshal([]byte(rest), &rd) == nil {
					sent = true
					readyCh <- rd
				}
			}
		}
		_, _ = io.Copy(io.Discard, r)
		r.Close()
		p.err = cmd.Wait()
		close(p.done)
	}()

	timer := time.NewTimer(s.timeout)
	defer timer.Stop()
	select {
	case rd := <-readyCh:
		s.mu.Lock()
		s.proc = p
		s.mu.Unlock()
		if s.URL == "" { // first start; a restart keeps them (same port, same PKI)
			s.URL = rd.URL
			s.Port = port
			s.NamespaceIndex = rd.NamespaceIndex
			s.ServerCertFile = rd.ServerCertificate
		}
		s.addLine(fmt.Sprintf("--- ready after %v (node %s, pid %d)", time.Since(t0).Round(time.Millisecond), rd.NodeVersion, rd.PID))
		return nil
	case <-p.done:
		return fmt.Errorf("server.js exited before READY (%v); output:\n%s", p.err, s.Output())
	case <-timer.C:
		_ = cmd.Process.Kill()
		<-p.done
		return fmt.Errorf("server.js not READY after %v; output:\n%s", s.timeout, s.Output())
	}
}
