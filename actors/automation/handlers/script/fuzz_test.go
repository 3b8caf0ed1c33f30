package script

import (
	"context"
	"testing"

	"github.com/rs/zerolog"

	"github.com/industryos/gateway/actors/automation/handler"
)

// FuzzScriptAction: any script text, run on an event, fails with an error
// or queues well-formed requests; it never panics.
func FuzzScriptAction(f *testing.F) {
	f.Add(alarm)
	f.Add("def run(e):\n    return [{\"handler\": \"x\", \"params\": {\"a\": [1, 2.5, None, True]}}]\n")
	f.Add("def run(e):\n    return {\"handler\": e.device, \"params\": e.vars}\n")
	f.Add("def run(e):\n    return [None, 1, \"s\", {}]\n")
	f.Fuzz(func(t *testing.T, src string) {
		var got []handler.Request
		h := New(handler.Env{Log: zerolog.Nop(), Enqueue: func(_ context.Context, _ handler.Action, reqs []handler.Request) error {
			got = reqs
			return nil
		}})
		a := event(50.0, 30.0)
		a.Params = map[string]any{"source": src, "params": map[string]any{"jump": 10.0}}
		if err := h.Run(context.Background(), a); err != nil {
			return
		}
		for _, r := range got {
			if r.Handler == "" {
				t.Fatalf("queued a request without a handler: %+v", got)
			}
		}
	})
}

// FuzzRequests: any JSON reads as requests or an error.
func FuzzRequests(f *testing.F) {
	f.Add(`[{"handler":"device_write","params":{"device":"d","key":"k","value":1}}]`)
	f.Add(`{"handler":"webhook"}`)
	f.Add(`null`)
	f.Add(`[null]`)
	f.Fuzz(func(t *testing.T, raw string) {
		reqs, err := Requests([]byte(raw))
		if err == nil {
			for _, r := range reqs {
				if r.Handler == "" {
					t.Fatalf("%s: a request without a handler", raw)
				}
			}
		}
	})
}
