package tests

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/industryos/gateway/protocols/kit/testpeer"
	"github.com/industryos/gateway/protocols/platform"
)

// provisioner answers /provision/request through the broker as the platform
// would, with answer(request).
type provisioner struct {
	mu       sync.Mutex
	requests []map[string]any
}

func (p *provisioner) count() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.requests)
}

func startProvisioner(t *testing.T, addr string, answer func(req map[string]any) map[string]any) *provisioner {
	t.Helper()
	p := &provisioner{}
	var sub atomic.Pointer[testpeer.Subscriber]
	s := testpeer.SubscribeWith(t, addr, testpeer.SubscriberOptions{OnMessage: func(m testpeer.Msg) {
		if m.Topic != platform.TopicProvisionRequest {
			return
		}
		var req map[string]any
		if json.Unmarshal(m.Payload, &req) != nil {
			return
		}
		p.mu.Lock()
		p.requests = append(p.requests, req)
		p.mu.Unlock()
		b, _ := json.Marshal(answer(req))
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if s := sub.Load(); s != nil {
				_ = s.Publish(ctx, platform.TopicProvisionResponse, b, 1)
			}
		}()
	}}, platform.TopicProvisionRequest)
	sub.Store(s)
	return p
}

// writeProvisioningConfig writes a main file with provisioning and no
// security section, and no connectors.
func writeProvisioningConfig(t *testing.T, dir, addr string) string {
	t.Helper()
	host, port, _ := net.SplitHostPort(addr)
	main := fmt.Sprintf(`{
  "thingsboard": {
    "host": %q, "port": %s,
    "provisioning": {"type": "ACCESS_TOKEN", "provisionDeviceKey": "pkey", "provisionDeviceSecret": "psecret", "deviceName": "Gateway T"}
  },
  "storage": {"type": "memory"},
  "connectors": []
}`, host, port)
	path := filepath.Join(dir, "tb_gateway.json")
	if err := os.WriteFile(path, []byte(main), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

type runningBinary struct {
	cmd  *exec.Cmd
	logs *lineBuffer
	done chan struct{} // closed when the process exited; err is then set
	err  error
}

func runBinary(t *testing.T, cfg string) *runningBinary {
	t.Helper()
	r := &runningBinary{logs: &lineBuffer{}, done: make(chan struct{})}
	r.cmd = exec.Command(iotgwBinary(t), "run", "-c", cfg, "--log-level", "info")
	r.cmd.Stderr = r.logs
	if err := r.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { r.err = r.cmd.Wait(); close(r.done) }()
	t.Cleanup(func() {
		select {
		case <-r.done:
		default:
			_ = r.cmd.Process.Kill()
			<-r.done
		}
		if t.Failed() {
			t.Logf("gateway log:\n%s", strings.Join(r.logs.lines(), "\n"))
		}
	})
	return r
}

// stop sends SIGTERM and expects a clean exit.
func (r *runningBinary) stop(t *testing.T) {
	t.Helper()
	if err := r.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-r.done:
		if r.err != nil {
			t.Fatalf("exit after SIGTERM: %v", r.err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("still running 10 s after SIGTERM")
	}
}

// noCrash fails on anything that looks like a panic or a restart loop.
func (r *runningBinary) noCrash(t *testing.T) {
	t.Helper()
	for _, l := range r.logs.lines() {
		if strings.Contains(l, "panic") || strings.Contains(l, "goroutine ") || strings.Contains(l, "no credentials configured") {
			t.Fatalf("crash in the log: %s", l)
		}
	}
}

// TestProvisioningOnlyConfigChecksAndRuns: a main file with provisioning and
// no security passes check, and run provisions, stores the credentials,
// connects with them, and reuses them after a restart.
func TestProvisioningOnlyConfigChecksAndRuns(t *testing.T) {
	m := testpeer.StartMosquitto(t)
	p := startProvisioner(t, m.Addr(), func(req map[string]any) map[string]any {
		return map[string]any{"status": "SUCCESS", "credentialsType": "ACCESS_TOKEN", "credentialsValue": req["token"]}
	})
	attrs := testpeer.Subscribe(t, m.Addr(), platform.TopicMeAttributes)
	dir := t.TempDir()
	cfg := writeProvisioningConfig(t, dir, m.Addr())

	out, err := exec.Command(iotgwBinary(t), "check", "-c", cfg).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "OK") {
		t.Fatalf("check: %v\n%s", err, out)
	}

	gw := runBinary(t, cfg)
	// The gateway announces itself once its platform session is up.
	attrs.WaitTopic(t, 30*time.Second, platform.TopicMeAttributes, 1)
	gw.noCrash(t)
	gw.stop(t)
	st, err := os.Stat(filepath.Join(dir, platform.CredentialsFileName))
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Fatalf("credentials file mode %v", st.Mode().Perm())
	}
	if n := p.count(); n != 1 {
		t.Fatalf("%d provisioning requests, want 1", n)
	}
	req := p.requests[0]
	if req["provisionDeviceKey"] != "pkey" || req["deviceName"] != "Gateway T" || req["credentialsType"] != "ACCESS_TOKEN" {
		t.Fatalf("request %v", req)
	}

	// check still agrees with the stored file, and a restart reuses it.
	if out, err := exec.Command(iotgwBinary(t), "check", "-c", cfg).CombinedOutput(); err != nil {
		t.Fatalf("check after provisioning: %v\n%s", err, out)
	}
	attrs.Reset()
	gw2 := runBinary(t, cfg)
	attrs.WaitTopic(t, 30*time.Second, platform.TopicMeAttributes, 1)
	gw2.noCrash(t)
	gw2.stop(t)
	if n := p.count(); n != 1 {
		t.Fatalf("%d provisioning requests after a restart, want 1", n)
	}
}

// TestProvisioningRefusedKeepsRunning: a refusal is one error line with the
// platform's message per attempt, the gateway retries and still stops cleanly.
func TestProvisioningRefusedKeepsRunning(t *testing.T) {
	m := testpeer.StartMosquitto(t)
	p := startProvisioner(t, m.Addr(), func(map[string]any) map[string]any {
		return map[string]any{"status": "FAILURE", "errorMsg": "Provision data was not found!"}
	})
	dir := t.TempDir()
	gw := runBinary(t, writeProvisioningConfig(t, dir, m.Addr()))
	testpeer.Eventually(t, 30*time.Second, "the provisioning failures to be logged", func() error {
		n := 0
		for _, l := range gw.logs.lines() {
			if strings.Contains(l, "Provision data was not found!") {
				n++
			}
		}
		if n < 2 || p.count() < 2 {
			return fmt.Errorf("%d refusal lines, %d requests", n, p.count())
		}
		return nil
	})
	gw.noCrash(t)
	for _, l := range gw.logs.lines() {
		if strings.Contains(l, `"level":"error"`) {
			t.Logf("error line: %s", l)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, platform.CredentialsFileName)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("credentials file after refusals: %v", err)
	}
	gw.stop(t)
}
