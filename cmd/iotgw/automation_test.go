package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// copyValid puts the valid test config in a temporary folder, so an
// automation.yaml can sit next to it.
func copyValid(t *testing.T) string {
	t.Helper()
	src := "../../protocols/config/testdata/valid"
	dir := t.TempDir()
	entries, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.IsDir() {
			continue
		}
		raw, err := os.ReadFile(filepath.Join(src, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, e.Name()), raw, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestCheckAutomation(t *testing.T) {
	dir := copyValid(t)
	main := filepath.Join(dir, "tb_gateway.json")
	write := func(s string) {
		if err := os.WriteFile(filepath.Join(dir, "automation.yaml"), []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(`tasks: [{name: t, trigger: {every: 10s}, actions: [{handler: platform_message, params: {values: {tick: 1}}}]}]`)
	var out, errOut bytes.Buffer
	if code := run([]string{"check", "-c", main}, &out, &errOut); code != 0 || !strings.Contains(out.String(), "automation.yaml: 0 forwards, 1 tasks") {
		t.Fatalf("exit %d\n%s\n%s", code, out.String(), errOut.String())
	}
	write(`tasks: [{name: t, trigger: {cron: "* * *"}, actions: [{handler: device_write, params: {device: plc}}]}]`)
	out.Reset()
	errOut.Reset()
	code := run([]string{"check", "-c", main}, &out, &errOut)
	for _, want := range []string{
		`automation.yaml:1: tasks[0].trigger.cron: "* * *": expected exactly 6 fields`,
		`automation.yaml:1: tasks[0].actions[0]: params: want key and value, or values`,
		`invalid automation`,
	} {
		if !strings.Contains(errOut.String(), want) {
			t.Errorf("missing %q in:\n%s", want, errOut.String())
		}
	}
	if code != 1 {
		t.Fatalf("exit %d, want 1", code)
	}
}
