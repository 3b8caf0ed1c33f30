package email

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/industryos/gateway/actors/automation/handler"
	"github.com/industryos/gateway/protocols/kit/testpeer"
)

func mail(port int, extra map[string]any) map[string]any {
	p := map[string]any{"host": "127.0.0.1", "port": float64(port), "from": "gw@example.com",
		"to": []any{"ops@example.com"}, "subject": "boiler at 85", "body": "boiler.temperature is 85"}
	for k, v := range extra {
		p[k] = v
	}
	return p
}

func run(t *testing.T, h handler.Handler, p map[string]any) error {
	t.Helper()
	if errs := h.Validate(p); len(errs) > 0 {
		t.Fatal(errs)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	return h.Run(ctx, handler.Action{Key: "k1", Params: p})
}

func delivered(t *testing.T, s *testpeer.SMTP, n int) {
	t.Helper()
	testpeer.Eventually(t, 10*time.Second, "the mail at the server", testpeer.True(func() bool { return len(s.Mails()) == n }))
	m := s.Mails()[n-1]
	if !strings.Contains(m, "Subject: boiler at 85") || !strings.Contains(m, "boiler.temperature is 85") {
		t.Fatalf("mail: %s", m)
	}
}

// A real SMTP server (Debian python3-aiosmtpd) takes the mail; with the
// server gone the error is an ordinary (retried) one.
func TestSendToAiosmtpd(t *testing.T) {
	s := testpeer.StartSMTP(t, testpeer.SMTPOptions{})
	h := New(handler.Env{Log: zerolog.Nop()})
	p := mail(s.Port, map[string]any{"tls": "none"})
	if err := run(t, h, p); err != nil {
		t.Fatal(err)
	}
	delivered(t, s, 1)
	s.Stop()
	err := run(t, h, p)
	if err == nil || errors.Is(err, handler.ErrPermanent) || !strings.Contains(err.Error(), "127.0.0.1:") {
		t.Fatalf("server gone: %v, want a retried error naming the server", err)
	}
}

// STARTTLS and implicit TLS with the server's certificate verified against
// caFile (relative to the automation file's directory), logging in with a
// password read from the environment.
func TestTLSVerifiedWithCAFile(t *testing.T) {
	certs := testpeer.GenerateTLS(t)
	t.Setenv("TEST_SMTP_PASSWORD", "s3cret-pw")
	h := New(handler.Env{Log: zerolog.Nop(), Dir: filepath.Dir(certs.CACert)})
	login := map[string]any{"username": "gw", "passwordEnv": "TEST_SMTP_PASSWORD", "caFile": filepath.Base(certs.CACert)}
	for _, mode := range []string{"starttls", "tls"} {
		t.Run(mode, func(t *testing.T) {
			s := testpeer.StartSMTP(t, testpeer.SMTPOptions{Mode: mode, TLS: &certs, User: "gw", Password: "s3cret-pw"})
			p := mail(s.Port, login)
			p["tls"] = mode
			if err := run(t, h, p); err != nil {
				t.Fatal(err)
			}
			delivered(t, s, 1)

			// Without caFile the test CA is unknown: the certificate is refused.
			delete(p, "caFile")
			err := run(t, h, p)
			if err == nil || !strings.Contains(err.Error(), "certificate") {
				t.Fatalf("without caFile: %v, want a certificate error", err)
			}
		})
	}
}

// A refused login is a permanent failure naming the server, and the
// password appears in no error.
func TestRefusedLoginIsPermanent(t *testing.T) {
	certs := testpeer.GenerateTLS(t)
	s := testpeer.StartSMTP(t, testpeer.SMTPOptions{Mode: "starttls", TLS: &certs, User: "gw", Password: "right"})
	pw := filepath.Join(t.TempDir(), "pw")
	if err := os.WriteFile(pw, []byte("wrong-pw-123\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	h := New(handler.Env{Log: zerolog.Nop()})
	err := run(t, h, mail(s.Port, map[string]any{"username": "gw", "passwordFile": pw, "caFile": certs.CACert}))
	if !errors.Is(err, handler.ErrPermanent) {
		t.Fatalf("wrong password: %v, want a permanent failure", err)
	}
	if e := err.Error(); !strings.Contains(e, "smtp 127.0.0.1:") || !strings.Contains(e, "login as gw") || !strings.Contains(e, "535") || strings.Contains(e, "wrong-pw") {
		t.Fatalf("error %q: want the server, the login and the 535 answer, not the password", e)
	}
	if len(s.Mails()) != 0 {
		t.Fatal("mail delivered after a refused login")
	}
}

func TestValidate(t *testing.T) {
	h := New(handler.Env{Log: zerolog.Nop(), Dir: t.TempDir()})
	for _, tc := range []struct {
		name  string
		extra map[string]any
		want  string
	}{
		{"literal password", map[string]any{"password": "x"}, "params.password: a literal password would be stored"},
		{"missing CA file", map[string]any{"caFile": "nope.pem"}, "params.caFile: open "},
		{"both secrets", map[string]any{"passwordEnv": "A", "passwordFile": "b"}, "passwordEnv and passwordFile both given"},
		{"bad tls", map[string]any{"tls": "implicit"}, `params.tls: "implicit" is not starttls, tls or none`},
	} {
		errs := h.Validate(mail(25, tc.extra))
		if len(errs) == 0 || !strings.Contains(errors.Join(errs...).Error(), tc.want) {
			t.Errorf("%s: got %v, want %q", tc.name, errs, tc.want)
		}
	}
	notPEM := filepath.Join(t.TempDir(), "x.pem")
	_ = os.WriteFile(notPEM, []byte("hello"), 0o644)
	if errs := h.Validate(mail(25, map[string]any{"caFile": notPEM})); len(errs) != 1 || !strings.Contains(errs[0].Error(), "holds no PEM certificate") {
		t.Fatalf("not PEM: %v", errs)
	}
}
