package script

import (
	"errors"
	"testing"
)

// FuzzScript compiles arbitrary source and runs what compiles on an
// arbitrary payload: nothing may panic, and every failure is one of the
// package's errors.
func FuzzScript(f *testing.F) {
	f.Add("def uplink(msg):\n  return {'device': msg.text, 'telemetry': msg.json()}\n", []byte(`{"a":1}`))
	f.Add("def uplink(msg):\n  b = binary.list(msg.payload)\n  return [{'device': str(i), 'telemetry': {'v': binary.int(b[i:i+2])}} for i in range(len(b))]\n", []byte{1, 2, 3})
	f.Add("def downlink(cmd):\n  return {'payload': cmd.params}\n", []byte(`{}`))
	f.Add("def downlink(cmd):\n  return [{'nodeId': cmd.params, 'isFd': True, 'payload': b'1'}, {'url': 'x', 'headers': {'a': 'b'}}]\n", []byte(`5`))
	f.Add("x = [1] * 3\ndef uplink(msg):\n  s = msg.text\n  while True:\n    s += s\n", []byte("ab"))
	f.Fuzz(func(t *testing.T, src string, payload []byte) {
		s, err := Compile("fuzz.star", []byte(src), Options{MaxSteps: 10_000})
		if err != nil {
			if !errors.Is(err, ErrCompile) {
				t.Fatalf("compile error %T %v", err, err)
			}
			return
		}
		if s.HasUplink() {
			if _, err := s.Uplink(Message{Payload: payload, Topic: "t", Now: now}); err != nil && !errors.Is(err, ErrRun) {
				t.Fatalf("uplink error %T %v", err, err)
			}
		}
		if s.HasDownlink() {
			// Every connector's key set reads the same result its own way.
			for _, keys := range []Keys{MessageKeys, HTTPKeys, StreamKeys, FrameKeys} {
				if _, err := s.DownlinkFor(Command{Kind: KindRPC, Method: "m", Params: payload}, keys); err != nil && !errors.Is(err, ErrRun) {
					t.Fatalf("downlink (%s) error %T %v", keys, err, err)
				}
			}
		}
	})
}
