package script

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/industryos/gateway/protocols"
)

var now = time.UnixMilli(1_700_000_000_000)

func mustCompile(t testing.TB, src string, opts Options) *Script {
	t.Helper()
	s, err := Compile("test.star", []byte(src), opts)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// render prints results in one stable line per device.
func render(rs []Result) string {
	var b strings.Builder
	for i, r := range rs {
		if i > 0 {
			b.WriteString(" | ")
		}
		fmt.Fprintf(&b, "%s/%s@%d", r.Device, r.Profile, r.Ts)
		for _, part := range []struct {
			name string
			dps  []protocols.Datapoint
		}{{"attr", r.Attributes}, {"ts", r.Telemetry}} {
			fmt.Fprintf(&b, " %s{", part.name)
			for j, d := range part.dps {
				if j > 0 {
					b.WriteString(",")
				}
				fmt.Fprintf(&b, "%s=%s", d.Key, d.Value.String())
			}
			b.WriteString("}")
		}
	}
	return b.String()
}

func TestUplink(t *testing.T) {
	for _, tc := range []struct {
		name, src, topic, payload, want string
		config                          string
	}{
		{
			name:    "json",
			src:     "def uplink(msg):\n  d = msg.json()\n  return {'device': d['id'], 'telemetry': {'t': d['t'] / 10}, 'attributes': {'fw': d['fw']}}\n",
			payload: `{"id":"s1","t":215,"fw":"1.2"}`,
			want:    "s1/default@1700000000000 attr{fw=1.2} ts{t=21.5}",
		},
		{
			name:    "topic, profile, ts and config",
			src:     "def uplink(msg):\n  return {'device': msg.topic.split('/')[-1], 'profile': msg.config['profile'], 'ts': 5, 'telemetry': {'n': len(msg.payload)}}\n",
			topic:   "a/b/dev9",
			payload: "abc",
			config:  `{"profile":"Thermostat"}`,
			want:    "dev9/Thermostat@5 attr{} ts{n=3}",
		},
		{
			name:    "several devices",
			src:     "def uplink(msg):\n  return [{'device': k, 'telemetry': {'v': v}} for k, v in msg.json().items()]\n",
			payload: `{"a":1,"b":true}`,
			want:    "a/default@1700000000000 attr{} ts{v=1} | b/default@1700000000000 attr{} ts{v=true}",
		},
		{
			name:    "telemetry with timestamps and a JSON value",
			src:     "def uplink(msg):\n  return {'device': 'd', 'attributes': {'cfg': {'x': [1, 2]}}, 'telemetry': [{'ts': 1, 'values': {'v': 1}}, {'ts': 2, 'values': {'v': 2}}]}\n",
			payload: "",
			want:    `d/default@1 attr{cfg={"x":[1,2]}} ts{v=1} | d/default@2 attr{} ts{v=2}`,
		},
		{
			name:    "nothing",
			src:     "def uplink(msg):\n  return None\n",
			payload: "x",
			want:    "",
		},
		{
			name:    "bytes",
			src:     "def uplink(msg):\n  b = binary.list(msg.payload)\n  return {'device': 'd', 'telemetry': {'u16': binary.int(msg.payload[0:2]), 'le': binary.int(b[0:2], 'little'), 's8': binary.int(b[2:3], signed=True), 'f': binary.float(msg.payload[3:7]), 'hex': binary.hex(b[0:2])}}\n",
			payload: "\x01\x02\xff\x41\x20\x00\x00",
			want:    "d/default@1700000000000 attr{} ts{f=10,hex=0102,le=513,s8=-1,u16=258}",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := mustCompile(t, tc.src, Options{Config: json.RawMessage(tc.config)})
			got, err := s.Uplink(Message{Payload: []byte(tc.payload), Topic: tc.topic, Now: now})
			if err != nil {
				t.Fatal(err)
			}
			if r := render(got); r != tc.want {
				t.Fatalf("got  %s\nwant %s", r, tc.want)
			}
		})
	}
}

