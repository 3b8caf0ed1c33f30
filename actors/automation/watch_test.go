package automation

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/industryos/gateway/protocols"
)

// The watched file is reloaded when its content changes; a file that
// fails validation is refused with file, line and path, and the running
// tasks go on.
func TestWatchFileReloads(t *testing.T) {
	rec.reset(0)
	a := `
tasks:
  - {name: a, trigger: {event: device/d/a}, actions: [{handler: test_record, params: {x: a}}]}
`
	path := filepath.Join(t.TempDir(), FileName)
	write := func(s string) {
		t.Helper()
		// Atomically, so no poll reads half a file.
		if err := os.WriteFile(path+".new", []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(path+".new", path); err != nil {
			t.Fatal(err)
		}
	}
	write(a)
	r := start(t, a, nil, nil)
	results := make(chan error, 10)
	stop := r.eng.WatchFile(path, 10*time.Millisecond, func(err error) { results <- err })
	defer stop()
	next := func() error {
		t.Helper()
		select {
		case err := <-results:
			return err
		case <-time.After(10 * time.Second):
			t.Fatal("no reload")
		}
		return nil
	}

	write(`
tasks:
  - {name: b, trigger: {event: device/d/b}, actions: [{handler: test_record, params: {x: b}}]}
`)
	if err := next(); err != nil {
		t.Fatal(err)
	}
	if st := r.eng.Status(); len(st) != 1 || st[0].Name != "b" {
		t.Fatalf("status after the reload %+v", st)
	}

	write(`
tasks:
  - name: c
    trigger: {cron: "* * *"}
    actions: [{handler: test_record}]
`)
	err := next()
	if err == nil || !strings.Contains(err.Error(), path) ||
		!strings.Contains(err.Error(), "automation.yaml:4: tasks[0].trigger.cron") ||
		!strings.Contains(err.Error(), "running automation stays") {
		t.Fatalf("refusal %v", err)
	}
	if st := r.eng.Status(); len(st) != 1 || st[0].Name != "b" {
		t.Fatalf("status after the refused file %+v", st)
	}
	r.publish("d", "b", protocols.Int(1))
	waitFor(t, "the running task after the refusal", func() bool { return len(rec.actions()) == 1 })
}
