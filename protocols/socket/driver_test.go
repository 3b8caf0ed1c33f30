package socket

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/industryos/gateway/protocols"
	"github.com/industryos/gateway/protocols/kit/sinktest"
	"github.com/industryos/gateway/protocols/kit/spec"
)

const wait = 20 * time.Second

// start runs a connector built from file on a free loopback port and
// returns it once it listens.
func start(t testing.TB, file string) (*Connector, *sinktest.Recorder) {
	t.Helper()
	ps := &spec.Problems{}
	root := spec.Parse(ps, "socket.json", []byte(file))
	if root == nil {
		t.Fatal(ps.Err())
	}
	c, err := NewConnector(protocols.ConnectorConfig{Name: "socket", Type: "socket", Config: root, Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	sink := sinktest.New()
	r := sinktest.Run(t, c, sink)
	select {
	case <-c.Ready():
	case <-r.Ended():
		t.Fatalf("Run ended: %v", r.Err())
	case <-time.After(wait):
		t.Fatal("server not up")
	}
	return c, sink
}

// tcpFile is upstream's default device on a kernel-chosen port.
func tcpFile(extra string) string {
	return `{"name": "S", "socket": {"type": "TCP", "address": "127.0.0.1", "port": 0, "bufferSize": 64` + extra + `},
  "devices": [{"address": "127.0.0.1:*", "deviceName": "Dev", "deviceType": "sensor", "encoding": "utf-8",
    "telemetry": [{"key": "temp", "byteFrom": 0, "byteTo": -1}, {"key": "hum", "byteFrom": 0, "byteTo": 2}],
    "attributes": [{"key": "num", "byteFrom": 2, "byteTo": 4}],
    "attributeRequests": [{"type": "shared", "requestExpression": "${[0:3]==atr}", "attributeNameExpression": "[3:]"}],
    "attributeUpdates": [{"encoding": "utf-16", "attributeOnThingsBoard": "sharedName"}, {"attributeOnThingsBoard": "mode"}],
    "serverSideRpc": [{"methodRPC": "rpcMethod1", "withResponse": true, "encoding": "utf-8"}]},
   {"address": "10.*", "deviceName": "Elsewhere", "telemetry": [{"key": "x"}]}]}`
}

func dial(t testing.TB, c *Connector, network string) net.Conn {
	t.Helper()
	nc, err := net.Dial(network, c.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	return nc
}

func values(s *sinktest.Recorder, device, key string) []string {
	var out []string
	for _, v := range s.Values(device, key) {
		out = append(out, v.S)
	}
	return out
}

// A message split over many writes, and several messages in one write,
// convert the same as one message per write.
func TestTCPFramingSurvivesPartialAndCoalescedWrites(t *testing.T) {
	c, s := start(t, tcpFile(""))
	nc := dial(t, c, "tcp")
	for _, b := range []byte("23.5\r\n") {
		if _, err := nc.Write([]byte{b}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := nc.Write([]byte("24.0\n25.5\n" + strings.Repeat("x", 100) + "\n26.0")); err != nil {
		t.Fatal(err)
	}
	nc.(*net.TCPConn).CloseWrite()
	s.Wait(t, wait, "four messages", func() bool { return len(s.Values("Dev", "temp")) == 4 })
	if got := strings.Join(values(s, "Dev", "temp"), " "); got != "23.5 24.0 25.5 26.0" {
		t.Errorf("temp %s", got)
	}
	if got := strings.Join(values(s, "Dev", "hum"), " "); got != "23 24 25 26" {
		t.Errorf("hum %s", got)
	}
	if got := strings.Join(values(s, "Dev", "num"), " "); got != ".5 .0 .5 .0" {
		t.Errorf("num %s", got)
	}
	p := s.DataPushes()[0]
	if p.Device != "Dev" || p.Profile != "sensor" || p.Ts.IsZero() {
		t.Errorf("push %+v", p)
	}
	s.Wait(t, wait, "the long line reported", func() bool { return len(s.MalformedReports()) == 1 })
	if r := s.MalformedReports()[0]; !errors.Is(r.Err, ErrTooLong) {
		t.Errorf("malformed: %v", r)
	}
}

// upstream's per-read framing is there for peers that rely on it.
func TestTCPReadFraming(t *testing.T) {
	c, s := start(t, tcpFile(`, "framing": "read"`))
	nc := dial(t, c, "tcp")
	nc.Write([]byte("abc"))
	s.Wait(t, wait, "one read", func() bool { return len(s.Values("Dev", "temp")) == 1 })
	if got := values(s, "Dev", "temp")[0]; got != "abc" {
		t.Errorf("temp %q", got)
	}
}

func readN(t *testing.T, r io.Reader, n int) []byte {
	t.Helper()
	if nc, ok := r.(net.Conn); ok {
		nc.SetReadDeadline(time.Now().Add(wait))
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(r, b); err != nil {
		t.Fatalf("read %d bytes: %v (got %q)", n, err, b)
	}
	return b
}

// Attribute requests are answered on the connection they came on; updates
// and RPC go to the device's (last) connection, in the entry's encoding.
func TestTCPCommands(t *testing.T) {
	c, s := start(t, tcpFile(""))
	s.SetAttributes(map[string]json.RawMessage{"sharedName": []byte(`"pump-7"`)})
	cmd := c.Commander("Dev", "sensor")
	ctx := context.Background()
	// Before the device sent anything there is nowhere to write.
	if _, err := cmd.RPC(ctx, protocols.RPCRequest{Method: "rpcMethod1", Params: []byte(`"x"`)}); !errors.Is(err, ErrNoConnection) {
		t.Fatalf("rpc without a connection: %v", err)
	}
	nc := dial(t, c, "tcp")
	nc.Write([]byte("atrsharedName\n"))
	want := `{"sharedName":"pump-7"}`
	if got := readN(t, nc, len(want)); string(got) != want {
		t.Errorf("attribute response %q", got)
	}
	if got := s.AttrRequests(); len(got) != 1 || got[0] != "Dev client=false [sharedName]" {
		t.Errorf("requests %v", got)
	}
	if len(s.DataPushes()) != 0 {
		t.Errorf("an attribute request was pushed as data: %v", s.DataPushes())
	}

	ignored, err := cmd.UpdateAttributes(ctx, map[string]json.RawMessage{"sharedName": []byte(`"hi"`), "mode": []byte(`3`), "other": []byte(`1`)})
	if err != nil || len(ignored) != 1 || ignored[0] != "other" {
		t.Fatalf("update: %v %v", ignored, err)
	}
	// Key order: mode (utf-8 "3"), then sharedName (utf-16 with BOM).
	if got := readN(t, nc, 1+6); string(got) != "3\xff\xfeh\x00i\x00" {
		t.Errorf("update bytes % x", got)
	}
	res, err := cmd.RPC(ctx, protocols.RPCRequest{ID: 1, Method: "rpcMethod1", Params: []byte(`"on"`)})
	if err != nil || string(res) != `{"result":"ok"}` {
		t.Fatalf("rpc: %s %v", res, err)
	}
	if got := readN(t, nc, 2); string(got) != "on" {
		t.Errorf("rpc bytes %q", got)
	}
	res, err = cmd.RPC(ctx, protocols.RPCRequest{ID: 2, Method: "rpcMethod1", Params: []byte(`{"a":1}`)})
	if err != nil || string(res) != `{"result":"ok"}` {
		t.Fatalf("rpc: %s %v", res, err)
	}
	if got := readN(t, nc, 7); string(got) != `{"a":1}` {
		t.Errorf("rpc bytes %q", got)
	}
	// Reserved set: to the device's connection, or to address:port.
	if _, err := cmd.RPC(ctx, protocols.RPCRequest{Method: "set", Params: []byte(`"value=v1;"`)}); err != nil {
		t.Fatal(err)
	}
	if got := readN(t, nc, 2); string(got) != "v1" {
		t.Errorf("set bytes %q", got)
	}
	local := nc.LocalAddr().(*net.TCPAddr)
	params := fmt.Sprintf(`"address=127.0.0.1;port=%d;value=v2;encoding=hex;"`, local.Port)
	if _, err := c.ConnectorRPC(ctx, protocols.RPCRequest{Method: "socket_set", Params: []byte(strings.ReplaceAll(params, "v2", "0a0b"))}); err != nil {
		t.Fatal(err)
	}
	if got := readN(t, nc, 2); string(got) != "\x0a\x0b" {
		t.Errorf("socket_set bytes % x", got)
	}
	// Without an open connection from there, set connects out, as upstream.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	got := make(chan string, 1)
	go func() {
		in, err := ln.Accept()
		if err != nil {
			got <- err.Error()
			return
		}
		defer in.Close()
		b, _ := io.ReadAll(in)
		got <- string(b)
	}()
	params = fmt.Sprintf(`"address=127.0.0.1;port=%d;value=out;"`, ln.Addr().(*net.TCPAddr).Port)
	if _, err := c.ConnectorRPC(ctx, protocols.RPCRequest{Method: "socket_set", Params: []byte(params)}); err != nil {
		t.Fatal(err)
	}
	if g := <-got; g != "out" {
		t.Errorf("dialed set got %q", g)
	}
	if _, err := cmd.RPC(ctx, protocols.RPCRequest{Method: "nope"}); !errors.Is(err, protocols.ErrUnknownMethod) {
		t.Errorf("unknown method: %v", err)
	}
	if c.Commander("nobody", "") != nil {
		t.Error("commander for an unknown device")
	}
	// The peer goes away: writes say so.
	nc.Close()
	s.Wait(t, wait, "connection closed", func() bool {
		_, err := cmd.RPC(ctx, protocols.RPCRequest{Method: "rpcMethod1", Params: []byte(`"x"`)})
		return errors.Is(err, ErrNoConnection)
	})
}

// Peers no device filter takes are counted, not converted.
func TestUnmatchedPeer(t *testing.T) {
	c, s := start(t, `{"socket": {"port": 0}, "devices": [{"address": "10.0.0.1:*", "deviceName": "D", "telemetry": [{"key": "x"}]}]}`)
	nc := dial(t, c, "tcp")
	nc.Write([]byte("1\n2\n"))
	s.Wait(t, wait, "unmatched", func() bool { return s.UnmatchedCount() == 2 })
	if len(s.DataPushes()) != 0 {
		t.Error("pushed")
	}
}

// Connections beyond maxConnections are closed and counted.
func TestMaxConnections(t *testing.T) {
	c, s := start(t, tcpFile(`, "maxConnections": 1`))
	a := dial(t, c, "tcp")
	a.Write([]byte("1\n"))
	s.Wait(t, wait, "first", func() bool { return len(s.DataPushes()) == 1 })
	b := dial(t, c, "tcp")
	b.SetReadDeadline(time.Now().Add(wait))
	if _, err := b.Read(make([]byte, 1)); !errors.Is(err, io.EOF) {
		t.Errorf("second connection: %v", err)
	}
	s.Wait(t, wait, "drop counted", func() bool { return s.DroppedTotal() == 1 })
}

// A thousand devices connected at once, each sending its lines: every
// value arrives, and each connection's lines arrive in order.
func TestThousandConcurrentConnections(t *testing.T) {
	const conns, lines = 1000, 5
	c, s := start(t, `{"socket": {"port": 0}, "devices": [
	  {"address": "127.0.0.1:*", "deviceName": "Fleet", "telemetry": [{"key": "v"}]}]}`)
	var wg sync.WaitGroup
	errs := make(chan error, conns)
	ready := make(chan struct{})
	for i := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			nc, err := net.Dial("tcp", c.Addr().String())
			if err != nil {
				errs <- err
				return
			}
			defer nc.Close()
			<-ready
			w := bufio.NewWriter(nc)
			for j := range lines {
				fmt.Fprintf(w, "%d-%d\n", i, j)
			}
			if err := w.Flush(); err != nil {
				errs <- err
				return
			}
			nc.(*net.TCPConn).CloseWrite()
			io.Copy(io.Discard, nc) // until the server closes its side
		}()
	}
	close(ready)
	// One push per line.
	select {
	case <-s.WhenPushed(conns * lines):
	case <-time.After(60 * time.Second):
		t.Fatalf("%d of %d values after 60s", s.Pushed(), conns*lines)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	next := map[string]int{}
	for _, v := range values(s, "Fleet", "v") {
		conn, n, _ := strings.Cut(v, "-")
		if want := fmt.Sprint(next[conn]); n != want {
			t.Fatalf("connection %s: line %s, want %s", conn, n, want)
		}
		next[conn]++
	}
	if len(next) != conns {
		t.Errorf("%d connections delivered", len(next))
	}
	if st := c.Stats(); st.Received != conns || st.Messages != conns*lines {
		t.Errorf("stats %+v", st)
	}
}

// UDP: a datagram is a message; answers and writes go back to the sender
// from the server's port; an oversized datagram is reported.
func TestUDP(t *testing.T) {
	c, s := start(t, strings.Replace(tcpFile(""), `"TCP"`, `"UDP"`, 1))
	s.SetAttributes(map[string]json.RawMessage{"sharedName": []byte(`"pump-7"`)})
	nc := dial(t, c, "udp")
	nc.Write([]byte("23.5"))
	nc.Write([]byte("24.5"))
	s.Wait(t, wait, "two datagrams", func() bool { return len(s.Values("Dev", "temp")) == 2 })
	if got := strings.Join(values(s, "Dev", "temp"), " "); got != "23.5 24.5" {
		t.Errorf("temp %s", got)
	}
	nc.Write([]byte(strings.Repeat("x", 65)))
	s.Wait(t, wait, "oversized", func() bool { return len(s.MalformedReports()) == 1 })

	read := func() string {
		nc.SetReadDeadline(time.Now().Add(wait))
		b := make([]byte, 100)
		n, err := nc.Read(b) // a connected UDP socket only takes the server's port
		if err != nil {
			t.Fatal(err)
		}
		return string(b[:n])
	}
	nc.Write([]byte("atrsharedName"))
	if got := read(); got != `{"sharedName":"pump-7"}` {
		t.Errorf("attribute response %q", got)
	}
	cmd := c.Commander("Dev", "")
	if _, err := cmd.RPC(context.Background(), protocols.RPCRequest{Method: "rpcMethod1", Params: []byte(`7`)}); err != nil {
		t.Fatal(err)
	}
	if got := read(); got != "7" {
		t.Errorf("rpc %q", got)
	}
	port := nc.LocalAddr().(*net.UDPAddr).Port
	if _, err := c.ConnectorRPC(context.Background(), protocols.RPCRequest{Method: "socket_set",
		Params: []byte(fmt.Sprintf(`"address=127.0.0.1;port=%d;value=hey;"`, port))}); err != nil {
		t.Fatal(err)
	}
	if got := read(); got != "hey" {
		t.Errorf("set %q", got)
	}
}

// A port in use is reported as a link down and retried; Run still ends
// with its context.
func TestBindFailureIsRetried(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	ps := &spec.Problems{}
	root := spec.Parse(ps, "s.json", []byte(fmt.Sprintf(`{"socket": {"port": %d}}`, ln.Addr().(*net.TCPAddr).Port)))
	c, err := NewConnector(protocols.ConnectorConfig{Config: root, Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	s := sinktest.New()
	r := sinktest.Run(t, c, s)
	s.Wait(t, wait, "link down", func() bool { return len(s.Links()) > 0 })
	if l := s.Links()[0]; l.Up || l.Err == nil || !strings.Contains(l.Err.Error(), "address already in use") {
		t.Errorf("link %+v", l)
	}
	if err := r.Stop(); err != nil {
		t.Error(err)
	}
}
