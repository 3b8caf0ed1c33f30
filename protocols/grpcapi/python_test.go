package grpcapi

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/industryos/gateway/protocols"
	"github.com/industryos/gateway/protocols/kit/testpeer"
)

// TestPythonClient runs a connector process written in Python against the
// hub, with stubs generated from our .proto at test time (Debian's
// python3-grpcio and python3-grpc-tools): the wire format is not Go's.
func TestPythonClient(t *testing.T) {
	py := "/usr/bin/python3"
	if exec.Command(py, "-c", "import grpc, grpc_tools").Run() != nil {
		t.Skip("python3-grpcio / python3-grpc-tools not installed")
	}
	stubs := t.TempDir()
	if out, err := exec.Command(py, "-m", "grpc_tools.protoc", "-Ipb", "--python_out="+stubs, "--grpc_python_out="+stubs, "pb/messages.proto").CombinedOutput(); err != nil {
		t.Fatalf("generating python stubs: %v\n%s", err, out)
	}
	c, rec, _ := start(t, "py-key")
	addr := c.hub.addr.String()
	script, _ := filepath.Abs("testdata/client.py")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, py, script, addr, "py-key")
	cmd.Env = append(os.Environ(), "PYTHONPATH="+stubs)
	var out syncBuf
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	testpeer.Eventually(t, 30*time.Second, "python telemetry", func() error {
		if v := rec.Values("py-dev", "temp"); len(v) != 1 || v[0].F != 21.5 {
			return fmt.Errorf("temp %v; client output:\n%s", v, out.String())
		}
		return nil
	})
	var res protocols.RPCResult
	testpeer.Eventually(t, 30*time.Second, "python rpc answer", func() error {
		r, err := c.Commander("py-dev", "default").RPC(ctx, protocols.RPCRequest{ID: 3, Device: "py-dev", Method: "ping"})
		res = r
		return err
	})
	if string(res) != `{"echo":"ping"}` {
		t.Fatalf("rpc result %s", res)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("python client: %v\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), "registered SUCCESS ext") || !strings.Contains(out.String(), "answer SUCCESS") {
		t.Fatalf("client output:\n%s", out.String())
	}
}

// syncBuf collects a child's output while the test reads it.
type syncBuf struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
