package exec

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	osexec "os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/industryos/gateway/protocols"
	"github.com/industryos/gateway/protocols/kit/sinktest"
	"github.com/industryos/gateway/protocols/kit/spec"
)

const wait = 20 * time.Second

// newConnector builds a connector from a file written into a temporary
// directory with the programs it runs.
func newConnector(t testing.TB, file string, programs map[string]string, opts ...Option) *Connector {
	t.Helper()
	dir := t.TempDir()
	for name, src := range programs {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(src), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	var ps spec.Problems
	root := spec.Parse(&ps, "exec.json", []byte(file))
	if root == nil {
		t.Fatal(ps.Err())
	}
	c, err := NewConnector(protocols.ConnectorConfig{Name: "exec-test", Type: "exec", Config: root, File: filepath.Join(dir, "exec.json"), Logger: zerolog.Nop()}, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// A program that prints records, a malformed line and exits: its records
// arrive, the bad lines are counted, the link goes down with the exit
// status, and it is started again.
func TestRecordsMalformedAndRestart(t *testing.T) {
	c := newConnector(t, `{"command": ["/bin/sh", "once.sh"], "restartDelay": 20, "maxRestartDelay": 100}`, map[string]string{"once.sh": `
echo '{"device": "d1", "profile": "p", "ts": 1700000000000, "telemetry": {"t": 21.5, "n": 3, "on": true, "s": "x", "obj": {"a": [1]}}}'
echo 'not json'
echo '{"device": "d1"}'
echo '{"device": "d2", "attributes": {"fw": "1.0"}, "extra": 1}'
echo '{"device": "d2", "attributes": {"fw": "1.0"}}'
echo "run $$" >&2
exit 3
`})
	s := sinktest.New()
	sinktest.Run(t, c, s)
	s.Wait(t, wait, "two runs", func() bool { return c.Stats().Exits >= 2 && len(s.DataPushes()) >= 4 })
	p := s.DataPushes()[0]
	if p.Device != "d1" || p.Profile != "p" || p.Ts.UnixMilli() != 1700000000000 {
		t.Fatalf("push %+v", p)
	}
	var got []string
	for _, d := range p.Reading.Telemetry {
		got = append(got, d.Key+"="+d.Value.String())
	}
	if strings.Join(got, " ") != `n=3 obj={"a":[1]} on=true s=x t=21.5` {
		t.Fatalf("telemetry %v", got)
	}
	if p2 := s.DataPushes()[1]; p2.Device != "d2" || p2.Profile != "default" || p2.Reading.Attributes[0].Value.String() != "1.0" {
		t.Fatalf("push %+v", p2)
	}
	mal := s.MalformedReports()
	if len(mal) < 3 || !errors.Is(mal[0].Err, ErrMalformed) || !strings.Contains(mal[0].Err.Error(), "not a JSON object") ||
		!strings.Contains(mal[1].Err.Error(), `device "d1": neither telemetry nor attributes`) || !strings.Contains(mal[2].Err.Error(), `unknown key "extra"`) {
		t.Fatalf("malformed %v", mal)
	}
	links := s.Links()
	if len(links) < 3 || !links[0].Up || links[1].Up || !strings.Contains(links[1].Err.Error(), "exited: exit status 3") || !links[2].Up {
		t.Fatalf("links %v", links)
	}
	if st := c.Stats(); st.Starts < 2 || st.Malformed < 6 {
		t.Fatalf("stats %+v", st)
	}
}

// A program that cannot start is retried, with the reason on the link.
func TestMissingProgram(t *testing.T) {
	c := newConnector(t, `{"command": ["./nope"], "restartDelay": 20, "maxRestartDelay": 40}`, nil)
	s := sinktest.New()
	sinktest.Run(t, c, s)
	s.Wait(t, wait, "two failed starts", func() bool { return len(s.Links()) >= 2 })
	if err := s.Links()[0].Err; err == nil || !strings.Contains(err.Error(), "start: fork/exec ./nope: no such file or directory") {
		t.Fatalf("link %v", err)
	}
}

const rpcProgram = `
import json, sys
print(json.dumps({"device": "pump", "telemetry": {"rpm": 1200}}), flush=True)
for line in sys.stdin:
    cmd = json.loads(line)
    if cmd["type"] == "attributes":
        print(json.dumps({"device": cmd["device"], "attributes": {"applied": cmd["values"]}}), flush=True)
    elif cmd["method"] == "fail":
        print(json.dumps({"id": cmd["id"], "error": "cannot"}), flush=True)
    elif cmd["method"] == "silent":
        pass
    else:
        print(json.dumps({"id": cmd["id"], "reply": {"echo": cmd["params"], "method": cmd["method"]}}), flush=True)
`

// Commands reach a Python program on stdin and its reply lines answer
// them; an unanswered RPC times out; a command while the program is down
// fails at once.
func TestCommandsPython(t *testing.T) {
	py, err := osexec.LookPath("python3")
	if err != nil {
		t.Skip("python3 not installed")
	}
	c := newConnector(t, `{"command": ["`+py+`", "-u", "dev.py"], "rpcTimeout": 0.3}`, map[string]string{"dev.py": rpcProgram})
	cm := c.Commander("pump", "")
	ctx := context.Background()
	if _, err := cm.RPC(ctx, protocols.RPCRequest{ID: 1, Device: "pump", Method: "m"}); !errors.Is(err, ErrNotRunning) || !errors.Is(err, protocols.ErrIO) {
		t.Fatalf("before start: %v", err)
	}
	s := sinktest.New()
	r := sinktest.Run(t, c, s)
	s.Wait(t, wait, "the first record", func() bool { _, ok := s.Latest("pump", "rpm"); return ok })
	res, err := cm.RPC(ctx, protocols.RPCRequest{ID: 7, Device: "pump", Method: "set", Params: json.RawMessage(`{"speed": 3}`)})
	if err != nil || string(res) != `{"echo":{"speed":3},"method":"set"}` {
		t.Fatalf("rpc %s %v", res, err)
	}
	if _, err := cm.RPC(ctx, protocols.RPCRequest{Device: "pump", Method: "fail"}); err == nil || !strings.Contains(err.Error(), "the program answered: cannot") {
		t.Fatalf("fail: %v", err)
	}
	if _, err := cm.RPC(ctx, protocols.RPCRequest{Device: "pump", Method: "silent"}); !errors.Is(err, protocols.ErrTimeout) {
		t.Fatalf("silent: %v", err)
	}
	if _, err := cm.UpdateAttributes(ctx, map[string]json.RawMessage{"mode": json.RawMessage(`"eco"`)}); err != nil {
		t.Fatal(err)
	}
	s.Wait(t, wait, "the applied attribute", func() bool { _, ok := s.Latest("pump", "applied"); return ok })
	if v, _ := s.Latest("pump", "applied"); v.String() != `{"mode":"eco"}` {
		t.Fatalf("applied %v", v)
	}
	if err := r.Stop(); err != nil {
		t.Fatal(err)
	}
	if st := c.Stats(); st.Starts != 1 || st.Exits != 1 || st.Malformed != 0 {
		t.Fatalf("stats %+v", st)
	}
}

// The example program reads /proc/loadavg.
func TestLoadavgExample(t *testing.T) {
	if _, err := os.Stat("/proc/loadavg"); err != nil {
		t.Skip("no /proc/loadavg")
	}
	script, err := filepath.Abs("../../examples/exec/loadavg.sh")
	if err != nil {
		t.Fatal(err)
	}
	c := newConnector(t, `{"command": ["/bin/sh", "`+script+`", "0.05"], "env": {"DEVICE": "box-1"}}`, nil)
	s := sinktest.New()
	sinktest.Run(t, c, s)
	s.Wait(t, wait, "two readings", func() bool { return len(s.Values("box-1", "load1")) >= 2 })
	p := s.DataPushes()[0]
	var keys []string
	for _, d := range p.Reading.Telemetry {
		keys = append(keys, d.Key)
	}
	if p.Profile != "host" || strings.Join(keys, ",") != "load1,load15,load5,processes,running" {
		t.Fatalf("push %+v", p)
	}
	if v := p.Reading.Telemetry[3].Value; v.Kind != protocols.KindInt || v.I < 1 {
		t.Fatalf("processes %v", v)
	}
}

// Stopping the connector does not wait for a program's children: the
// example's sleep holds stdout, and Run still returns at once.
func TestStopDoesNotWaitForChildren(t *testing.T) {
	c := newConnector(t, `{"command": ["/bin/sh", "slow.sh"]}`, map[string]string{"slow.sh": `
echo '{"device": "d", "telemetry": {"v": 1}}'
sleep 30
`})
	s := sinktest.New()
	r := sinktest.Run(t, c, s)
	s.Wait(t, wait, "the record", func() bool { _, ok := s.Latest("d", "v"); return ok })
	start := time.Now()
	if err := r.Stop(); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("stop took %v", d)
	}
}