func TestCompileErrors(t *testing.T) {
	for _, tc := range []struct{ name, src, want string }{
		{"syntax", "def uplink(msg):\n  return {'device': }\n", "test.star:2:21: got '}', want primary expression"},
		{"undefined", "def uplink(msg):\n  return foo(msg)\n", "test.star:2:10: undefined: foo"},
		{"load", "load('x.star', 'y')\ndef uplink(msg): pass\n", "test.star:1:1: load is not available: a script is one file and reads no other"},
		{"no entry point", "x = 1\n", "test.star: defines neither uplink(msg) nor downlink(cmd)"},
		{"arity", "def uplink(msg, extra):\n  pass\n", "test.star:1:1: uplink must be a function of one parameter (def uplink(msg):)"},
		{"top level fails", "x = {}['k']\ndef uplink(msg): pass\n", `test.star:1:7: at load: key "k" not in dict`},
		{"top level loops", "while True:\n  pass\ndef uplink(msg): pass\n", "test.star:1:1: at load: stopped after too many steps (endless loop?)"},
		{"open", "def uplink(msg):\n  return open('/etc/passwd')\n", "test.star:2:10: undefined: open"},
		{"augmented on an index", "def uplink(msg):\n  l = [1]\n  l[0] *= 2\n", "test.star:3:8: *= on anything but a plain name is not supported in scripts; write x = x * y"},
		{"bad config", "def uplink(msg): pass\n", "test.star: extensionConfig: json.decode: at offset 0, unexpected character 'x'"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := json.RawMessage(nil)
			if tc.name == "bad config" {
				cfg = json.RawMessage("x")
			}
			_, err := Compile("test.star", []byte(tc.src), Options{Config: cfg})
			if !errors.Is(err, ErrCompile) || err.Error() != tc.want {
				t.Fatalf("err = %v\nwant  %s", err, tc.want)
			}
		})
	}
}

// A script that loops forever or raises is stopped, counted and named
// with its file and line; the next call on the same script works.
func TestRunawayAndRaise(t *testing.T) {
	src := `
def uplink(msg):
    if msg.topic == "loop":
        n = 0
        while True:
            n += 1
    if msg.topic == "raise":
        fail("bad frame")
    if msg.topic == "grow":
        s = "x"
        for i in range(100):
            s = s + s
    if msg.topic == "recurse":
        return uplink(msg)
    if msg.topic == "bad result":
        return {"device": "d", "telemetry": {"v": None}}
    return {"device": "ok", "telemetry": {"v": 1}}
`
	s := mustCompile(t, src, Options{MaxSteps: 100_000})
	for _, tc := range []struct {
		topic, want string
		stepLimit   bool
	}{
		{"loop", "test.star:6:15: in uplink: stopped after too many steps (endless loop?)", true},
		{"raise", "test.star:8:13: in uplink: fail: bad frame", false},
		{"grow", "test.star:12:19: in uplink: concatenation of 2097152 elements is larger than the 1048576 allowed", false},
		{"recurse", "test.star:3:8: in uplink: function uplink called recursively", false},
		{"bad result", "test.star:2:1: in uplink: returned telemetry: v: value is None", false},
	} {
		start := time.Now()
		_, err := s.Uplink(Message{Topic: tc.topic, Now: now})
		if !errors.Is(err, ErrRun) || errors.Is(err, ErrStepLimit) != tc.stepLimit || err.Error() != tc.want {
			t.Errorf("%s: err = %v\nwant  %s", tc.topic, err, tc.want)
		}
		if d := time.Since(start); d > 10*time.Second {
			t.Errorf("%s: took %v", tc.topic, d)
		}
		got, err := s.Uplink(Message{Topic: "fine", Now: now})
		if err != nil || render(got) != "ok/default@1700000000000 attr{} ts{v=1}" {
			t.Fatalf("after %s: %s, %v", tc.topic, render(got), err)
		}
	}
	if st := s.Stats(); st != (Stats{Calls: 10, Failures: 5, StepLimit: 1}) {
		t.Fatalf("stats = %+v", st)
	}
}

