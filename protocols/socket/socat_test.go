package socket

import (
	"context"
	"encoding/json"
	"io"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/industryos/gateway/protocols"
	"github.com/industryos/gateway/protocols/kit/testpeer"
)

// socatPeer runs socat between a pipe the test writes and the server.
type socatPeer struct {
	in  io.WriteCloser
	out io.Reader
}

func startSocat(t *testing.T, target string) *socatPeer {
	t.Helper()
	bin := testpeer.NeedProgram(t, "socat", "socat")
	cmd := exec.Command(bin, "-t", "30", "-", target)
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		in.Close()
		cmd.Process.Kill()
		cmd.Wait()
		if stderr.Len() > 0 {
			t.Logf("socat: %s", stderr.String())
		}
	})
	return &socatPeer{in: in, out: out}
}

func (p *socatPeer) read(t *testing.T, n int) string {
	t.Helper()
	got := make(chan string, 1)
	go func() {
		b := make([]byte, n)
		k, _ := io.ReadFull(p.out, b)
		got <- string(b[:k])
	}()
	select {
	case s := <-got:
		return s
	case <-time.After(wait):
		t.Fatalf("socat printed nothing for %v", wait)
	}
	return ""
}

// socat as the device, over TCP and UDP: its data is converted, its
// attribute request answered, and an RPC reaches it.
func TestSocatPeer(t *testing.T) {
	for _, typ := range []string{"TCP", "UDP"} {
		t.Run(typ, func(t *testing.T) {
			c, s := start(t, strings.Replace(tcpFile(""), `"TCP"`, `"`+typ+`"`, 1))
			s.SetAttributes(map[string]json.RawMessage{"sharedName": []byte(`"pump-7"`)})
			p := startSocat(t, typ+":"+c.Addr().String())
			// socat sends a UDP datagram per read of its input: one write each.
			io.WriteString(p.in, "23.5\n")
			s.Wait(t, wait, "data", func() bool { return len(s.Values("Dev", "temp")) == 1 })
			want := "23.5"
			if typ == "UDP" {
				want = "23.5\n" // a datagram is the message, newline included
			}
			if got := values(s, "Dev", "temp")[0]; got != want {
				t.Errorf("temp %q, want %q", got, want)
			}
			io.WriteString(p.in, "atrsharedName\n")
			if got := p.read(t, len(`{"sharedName":"pump-7"}`)); got != `{"sharedName":"pump-7"}` {
				t.Errorf("attribute response %q", got)
			}
			res, err := c.Commander("Dev", "").RPC(context.Background(), protocols.RPCRequest{Method: "rpcMethod1", Params: []byte(`"ON"`)})
			if err != nil || string(res) != `{"result":"ok"}` {
				t.Fatalf("rpc %s %v", res, err)
			}
			if got := p.read(t, 2); got != "ON" {
				t.Errorf("rpc at socat: %q", got)
			}
		})
	}
}
