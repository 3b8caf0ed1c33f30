package automation

import (
	"context"
	"errors"
	"sort"
	"strings"
	"testing"

	"github.com/industryos/gateway/actors/automation/handler"
	"github.com/industryos/gateway/protocols"
)

// End to end through the real queue: a task fires a script, the script
// returns a device write, and the write reaches the device write path
// (Env.WriteDevice, what a platform attribute update runs).
func TestScriptReturnedWriteReachesTheDevice(t *testing.T) {
	rec.reset(0)
	r := start(t, `
tasks:
  - name: jump
    trigger: {event: device/boiler/p}
    vars: {limit: boiler.limit}
    actions:
      - handler: script
        params:
          params: {target: plc, from: "{{device}}"}
          source: |
            def run(event):
                if event.previous == None or event.value - event.previous <= event.vars["limit"]:
                    return None
                return [{"handler": "device_write", "params": {"device": event.params["target"], "key": "alarm", "value": event.value - event.previous}}]
      - handler: test_record
        params: {prev: "{{previous}}", now: "{{value}}"}
`, nil, nil)
	r.publish("boiler", "limit", protocols.Int(10))
	r.publish("boiler", "p", protocols.Int(100))
	r.publish("boiler", "p", protocols.Int(105))
	r.publish("boiler", "p", protocols.Int(130))
	waitFor(t, "the script's write at the device", func() bool { return len(r.w.list()) == 1 })
	if got := r.w.list(); got[0] != "plc.alarm=25" {
		t.Fatalf("writes %v", got)
	}
	waitFor(t, "three recorded runs", func() bool { return len(rec.actions()) == 3 })
	got := rec.actions()
	sort.Slice(got, func(i, j int) bool { return got[i].Params["now"].(int64) < got[j].Params["now"].(int64) })
	if got[0].Params["prev"] != nil || got[1].Params["prev"] != int64(100) || got[2].Params["prev"] != int64(105) || got[2].Params["now"] != int64(130) {
		t.Fatalf("previous in templates: %+v", got)
	}
	q := r.eng.Report().Queue
	waitFor(t, "the queue drained", func() bool { q = r.eng.Report().Queue; return q.Depth == 0 })
	// Three script runs, three records, one write.
	if q.Done != 7 || q.Failed != 0 {
		t.Fatalf("queue %+v", q)
	}
}

// "previous" in a condition: a key's first value has none and is skipped
// without an error; a change fires.
func TestConditionOnPrevious(t *testing.T) {
	rec.reset(0)
	r := start(t, `
tasks:
  - {name: changed, trigger: {event: device/+/s}, condition: value != previous, actions: [{handler: test_record, params: {v: "{{value}}"}}]}
`, nil, nil)
	r.publish("a", "s", protocols.String("on"))
	r.publish("a", "s", protocols.String("on"))
	r.publish("a", "s", protocols.String("off"))
	waitFor(t, "three checks", func() bool { return r.eng.Status()[0].Checks == 3 })
	waitFor(t, "one action", func() bool { return len(rec.actions()) == 1 })
	if st := r.eng.Status()[0]; st.LastError != "" || rec.actions()[0].Params["v"] != "off" {
		t.Fatalf("status %+v, actions %+v", st, rec.actions())
	}
}

// A script that loops for ever is stopped by the step limit; its task
// shows the error while the other tasks keep running. A returned action
// naming no handler, or with bad params, fails (named in the status) and
// the good ones still run.
func TestScriptFailuresStayInTheirTask(t *testing.T) {
	rec.reset(0)
	r := start(t, `
tasks:
  - name: loop
    trigger: {event: device/d/x}
    actions:
      - handler: script
        params:
          source: |
            def run(event):
                n = 0
                while True:
                    n += 1
  - name: bad
    trigger: {event: device/d/x}
    actions:
      - handler: script
        params:
          source: |
            def run(event):
                return [
                    {"handler": "nope", "params": {}},
                    {"handler": "device_write", "params": {"device": "plc"}},
                    {"handler": "device_write", "params": {"device": "plc", "key": "k", "value": event.value}},
                ]
  - {name: other, trigger: {event: device/d/x}, actions: [{handler: test_record, params: {v: "{{value}}"}}]}
`, nil, nil)
	r.publish("d", "x", protocols.Int(1))
	waitFor(t, "the other task's action", func() bool { return len(rec.actions()) == 1 })
	waitFor(t, "the good action of the bad script", func() bool { return len(r.w.list()) == 1 && r.w.list()[0] == "plc.k=1" })
	status := func(name string) Status {
		for _, s := range r.eng.Status() {
			if s.Name == name {
				return s
			}
		}
		return Status{}
	}
	waitFor(t, "the loop's error in its status", func() bool { return status("loop").LastError != "" })
	if e := status("loop").LastError; !strings.Contains(e, "source:4:") || !strings.Contains(e, "too many steps") {
		t.Fatalf("loop status: %s", e)
	}
	waitFor(t, "the bad script's error in its status", func() bool { return status("bad").LastError != "" })
	e := status("bad").LastError
	for _, want := range []string{`actions[0]: "nope" is not a handler`, "actions[1] (device_write): params: want key and value"} {
		if !strings.Contains(e, want) {
			t.Fatalf("bad status %q lacks %q", e, want)
		}
	}
	if e := status("other").LastError; e != "" {
		t.Fatalf("other: %s", e)
	}
	// The others keep running after the loop.
	r.publish("d", "y", protocols.Int(0)) // no trigger
	r.publish("d", "x", protocols.Int(2))
	waitFor(t, "the other task again", func() bool { return len(rec.actions()) == 2 })
	waitFor(t, "both failures counted", func() bool { return r.eng.Report().Queue.Failed == 4 })
}

// What a handler queues is keyed by its parent: the parent run again (a
// restart before it was done) queues nothing twice; another parent with
// the same key (two events in one millisecond) is another action.
func TestEnqueueFromAHandlerOnce(t *testing.T) {
	rec.reset(1000) // the actions stay queued, failing
	r := start(t, "tasks: []\n", nil, nil)
	parent := handler.Action{Key: "k", Task: "t", Seq: 7}
	reqs := []handler.Request{{Handler: "test_record", Params: map[string]any{"a": 1.0}}}
	for range 2 {
		if err := r.eng.enqueueFor(context.Background(), parent, reqs); err != nil {
			t.Fatal(err)
		}
	}
	if q := r.eng.Report().Queue; q.Queued != 1 || q.Depth != 1 {
		t.Fatalf("parent run twice: %+v", q)
	}
	parent.Seq = 8
	if err := r.eng.enqueueFor(context.Background(), parent, reqs); err != nil {
		t.Fatal(err)
	}
	if q := r.eng.Report().Queue; q.Queued != 2 {
		t.Fatalf("another parent: %+v", q)
	}
	err := r.eng.enqueueFor(context.Background(), parent, []handler.Request{{Handler: "script", Params: map[string]any{"source": "def run(e): pass"}}})
	if !errors.Is(err, handler.ErrPermanent) || !strings.Contains(err.Error(), "a script cannot queue another script") {
		t.Fatalf("script from a script: %v", err)
	}
}