func TestDownlink(t *testing.T) {
	src := `
def downlink(cmd):
    if cmd.kind == "rpc":
        return {"topic": cmd.device + "/rpc/" + cmd.method, "payload": {"id": cmd.id, "v": cmd.params["v"]}, "qos": 1, "reply": {"sent": True}}
    return [{"topic": cmd.device + "/attr/" + k, "payload": str(v), "retain": True} for k, v in cmd.values.items()]
`
	s := mustCompile(t, src, Options{})
	out, err := s.Downlink(RPCCommand(protocols.RPCRequest{ID: 7, Device: "d1", Method: "set", Params: json.RawMessage(`{"v":2.5}`)}))
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != 1 || out[0].Topic != "d1/rpc/set" || string(out[0].Payload) != `{"id":7,"v":2.5}` || out[0].QoS != 1 || string(out[0].Reply) != `{"sent":true}` {
		t.Fatalf("rpc: %+v", out)
	}
	out, err = s.Downlink(AttributesCommand(protocols.AttributeUpdate{Device: "d1", Values: map[string]json.RawMessage{"b": json.RawMessage(`"x"`), "a": json.RawMessage(`3`)}}))
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != 2 || out[0].Topic != "d1/attr/a" || string(out[0].Payload) != "3" || !out[0].Retain || out[1].Topic != "d1/attr/b" || string(out[1].Payload) != "x" {
		t.Fatalf("attributes: %+v", out)
	}
	bad := mustCompile(t, "def downlink(cmd):\n  return {'topic': 1}\n", Options{})
	if _, err := bad.Downlink(Command{Kind: KindRPC, Method: "m"}); err == nil || err.Error() != `test.star:1:1: in downlink: returned "topic" is a int, want a string` {
		t.Fatalf("err = %v", err)
	}
	if _, err := bad.Uplink(Message{}); !errors.Is(err, ErrNoUplink) {
		t.Fatalf("err = %v", err)
	}
}

func TestBinary(t *testing.T) {
	s := mustCompile(t, `
def uplink(msg):
    return {"device": "d", "telemetry": {
        "fromhex": str(binary.fromhex("0x1A 2b")),
        "pack_int": binary.hex(binary.pack_int(-2, 2)),
        "pack_int_le": binary.hex(binary.pack_int(258, 4, "little")),
        "pack_float": binary.hex(binary.pack_float(1.5)),
        "pack_double": binary.hex(binary.pack_float(1.5, 8, "little")),
        "roundtrip": binary.float(binary.pack_float(2.25, 8)),
        "json": json.encode({"a": [1, 2]}),
        "math": math.floor(2.7),
        "round": round(2.675, 2),
    }}
`, Options{})
	got, err := s.Uplink(Message{Now: now})
	if err != nil {
		t.Fatal(err)
	}
	want := `d/default@1700000000000 attr{} ts{fromhex=[26, 43],json={"a":[1,2]},math=2,pack_double=000000000000f83f,pack_float=3fc00000,pack_int=fffe,pack_int_le=02010000,round=2.67,roundtrip=2.25}`
	if r := render(got); r != want {
		t.Fatalf("got  %s\nwant %s", r, want)
	}
	for src, want := range map[string]string{
		"binary.pack_int(256, 1)":   "binary.pack_int: 256 does not fit in 1 bytes",
		"binary.float([1, 2, 3])":   "binary.float: 3 bytes, want 4 or 8",
		"binary.int([300])":         "binary.int: element 0 is 300, want an int 0..255",
		"binary.fromhex('zz')":      "binary.fromhex: encoding/hex: invalid byte: U+007A 'z'",
		"binary.int(b'', 'middle')": `binary.int: order "middle" is neither "big" nor "little"`,
		"'ab' * 10000000":           "repetition of 20000000 elements is larger than the 1048576 allowed",
		"list(range(10000000))":     "range of 10000000 elements is larger than the 1048576 allowed",
		"msg.json()":                "payload is not JSON: json.decode: at offset 0, unexpected character 'n'",
	} {
		s := mustCompile(t, "def uplink(msg):\n  return "+src+"\n", Options{})
		_, err := s.Uplink(Message{Payload: []byte("not json"), Now: now})
		if err == nil || !strings.HasSuffix(err.Error(), ": in uplink: "+want) {
			t.Errorf("%s: err = %v\nwant suffix %s", src, err, want)
		}
	}
}

// One compiled script serves concurrent callers (run with -race).
func TestConcurrent(t *testing.T) {
	s := mustCompile(t, "def uplink(msg):\n  d = msg.json()\n  return {'device': d['n'], 'telemetry': {'v': d['v'] * 2}}\n", Options{})
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 200 {
				got, err := s.Uplink(Message{Payload: fmt.Appendf(nil, `{"n":"d%d","v":%d}`, g, i), Now: now})
				if err != nil || len(got) != 1 || got[0].Device != fmt.Sprintf("d%d", g) || got[0].Telemetry[0].Value.I != int64(2*i) {
					t.Errorf("%v %v", got, err)
					return
				}
			}
		}()
	}
	wg.Wait()
}

