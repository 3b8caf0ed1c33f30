package tests

import (
	"bytes"
	"encoding/json"
	"errors"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/industryos/gateway/protocols/kit/testpeer"
	"github.com/industryos/gateway/protocols/modbus/sim"
)

// TestGracefulShutdown: SIGTERM (and SIGINT) stop the binary in order —
// connectors, final flush, uplink — and it exits 0 within 5 s, leaving nothing
// undelivered when the broker is up.
func TestGracefulShutdown(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT} {
		t.Run(sig.String(), func(t *testing.T) {
			b := testpeer.StartMochi(t)
			s := startSim(t, 2, 4)
			sub := testpeer.Subscribe(t, b.Addr(), "v1/gateway/telemetry")
			dir := t.TempDir()
			cfg := writeConfig(t, dir, b.Addr(), `{"type": "file", "data_folder_path": "journal"}`,
				map[string][]byte{"modbus": sim.GatewayConfig(s.Addr(), 2, 4, 100*time.Millisecond)})
			var logs bytes.Buffer
			cmd := exec.Command(iotgwBinary(t), "run", "-c", cfg, "--log-level", "info")
			cmd.Stderr = &logs
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			sub.WaitFor(t, 30*time.Second, func(msgs []testpeer.Msg) bool { return len(msgs) >= 2 })
			if err := cmd.Process.Signal(sig); err != nil {
				t.Fatal(err)
			}
			done := make(chan error, 1)
			go func() { done <- cmd.Wait() }()
			select {
			case err := <-done:
				var exit *exec.ExitError
				if errors.As(err, &exit) {
					t.Fatalf("exit code %d after %s\n%s", exit.ExitCode(), sig, logs.String())
				} else if err != nil {
					t.Fatal(err)
				}
			case <-time.After(5 * time.Second):
				_ = cmd.Process.Kill()
				t.Fatalf("still running 5 s after %s\n%s", sig, logs.String())
			}
			// The log shows the order: connector stopped, then the gateway.
			var order []string
			for _, line := range strings.Split(logs.String(), "\n") {
				var l struct{ Message string }
				if json.Unmarshal([]byte(line), &l) == nil && (l.Message == "connector stopped" || l.Message == "gateway stopped" || l.Message == "stopping") {
					order = append(order, l.Message)
				}
			}
			if strings.Join(order, ",") != "stopping,connector stopped,gateway stopped" {
				t.Errorf("shutdown order %v\n%s", order, logs.String())
			}
			// Everything journaled was delivered before exit: the journal is empty.
			if pending := journalPoints(t, dir+"/journal"); len(pending) != 0 {
				t.Errorf("%d points left undelivered after a clean stop", len(pending))
			}
		})
	}
}
