package automation

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const goodYAML = `
queue: {memory: true, retryMin: 2s, retryMax: 1m}
forwards:
  - name: copy-level
    source: tank.level
    target: plc 2.setpoint
    expression: value * 10
tasks:
  - name: overheat
    trigger: {event: device/boiler/temperature}
    vars: {pressure: boiler.pressure}
    condition: value > 80 and pressure < 3
    for: 30s
    actions:
      - handler: device_write
        params: {device: plc, key: alarm, value: "{{value}}"}
      - handler: webhook
        params: {url: "http://127.0.0.1:9/alarm", body: {device: "{{device}}", t: "{{value}}"}}
  - name: nightly
    trigger: {cron: "0 30 2 * * *", timezone: Europe/Berlin, missed: run-once}
    actions:
      - handler: platform_message
        params: {kind: telemetry, values: {nightly: true}}
  - name: every-minute
    enabled: false
    trigger: {every: 1m}
    actions:
      - handler: mqtt_publish
        params: {broker: "tcp://127.0.0.1:1883", topic: plant/tick, payload: tick}
`

func TestParseGood(t *testing.T) {
	cfg, ps := Parse("/etc/iotgw/automation.yaml", []byte(goodYAML))
	if err := ps.Err(); err != nil {
		t.Fatal(err)
	}
	if w := ps.Warnings(); len(w) > 0 {
		t.Fatalf("warnings: %v", w)
	}
	if !cfg.Queue.Memory || cfg.Queue.RetryMin != 2*time.Second || cfg.Queue.RetryMax != time.Minute || cfg.Queue.Dir != "/etc/iotgw/automation-queue" {
		t.Fatalf("queue %+v", cfg.Queue)
	}
	f := cfg.Forwards[0]
	if f.Source != (Ref{"tank", "level"}) || f.Target != (Ref{"plc 2", "setpoint"}) || f.Expression == nil || !f.Enabled {
		t.Fatalf("forward %+v", f)
	}
	task := cfg.Tasks[0]
	if task.Trigger.Event.String() != "device/boiler/temperature" || task.For != 30*time.Second || task.Vars["pressure"] != (Ref{"boiler", "pressure"}) || len(task.Actions) != 2 {
		t.Fatalf("task %+v", task)
	}
	nightly := cfg.Tasks[1].Trigger
	if nightly.Cron == nil || nightly.Location.String() != "Europe/Berlin" || nightly.Missed != MissedRunOnce {
		t.Fatalf("cron trigger %+v", nightly)
	}
	if cfg.Tasks[2].Enabled || cfg.Tasks[2].Trigger.Every != time.Minute {
		t.Fatalf("interval task %+v", cfg.Tasks[2])
	}
}

// Every problem is reported, each with its line, path and the bad value.
func TestParseProblems(t *testing.T) {
	bad := `
forwards:
  - name: f
    source: tank
    target: plc.sp
    expression: "value +"
tasks:
  - name: f
    trigger: {event: devices/x/y, cron: "61 * * * * *"}
    condition: value > limit
    actions:
      - handler: webhok
      - handler: device_write
        params: {device: plc, key: a, value: "{{nope}}"}
  - name: t2
    trigger: {every: fast, timezone: Mars/Olympus}
    actions: []
`
	_, ps := Parse("automation.yaml", []byte(bad))
	got := ps.Err().Error()
	for _, want := range []string{
		`automation.yaml:4: forwards[0].source: "tank" is not device.key`,
		`automation.yaml:6: forwards[0].expression: invalid expression "value +"`,
		`automation.yaml:8: tasks[0].name: "f" is already the name of forward forwards[0]`,
		`automation.yaml:9: tasks[0].trigger.event: bad topic pattern "devices/x/y"`,
		`automation.yaml:9: tasks[0].trigger.cron: "61 * * * * *"`,
		`automation.yaml:9: tasks[0].trigger: want exactly one of event, every, cron and sun`,
		`automation.yaml:10: tasks[0].condition: `,
		`automation.yaml:12: tasks[0].actions[0].handler: "webhok" is not a handler (did you mean "webhook"?)`,
		`automation.yaml:13: tasks[0].actions[1]: params.value: {{nope}} names no variable`,
		`automation.yaml:16: tasks[1].trigger.every: "fast" is not a duration`,
		`automation.yaml:16: tasks[1].trigger.timezone: "Mars/Olympus" is not a time zone`,
		`automation.yaml:17: tasks[1].actions: is required`,
	} {
		if !strings.Contains(got, want) {
			t.Errorf("missing %q in:\n%s", want, got)
		}
	}
}

func TestParseBrokenYAML(t *testing.T) {
	_, ps := Parse("automation.yaml", []byte("tasks: [\n"))
	if err := ps.Err(); err == nil || !strings.Contains(err.Error(), "automation.yaml: invalid YAML") {
		t.Fatalf("err %v", err)
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(goodYAML))
	f.Add([]byte("tasks: [{name: x, trigger: {cron: '* * * * * *'}}]"))
	f.Fuzz(func(t *testing.T, raw []byte) {
		_, _ = Parse("automation.yaml", raw)
	})
}

// A script action's file is read next to automation.yaml and compiled when
// the file is checked: a script error is a problem with its own file:line
// under the action's path and line.
func TestParseScriptAction(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "bad.star"), []byte("def run(event):\n    return nope\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "good.star"), []byte("def run(event):\n    return None\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	src := `
tasks:
  - name: s
    trigger: {event: device/a/b}
    actions:
      - handler: script
        params: {file: good.star}
      - handler: script
        params: {file: bad.star}
`
	_, ps := Parse(filepath.Join(dir, FileName), []byte(src))
	err := ps.Err()
	if err == nil {
		t.Fatal("bad script accepted")
	}
	want := "automation.yaml:8: tasks[0].actions[1]: params.file: " + filepath.Join(dir, "bad.star") + ":2:12: undefined: nope"
	if !strings.Contains(err.Error(), want) || strings.Contains(err.Error(), "actions[0]") {
		t.Fatalf("got %v, want %s", err, want)
	}
}
