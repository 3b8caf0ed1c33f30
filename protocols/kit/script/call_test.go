package script

import (
	"errors"
	"testing"
)

// A script with another entry point than uplink/downlink loads with
// Options.Func and is called with a struct argument; the result comes back
// as JSON.
func TestCallNamedEntryPoint(t *testing.T) {
	src := `
def run(event):
    if event.value > event.params["limit"]:
        return [{"handler": "device_write", "params": {"device": event.device, "key": "alarm", "value": 1}}]
    return None
`
	s := mustCompile(t, src, Options{Func: "run"})
	if s.HasUplink() || s.HasDownlink() || !s.Has("run") || s.Has("nope") {
		t.Fatalf("entry points: uplink %v downlink %v run %v", s.HasUplink(), s.HasDownlink(), s.Has("run"))
	}
	out, err := s.Call("run", "event", map[string]any{"value": 85.0, "device": "boiler", "params": map[string]any{"limit": 80.0}})
	if err != nil {
		t.Fatal(err)
	}
	if want := `[{"handler":"device_write","params":{"device":"boiler","key":"alarm","value":1}}]`; string(out) != want {
		t.Fatalf("got %s, want %s", out, want)
	}
	out, err = s.Call("run", "event", map[string]any{"value": 5.0, "device": "boiler", "params": map[string]any{"limit": 80.0}})
	if err != nil || string(out) != "null" {
		t.Fatalf("below the limit: %s, %v", out, err)
	}
}

func TestCallErrors(t *testing.T) {
	for _, tc := range []struct{ name, src, fn, want string }{
		{"missing", "def go(e): pass\n", "run", "test.star: defines no run(...): want a function of one parameter (def run(event):)"},
		{"two params", "def run(a, b): pass\n", "run", "test.star:1:1: run must be a function of one parameter (def run(event):)"},
		{"not a function", "run = 3\n", "run", "test.star: run must be a function of one parameter (def run(event):)"},
	} {
		_, err := Compile("test.star", []byte(tc.src), Options{Func: tc.fn})
		if !errors.Is(err, ErrCompile) || err.Error() != tc.want {
			t.Errorf("%s: got %v, want %s", tc.name, err, tc.want)
		}
	}
	// Without Func a script still needs uplink or downlink: converters keep
	// their check.
	if _, err := Compile("test.star", []byte("def run(e): pass\n"), Options{}); !errors.Is(err, ErrCompile) {
		t.Fatalf("converter without uplink/downlink: %v", err)
	}

	s := mustCompile(t, "def run(event):\n    return event.missing\n", Options{Func: "run"})
	if _, err := s.Call("run", "event", map[string]any{"value": 1}); !errors.Is(err, ErrRun) || err.Error() != `test.star:2:17: in run: "event" struct has no .missing attribute` {
		t.Fatalf("bad attribute: %v", err)
	}
	s = mustCompile(t, "def run(event):\n    return {1: 2}\n", Options{Func: "run"})
	if _, err := s.Call("run", "event", nil); !errors.Is(err, ErrRun) {
		t.Fatalf("non-JSON result: %v", err)
	}
	s = mustCompile(t, "def run(event):\n    while True:\n        pass\n", Options{Func: "run", MaxSteps: 10000})
	_, err := s.Call("run", "event", nil)
	if !errors.Is(err, ErrStepLimit) {
		t.Fatalf("endless loop: %v", err)
	}
	if st := s.Stats(); st.Calls != 1 || st.StepLimit != 1 {
		t.Fatalf("stats %+v", st)
	}
}