func TestPrint(t *testing.T) {
	var lines []string
	s := mustCompile(t, "def uplink(msg):\n  print('got', len(msg.payload))\n", Options{Print: func(file, msg string) { lines = append(lines, file+": "+msg) }})
	if _, err := s.Uplink(Message{Payload: []byte("abc")}); err != nil {
		t.Fatal(err)
	}
	if len(lines) != 1 || lines[0] != "test.star: got 3" {
		t.Fatalf("lines = %q", lines)
	}
}

// TestDownlinkKeys: each connector's key set is read, a key of another set
// is refused with the keys that are allowed, and Reply takes the last one.
func TestDownlinkKeys(t *testing.T) {
	s := mustCompile(t, `
def downlink(cmd):
    p = cmd.params
    if cmd.method == "http":
        return {"url": "/set/" + cmd.device, "method": "put", "headers": {"X-Id": str(cmd.id)}, "payload": p}
    if cmd.method == "can":
        return [{"nodeId": 0x1ABCDEF, "isExtendedId": True, "isFd": True, "bitrateSwitch": True, "payload": binary.pack_int(p, 2)},
                {"nodeId": 5, "payload": b"\x01", "reply": {"n": 2}}]
    if cmd.method == "stream":
        return {"payload": "txt\n", "reply": "done"}
    return {"topic": "t", "payload": ""}
`, Options{})
	rpc := func(m, params string) Command {
		return RPCCommand(protocols.RPCRequest{ID: 3, Device: "d1", Method: m, Params: json.RawMessage(params)})
	}
	out, err := s.DownlinkFor(rpc("http", `{"v":1}`), HTTPKeys)
	if err != nil || len(out) != 1 || out[0].URL != "/set/d1" || out[0].Method != "PUT" || out[0].Headers["X-Id"] != "3" || string(out[0].Payload) != `{"v":1}` {
		t.Fatalf("http: %+v, %v", out, err)
	}
	out, err = s.DownlinkFor(rpc("can", `258`), FrameKeys)
	if err != nil || len(out) != 2 || out[0].NodeID != 0x1ABCDEF || !out[0].Extended || !out[0].FD || !out[0].BitSwitch ||
		string(out[0].Payload) != "\x01\x02" || out[1].NodeID != 5 || out[1].Extended {
		t.Fatalf("can: %+v, %v", out, err)
	}
	if r := Reply(out, DefaultReply); string(r) != `{"n":2}` {
		t.Fatalf("reply = %s", r)
	}
	out, err = s.DownlinkFor(rpc("stream", ``), StreamKeys)
	if err != nil || len(out) != 1 || string(out[0].Payload) != "txt\n" || string(Reply(out, DefaultReply)) != `"done"` {
		t.Fatalf("stream: %+v, %v", out, err)
	}
	if r := Reply(nil, DefaultReply); string(r) != `{"success":true}` {
		t.Fatalf("default reply = %s", r)
	}
	_, err = s.DownlinkFor(rpc("mqtt", ``), StreamKeys)
	if err == nil || !strings.Contains(err.Error(), `returned unknown key "topic" (want payload, reply)`) {
		t.Fatalf("topic for a stream: %v", err)
	}
	_, err = s.DownlinkFor(rpc("http", `1`), FrameKeys)
	if err == nil || !strings.Contains(err.Error(), `(want nodeId, isExtendedId, isFd, bitrateSwitch, payload, reply)`) {
		t.Fatalf("url for a frame: %v", err)
	}
	bad := mustCompile(t, "def downlink(cmd):\n  return {'nodeId': 0x20000000}\n", Options{})
	if _, err := bad.DownlinkFor(rpc("x", ``), FrameKeys); err == nil || !strings.Contains(err.Error(), "want a CAN id") {
		t.Fatalf("big nodeId: %v", err)
	}
	if _, err := LoadDownlink(writeScript(t, "def uplink(msg):\n  return None\n"), Options{}); !errors.Is(err, ErrCompile) || !strings.Contains(err.Error(), "defines no downlink(cmd)") {
		t.Fatalf("LoadDownlink of an uplink-only script: %v", err)
	}
}

func writeScript(t *testing.T, src string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "s.star")
	if err := os.WriteFile(p, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}
