package testpeer

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// SMTP is testdata/smtpd.py, an SMTP server on Debian's python3-aiosmtpd.
type SMTP struct {
	Port int
	out  string
	stop func()
}

// SMTPOptions say how the server listens: Mode none, starttls (required
// before MAIL) or tls (implicit, SMTPS) with TLS's server certificate;
// with User, AUTH takes that login and Password only. Port 0: a free one.
type SMTPOptions struct {
	Mode           string
	TLS            *TLSFiles
	User, Password string
	Port           int
}

// NeedAiosmtpd skips t without python3-aiosmtpd (fails it under
// RequirePeersEnv=1).
func NeedAiosmtpd(t testing.TB) {
	t.Helper()
	NeedPeer(t, "python3-aiosmtpd", func() error {
		return exec.Command(SystemPython, "-c", "import aiosmtpd.controller").Run()
	})
}

// StartSMTP runs the server and returns once it accepts connections; it
// stops when the test ends.
func StartSMTP(t testing.TB, o SMTPOptions) *SMTP {
	t.Helper()
	NeedAiosmtpd(t)
	if o.Port == 0 {
		o.Port = FreePort(t)
	}
	if o.Mode == "" {
		o.Mode = "none"
	}
	s := &SMTP{Port: o.Port, out: filepath.Join(t.TempDir(), "mail.txt")}
	args := []string{script("smtpd.py"), strconv.Itoa(o.Port), s.out, o.Mode}
	if o.Mode != "none" {
		args = append(args, o.TLS.ServerCert, o.TLS.ServerKey)
	}
	if o.User != "" {
		args = append(args, o.User, o.Password)
	}
	cmd := exec.Command(SystemPython, args...)
	cmd.Stderr = &logWriter{t: t, prefix: "smtpd: "}
	in, out := startWithPipes(t, cmd)
	done := false
	s.stop = func() {
		if !done {
			done = true
			_ = in.Close()
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	}
	t.Cleanup(s.stop)
	ready := make(chan bool, 1)
	go func() {
		sc := bufio.NewScanner(out)
		ok := sc.Scan() && sc.Text() == "ready"
		ready <- ok
		for sc.Scan() {
		}
	}()
	select {
	case ok := <-ready:
		if !ok {
			t.Fatal("smtpd exited before it was ready")
		}
	case <-time.After(MinTimeout):
		t.Fatalf("smtpd: not ready within %v", MinTimeout)
	}
	return s
}

// Stop ends the server.
func (s *SMTP) Stop() { s.stop() }

// Mails returns the mails received so far, as sent (headers and body).
func (s *SMTP) Mails() []string {
	b, _ := os.ReadFile(s.out)
	var out []string
	for _, m := range strings.Split(string(b), "\n----\n") {
		if strings.TrimSpace(m) != "" {
			out = append(out, m)
		}
	}
	return out
}
