package tests

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	osexec "os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/industryos/gateway/protocols/grpcapi/pb"
	"github.com/industryos/gateway/protocols/kit/testpeer"
)

// writeGRPCConfig writes a main file with the gRPC server on grpcPort and
// one "grpc" connector "ext" of key, and returns its path.
func writeGRPCConfig(t testing.TB, dir, brokerAddr string, grpcPort int, key, storage string) string {
	t.Helper()
	host, port, err := net.SplitHostPort(brokerAddr)
	if err != nil {
		t.Fatal(err)
	}
	p, _ := strconv.Atoi(port)
	main := map[string]any{
		"thingsboard": map[string]any{"host": host, "port": p, "security": map[string]any{"accessToken": "test-token"}},
		"storage":     json.RawMessage(storage),
		"grpc":        map[string]any{"enabled": true, "serverPort": grpcPort, "keepAliveTimeMs": 10000, "keepAliveTimeoutMs": 5000},
		"connectors":  []map[string]any{{"type": "grpc", "name": "ext", "key": key, "configuration": "ext.json"}},
	}
	raw, _ := json.MarshalIndent(main, "", "  ")
	path := filepath.Join(dir, "tb_gateway.json")
	for f, body := range map[string][]byte{path: raw, filepath.Join(dir, "ext.json"): []byte(`{"name": "ext", "devices": ["pump"]}`)} {
		if err := os.WriteFile(f, body, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return path
}

// connectorProc is a gRPC connector process as the test plays it: one
// registered stream, whose messages from the gateway are collected.
type connectorProc struct {
	st     pb.TBGatewayProtoService_StreamClient
	cancel context.CancelFunc

	mu   sync.Mutex
	got  []*pb.FromServiceMessage
	err  error
	sent sync.Mutex
}

// registerConnector connects to the gateway's gRPC server and registers
// with key, retrying while the gateway starts (no listener yet, or the
// connector not attached yet: NOT_FOUND).
func registerConnector(t *testing.T, addr, key string) *connectorProc {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	cl := pb.NewTBGatewayProtoServiceClient(conn)
	var p *connectorProc
	testpeer.Eventually(t, 30*time.Second, "registration of key "+key, func() error {
		ctx, cancel := context.WithCancel(context.Background())
		st, err := cl.Stream(ctx)
		if err == nil {
			err = st.Send(&pb.FromConnectorMessage{RegisterConnectorMsg: &pb.RegisterConnectorMsg{ConnectorKey: key}})
		}
		var m *pb.FromServiceMessage
		if err == nil {
			m, err = st.Recv()
		}
		if err == nil && m.GetResponse().GetStatus() != pb.ResponseStatus_SUCCESS {
			err = fmt.Errorf("registration answered %v", m.GetResponse().GetStatus())
		}
		if err != nil {
			cancel()
			return err
		}
		if name := m.GetConnectorConfigurationMsg().GetConnectorName(); name != "ext" {
			cancel()
			t.Fatalf("registered as %q, want ext", name)
		}
		p = &connectorProc{st: st, cancel: cancel}
		return nil
	})
	t.Cleanup(p.cancel)
	go p.read()
	return p
}

func (p *connectorProc) read() {
	for {
		m, err := p.st.Recv()
		p.mu.Lock()
		if err != nil {
			p.err = err
			p.mu.Unlock()
			return
		}
		p.got = append(p.got, m)
		p.mu.Unlock()
	}
}

func (p *connectorProc) send(t *testing.T, m *pb.FromConnectorMessage) {
	t.Helper()
	p.sent.Lock()
	defer p.sent.Unlock()
	if err := p.st.Send(m); err != nil {
		t.Fatal(err)
	}
}

// waitAnswers waits for n SUCCESS answers in all (a FAILURE fails the test).
func (p *connectorProc) waitAnswers(t *testing.T, n int) {
	t.Helper()
	testpeer.Eventually(t, 30*time.Second, fmt.Sprintf("%d answers", n), func() error {
		p.mu.Lock()
		defer p.mu.Unlock()
		ok := 0
		for _, m := range p.got {
			switch m.GetResponse().GetStatus() {
			case pb.ResponseStatus_SUCCESS:
				if m.GetResponse() != nil {
					ok++
				}
			case pb.ResponseStatus_UNKNOWN:
			default:
				t.Fatalf("answer %v", m)
			}
		}
		if ok < n {
			return fmt.Errorf("%d answers (stream error %v)", ok, p.err)
		}
		return nil
	})
}

// waitRPC waits for an RPC request to device and returns it.
func (p *connectorProc) waitRPC(t *testing.T, device string) *pb.ToDeviceRpcRequestMsg {
	t.Helper()
	var req *pb.ToDeviceRpcRequestMsg
	testpeer.Eventually(t, 30*time.Second, "rpc request for "+device, func() error {
		p.mu.Lock()
		defer p.mu.Unlock()
		for _, m := range p.got {
			if r := m.GetGatewayDeviceRpcRequestMsg(); r != nil && r.GetDeviceName() == device {
				req = r.GetRpcRequestMsg()
				return nil
			}
		}
		return fmt.Errorf("none in %d messages (stream error %v)", len(p.got), p.err)
	})
	return req
}

func telemetryMsg(device string, ts int64, kvs ...*pb.KeyValueProto) *pb.FromConnectorMessage {
	return &pb.FromConnectorMessage{GatewayTelemetryMsg: &pb.GatewayTelemetryMsg{Msg: []*pb.TelemetryMsg{{DeviceName: device,
		Msg: &pb.PostTelemetryMsg{TsKvList: []*pb.TsKvListProto{{Ts: ts, Kv: kvs}}}}}}}
}

// seen reports whether a message on topic contains every part.
func seen(msgs []testpeer.Msg, topic string, parts ...string) bool {
	for _, m := range testpeer.OnTopic(msgs, topic) {
		all := true
		for _, p := range parts {
			all = all && strings.Contains(string(m.Payload), p)
		}
		if all {
			return true
		}
	}
	return false
}

// TestGRPCConnectorBinary: a connector process written in Go registers with
// the built binary, connects a device and sends telemetry and attributes,
// which reach the platform (mosquitto); an RPC the platform publishes
// reaches the process, and its answer reaches the platform.
func TestGRPCConnectorBinary(t *testing.T) {
	platform := testpeer.StartMosquitto(t)
	plat := testpeer.Subscribe(t, platform.Addr(), "v1/gateway/#")
	grpcPort := testpeer.FreePort(t)
	cfg := writeGRPCConfig(t, t.TempDir(), platform.Addr(), grpcPort, "go-key", `{"type": "memory"}`)
	startBinary(t, cfg)

	p := registerConnector(t, net.JoinHostPort("127.0.0.1", strconv.Itoa(grpcPort)), "go-key")
	p.send(t, &pb.FromConnectorMessage{ConnectMsg: &pb.ConnectMsg{DeviceName: "pump", DeviceType: "pumps"}})
	p.send(t, telemetryMsg("pump", 1700000000000,
		&pb.KeyValueProto{Key: "rpm", Type: pb.KeyValueType_LONG_V, LongV: 1500},
		&pb.KeyValueProto{Key: "temp", Type: pb.KeyValueType_DOUBLE_V, DoubleV: 41.5},
		&pb.KeyValueProto{Key: "running", Type: pb.KeyValueType_BOOLEAN_V, BoolV: true}))
	p.send(t, &pb.FromConnectorMessage{GatewayAttributesMsg: &pb.GatewayAttributesMsg{Msg: []*pb.AttributesMsg{{DeviceName: "pump",
		Msg: &pb.PostAttributeMsg{Kv: []*pb.KeyValueProto{{Key: "model", Type: pb.KeyValueType_STRING_V, StringV: "P-100"}}}}}}})
	p.waitAnswers(t, 3)
	plat.WaitFor(t, 30*time.Second, func(msgs []testpeer.Msg) bool {
		return seen(msgs, "v1/gateway/connect", `"pump"`, `"pumps"`) &&
			seen(msgs, "v1/gateway/telemetry", `"pump"`, `"ts":1700000000000`, `"rpm":1500`, `"temp":41.5`, `"running":true`) &&
			seen(msgs, "v1/gateway/attributes", `"pump"`, `"model":"P-100"`)
	})

	pctx, pcancel := contextTimeout(10 * time.Second)
	defer pcancel()
	if err := plat.Publish(pctx, "v1/gateway/rpc", []byte(`{"device":"pump","data":{"id":5,"method":"setSpeed","params":{"rpm":900}}}`), 1); err != nil {
		t.Fatal(err)
	}
	req := p.waitRPC(t, "pump")
	if req.GetMethodName() != "setSpeed" || req.GetParams() != `{"rpm":900}` || req.GetRequestId() != 5 {
		t.Fatalf("rpc request %v", req)
	}
	p.send(t, &pb.FromConnectorMessage{GatewayRpcResponseMsg: &pb.GatewayRpcResponseMsg{DeviceName: "pump", Id: req.GetRequestId(), Data: `{"rpm":900,"ok":true}`}})
	plat.WaitFor(t, 30*time.Second, func(msgs []testpeer.Msg) bool {
		for _, m := range testpeer.OnTopic(msgs, "v1/gateway/rpc") {
			if string(m.Payload) == `{"device":"pump","id":5,"data":{"rpm":900,"ok":true}}` {
				return true
			}
		}
		return false
	})
}

// TestGRPCConnectorCrash: a connector process that goes away without
// unregistering is a crashed connector. What it sent while the platform was
// down and the gateway answered (committed to the Badger journal) is
// delivered when the platform returns, its device is disconnected, and a
// new process registers with the same key and is served.
func TestGRPCConnectorCrash(t *testing.T) {
	platform := testpeer.StartMosquitto(t)
	plat := testpeer.Subscribe(t, platform.Addr(), "v1/gateway/#")
	platform.Stop()
	grpcPort := testpeer.FreePort(t)
	dir := t.TempDir()
	cfg := writeGRPCConfig(t, dir, platform.Addr(), grpcPort, "crash-key",
		`{"type": "badger", "path": "`+filepath.Join(dir, "journal")+`"}`)
	startBinary(t, cfg)
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(grpcPort))

	p := registerConnector(t, addr, "crash-key")
	p.send(t, &pb.FromConnectorMessage{ConnectMsg: &pb.ConnectMsg{DeviceName: "meter", DeviceType: "meters"}})
	const n = 20
	for i := range n {
		p.send(t, telemetryMsg("meter", 1700000000000+int64(i), &pb.KeyValueProto{Key: "kwh", Type: pb.KeyValueType_LONG_V, LongV: int64(i)}))
	}
	p.waitAnswers(t, n+1) // every value committed: the platform is still down
	p.cancel()            // the process dies: no unregisterConnectorMsg

	platform.Restart()
	plat.WaitFor(t, 60*time.Second, func(msgs []testpeer.Msg) bool {
		got, err := telemetry(msgs)
		if err != nil {
			return false
		}
		for i := range n {
			if _, ok := got[point{"meter", 1700000000000 + int64(i)}]; !ok {
				return false
			}
		}
		return seen(msgs, "v1/gateway/disconnect", `"meter"`)
	})

	// The key is free again: a new process registers and is served.
	p2 := registerConnector(t, addr, "crash-key")
	p2.send(t, telemetryMsg("meter", 1700000001000, &pb.KeyValueProto{Key: "kwh", Type: pb.KeyValueType_LONG_V, LongV: 100}))
	p2.waitAnswers(t, 1)
	plat.WaitFor(t, 30*time.Second, func(msgs []testpeer.Msg) bool {
		return seen(msgs, "v1/gateway/telemetry", `"meter"`, `"ts":1700000001000`, `"kwh":100`)
	})
}

// TestGRPCPythonConnectorBinary: the same path with a connector process in
// Python (Debian's python3-grpcio, stubs generated from our .proto at test
// time): protocols/grpcapi/testdata/client.py sends telemetry for "py-dev"
// and answers one RPC, then unregisters.
func TestGRPCPythonConnectorBinary(t *testing.T) {
	py := "/usr/bin/python3"
	if osexec.Command(py, "-c", "import grpc, grpc_tools").Run() != nil {
		t.Skip("python3-grpcio / python3-grpc-tools not installed")
	}
	stubs := t.TempDir()
	if out, err := osexec.Command(py, "-m", "grpc_tools.protoc", "-I../protocols/grpcapi/pb", "--python_out="+stubs,
		"--grpc_python_out="+stubs, "../protocols/grpcapi/pb/messages.proto").CombinedOutput(); err != nil {
		t.Fatalf("generating python stubs: %v\n%s", err, out)
	}
	platform := testpeer.StartMosquitto(t)
	plat := testpeer.Subscribe(t, platform.Addr(), "v1/gateway/#")
	grpcPort := testpeer.FreePort(t)
	cfg := writeGRPCConfig(t, t.TempDir(), platform.Addr(), grpcPort, "py-key", `{"type": "memory"}`)
	startBinary(t, cfg)

	script, _ := filepath.Abs("../protocols/grpcapi/testdata/client.py")
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	// The client exits when its registration is refused (the gateway's
	// server not listening yet, or the connector not attached): start it
	// again until it registers.
	var run *pyRun
	testpeer.Eventually(t, 30*time.Second, "python client registered", func() error {
		if run == nil || run.exited() {
			var last string
			if run != nil {
				last = run.output()
			}
			run = startPy(t, ctx, stubs, py, script, net.JoinHostPort("127.0.0.1", strconv.Itoa(grpcPort)), "py-key")
			return fmt.Errorf("client (re)started; last output: %s", last)
		}
		if strings.Contains(run.output(), "registered SUCCESS ext") {
			return nil
		}
		return fmt.Errorf("client output: %s", run.output())
	})
	plat.WaitFor(t, 30*time.Second, func(msgs []testpeer.Msg) bool {
		return seen(msgs, "v1/gateway/telemetry", `"py-dev"`, `"temp":21.5`)
	})
	pctx, pcancel := contextTimeout(10 * time.Second)
	defer pcancel()
	if err := plat.Publish(pctx, "v1/gateway/rpc", []byte(`{"device":"py-dev","data":{"id":3,"method":"ping","params":{}}}`), 1); err != nil {
		t.Fatal(err)
	}
	plat.WaitFor(t, 30*time.Second, func(msgs []testpeer.Msg) bool {
		for _, m := range testpeer.OnTopic(msgs, "v1/gateway/rpc") {
			if string(m.Payload) == `{"device":"py-dev","id":3,"data":{"echo":"ping"}}` {
				return true
			}
		}
		return false
	})
	<-run.done
	if run.err != nil || !strings.Contains(run.output(), "done") {
		t.Fatalf("python client: %v\n%s", run.err, run.output())
	}
}

// pyRun is one run of the Python connector process.
type pyRun struct {
	out  *lineBuffer
	done chan struct{}
	err  error // set before done closes
}

func startPy(t *testing.T, ctx context.Context, stubs string, args ...string) *pyRun {
	t.Helper()
	r := &pyRun{out: &lineBuffer{}, done: make(chan struct{})}
	cmd := osexec.CommandContext(ctx, args[0], args[1:]...)
	cmd.Env = append(os.Environ(), "PYTHONPATH="+stubs)
	cmd.Stdout, cmd.Stderr = r.out, r.out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		r.err = cmd.Wait()
		close(r.done)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-r.done
	})
	return r
}

func (r *pyRun) output() string { return strings.Join(r.out.lines(), "\n") }

func (r *pyRun) exited() bool {
	select {
	case <-r.done:
		return true
	default:
		return false
	}
}
