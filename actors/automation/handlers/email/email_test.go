package email

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/industryos/gateway/actors/automation/handler"
	"github.com/industryos/gateway/protocols/kit/testpeer"
)

// A real SMTP server (Debian python3-aiosmtpd) takes the mail; with the
// server gone the error is an ordinary (retried) one.
func TestSendToAiosmtpd(t *testing.T) {
	py := "/usr/bin/python3"
	if exec.Command(py, "-c", "import aiosmtpd").Run() != nil {
		t.Skip("python3-aiosmtpd is not installed (apt-get install python3-aiosmtpd)")
	}
	port := testpeer.FreePort(t)
	out := filepath.Join(t.TempDir(), "mail.txt")
	f, _ := os.Create(out)
	cmd := exec.Command(py, "-m", "aiosmtpd", "-n", "-c", "aiosmtpd.handlers.Debugging", "-l", "127.0.0.1:"+strconv.Itoa(port))
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	h := New(handler.Env{Log: zerolog.Nop()})
	p := map[string]any{"host": "127.0.0.1", "port": float64(port), "tls": "none", "from": "gw@example.com",
		"to": []any{"ops@example.com"}, "subject": "boiler at 85", "body": "boiler.temperature is 85"}
	if errs := h.Validate(p); len(errs) > 0 {
		t.Fatal(errs)
	}
	var err error
	testpeer.Eventually(t, 10*time.Second, "the mail accepted", testpeer.True(func() bool {
		err = h.Run(context.Background(), handler.Action{Key: "k1", Params: p})
		return err == nil
	}))
	testpeer.Eventually(t, 10*time.Second, "the mail at the server", testpeer.True(func() bool {
		b, _ := os.ReadFile(out)
		return strings.Contains(string(b), "Subject: boiler at 85") && strings.Contains(string(b), "boiler.temperature is 85")
	}))
	_ = cmd.Process.Kill()
	_ = cmd.Wait()
	err = h.Run(context.Background(), handler.Action{Key: "k2", Params: p})
	if err == nil || errorsIsPermanent(err) {
		t.Fatalf("server gone: %v, want a retried error", err)
	}
}

func errorsIsPermanent(err error) bool {
	return strings.Contains(err.Error(), handler.ErrPermanent.Error())
}
