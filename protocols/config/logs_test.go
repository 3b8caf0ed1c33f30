package config

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/industryos/gateway/protocols/kit/spec"
)

func noEnv(string) string { return "" }

func writeLogs(t *testing.T, body string) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, LogsFileName), []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return dir
}

func problemLines(ps []spec.Problem) string {
	var b strings.Builder
	for _, p := range ps {
		if p.Severity != spec.Warning {
			b.WriteString("NOT A WARNING: ")
		}
		b.WriteString(p.String())
		b.WriteByte('\n')
	}
	return b.String()
}

// Upstream's own logs.json files load without a problem: the service
// logger's level and its timed rotating file, relative to the working
// directory as upstream opens it.
func TestLoadLogsUpstreamFiles(t *testing.T) {
	cwd, _ := os.Getwd()
	for _, rel := range []string{"thingsboard_gateway/config", "tests/integration/data/gateway"} {
		dir := filepath.Join("..", "..", "..", "shared", "upstream-configs", rel)
		if _, err := os.Stat(filepath.Join(dir, LogsFileName)); err != nil {
			t.Skipf("upstream config corpus not available: %v", err)
		}
		l, ps := LoadLogs(dir, noEnv)
		if len(ps) > 0 {
			t.Errorf("%s: unexpected problems:\n%s", rel, problemLines(ps))
		}
		want := &LogFile{Path: filepath.Join(cwd, "logs", "service.log"), Handler: "serviceHandler", BackupCount: 7, When: "D", Interval: 3}
		if l == nil || l.Level != "info" || !reflect.DeepEqual(l.Out, want) {
			t.Errorf("%s: got %+v (file %+v), want level info and %+v", rel, l, l.Out, want)
		}
	}
}

func TestLoadLogsMissingFile(t *testing.T) {
	if l, ps := LoadLogs(t.TempDir(), noEnv); l != nil || ps != nil {
		t.Fatalf("missing logs.json: %+v, %v; want nothing", l, ps)
	}
}

func TestLoadLogsRotatingFileHandler(t *testing.T) {
	dir := writeLogs(t, `{"version":1,
	  "handlers":{"console":{"class":"logging.StreamHandler","level":"DEBUG"},
	    "file":{"class":"logging.handlers.RotatingFileHandler","filename":"/var/log/gw/gw.log","maxBytes":1048576,"backupCount":3,"level":30}},
	  "loggers":{"connector":{"level":"DEBUG","handlers":["console"]}},
	  "root":{"level":15,"handlers":["console","file"]}}`)
	l, ps := LoadLogs(dir, noEnv)
	if len(ps) > 0 {
		t.Errorf("problems:\n%s", problemLines(ps))
	}
	want := &LogFile{Path: "/var/log/gw/gw.log", Handler: "file", Level: "warn", MaxBytes: 1 << 20, BackupCount: 3}
	// No service logger: the root's level (15 passes INFO and up) and file.
	if l == nil || l.Level != "info" || !reflect.DeepEqual(l.Out, want) {
		t.Fatalf("got %+v (file %+v), want level info and %+v", l, l.Out, want)
	}
	// TB_GW_LOGS_PATH moves every log file, as upstream.
	l, _ = LoadLogs(dir, func(k string) string {
		if k == EnvLogsPath {
			return "/data/logs"
		}
		return ""
	})
	if l.Out.Path != "/data/logs/gw.log" {
		t.Errorf("with %s: path %q", EnvLogsPath, l.Out.Path)
	}
}

// The service logger's NOTSET level defers to the root; a console-only
// logger means no file.
func TestLoadLogsLevelsAndNoFile(t *testing.T) {
	dir := writeLogs(t, `{"handlers":{"c":{"class":"logging.StreamHandler"}},
	  "loggers":{"service":{"level":"NOTSET","handlers":["c"]}},"root":{"level":"warning"}}`)
	l, ps := LoadLogs(dir, noEnv)
	if len(ps) > 0 || l == nil || l.Level != "warn" || l.Out != nil {
		t.Fatalf("got %+v, %s", l, problemLines(ps))
	}
}

// Problems name the file, the JSON path and the value, and are warnings:
// a bad logs.json never stops the gateway (upstream falls back too).
func TestLoadLogsProblems(t *testing.T) {
	for _, tt := range []struct{ body, want string }{
		{`{"handlers":`, `logs.json: invalid JSON`},
		{`{"handlers":{"f":{"class":"logging.handlers.RotatingFileHandler","filename":"x.log","maxBytes":"lots","backupCount":-1}},"root":{"handlers":["f"]}}`,
			`handlers.f.maxBytes: "lots" is not an integer`},
		{`{"handlers":{"f":{"class":"logging.handlers.RotatingFileHandler","filename":"x.log","backupCount":-1}},"root":{"handlers":["f"]}}`,
			`handlers.f.backupCount: -1 is out of range`},
		{`{"handlers":{"f":{"class":"x.TimedRotatingFileHandler","filename":"x.log","when":"fortnight"}},"root":{"handlers":["f"]}}`,
			`handlers.f.when: unknown value "fortnight"`},
		{`{"handlers":{"f":{"class":"logging.FileHandler"}},"root":{"handlers":["f"]}}`, `handlers.f.filename: `},
		{`{"handlers":{},"loggers":{"service":{"level":"LOUD","handlers":["nope"]}}}`, `loggers.service.level: unknown level "LOUD"`},
		{`{"handlers":{"c":{"class":"logging.StreamHandler"}},"root":{"handlers":["nope"]}}`, `handlers: handler "nope", used by a logger, is not defined`},
	} {
		dir := writeLogs(t, tt.body)
		_, ps := LoadLogs(dir, noEnv)
		got := problemLines(ps)
		if !strings.Contains(got, tt.want) || strings.Contains(got, "NOT A WARNING") || !strings.Contains(got, filepath.Join(dir, LogsFileName)) {
			t.Errorf("%s:\n got %s\nwant a warning naming the file and containing %q", tt.body, got, tt.want)
		}
	}
}

func FuzzLoadLogs(f *testing.F) {
	f.Add([]byte(`{"handlers":{"f":{"class":"logging.handlers.RotatingFileHandler","filename":"x.log","maxBytes":10,"backupCount":2,"level":5}},"loggers":{"service":{"level":"INFO","handlers":["f"]}},"root":{"level":0}}`))
	f.Add([]byte(`{"handlers":{"f":{"class":"a.TimedRotatingFileHandler","filename":"x","when":"W6","interval":"2"}},"root":{"handlers":["f",1]}}`))
	f.Add([]byte(`{"handlers":[],"loggers":7,"root":"x"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		l, ps := ParseLogs("/etc/gw/logs.json", b, noEnv)
		for _, p := range ps {
			if p.Severity != spec.Warning {
				t.Fatalf("not a warning: %v", p)
			}
		}
		if l != nil && l.Out != nil && (!filepath.IsAbs(l.Out.Path) || l.Out.BackupCount < 0 || l.Out.MaxBytes < 0) {
			t.Fatalf("bad file handler %+v", l.Out)
		}
	})
}
