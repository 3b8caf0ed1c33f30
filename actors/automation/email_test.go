package automation

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/industryos/gateway/protocols"
	"github.com/industryos/gateway/protocols/kit/testpeer"
)

// The queue retries a mail whose server is down until it comes up: the
// mail arrives once, after retries, with the action's idempotency key as
// its Message-ID.
func TestEmailDeliveredAfterServerComesUp(t *testing.T) {
	testpeer.NeedAiosmtpd(t)
	port := testpeer.FreePort(t)
	r := start(t, fmt.Sprintf(`
queue: {retryMin: 100ms, retryMax: 300ms}
tasks:
  - name: mail
    trigger: {event: device/boiler/t}
    actions:
      - handler: email
        params: {host: 127.0.0.1, port: %d, tls: none, from: gw@example.com, to: ops@example.com,
                 subject: "{{device}} at {{value}}", body: "{{device}}.{{key}} is {{value}}"}
`, port), nil, nil)
	r.publish("boiler", "t", protocols.Int(85))
	waitFor(t, "two failed attempts", func() bool { return r.eng.Report().Queue.Retries >= 2 })
	if st := r.eng.Status()[0]; !strings.Contains(st.LastError, fmt.Sprintf("smtp 127.0.0.1:%d", port)) {
		t.Fatalf("status error %q does not name the server", st.LastError)
	}
	s := testpeer.StartSMTP(t, testpeer.SMTPOptions{Port: port})
	testpeer.Eventually(t, 15*time.Second, "the mail delivered", testpeer.True(func() bool { return r.eng.Report().Queue.Done == 1 }))
	mails := s.Mails()
	if len(mails) != 1 || !strings.Contains(mails[0], "Subject: boiler at 85") || !strings.Contains(mails[0], "boiler.t is 85") || !strings.Contains(mails[0], "@iotgw>") {
		t.Fatalf("mails %q", mails)
	}
	if q := r.eng.Report().Queue; q.Depth != 0 || q.Failed != 0 {
		t.Fatalf("queue %+v", q)
	}
}
