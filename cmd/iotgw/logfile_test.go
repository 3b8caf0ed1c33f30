package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/industryos/gateway/protocols/config"
)

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func logFiles(t *testing.T, dir string) []string {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range es {
		out = append(out, e.Name())
	}
	sort.Strings(out)
	return out
}

// RotatingFileHandler: a line that would take the file to maxBytes goes
// to a new file; backupCount backups are kept, newest in .1, and together
// they hold the newest lines in order.
func TestLogFileSizeRotation(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "logs", "gw.log") // the directory is created
	var errOut bytes.Buffer
	r, err := openRotatingFile(config.LogFile{Path: path, MaxBytes: 100, BackupCount: 2}, &errOut, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	for i := range 20 {
		fmt.Fprintf(r, "line %02d 0123456789012345678\n", i) // 30 bytes
	}
	if got := strings.Join(logFiles(t, filepath.Dir(path)), " "); got != "gw.log gw.log.1 gw.log.2" {
		t.Fatalf("files: %s", got)
	}
	var all string
	for _, name := range []string{path + ".2", path + ".1", path} {
		s := readFile(t, name)
		if len(s) >= 100 {
			t.Errorf("%s holds %d bytes, maxBytes is 100", name, len(s))
		}
		all += s
	}
	// 3 lines per file (a 4th would reach 120 >= 100); the last 2 lines
	// are in the current file.
	var want string
	for i := 12; i < 20; i++ {
		want += fmt.Sprintf("line %02d 0123456789012345678\n", i)
	}
	if all != want {
		t.Errorf("kept lines:\n%s\nwant:\n%s", all, want)
	}
	if errOut.Len() > 0 {
		t.Errorf("unexpected errors: %s", errOut.String())
	}
}

// backupCount 0 never rotates on size, as in Python.
func TestLogFileNoBackupsNoRotation(t *testing.T) {
	path := filepath.Join(t.TempDir(), "gw.log")
	r, err := openRotatingFile(config.LogFile{Path: path, MaxBytes: 10}, os.Stderr, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	for range 5 {
		r.Write([]byte("0123456789\n"))
	}
	if got := logFiles(t, filepath.Dir(path)); len(got) != 1 || len(readFile(t, path)) != 55 {
		t.Errorf("files %v", got)
	}
}

// TimedRotatingFileHandler: the file is renamed after the period it holds
// when the period ends; backupCount backups are kept.
func TestLogFileTimedRotation(t *testing.T) {
	path := filepath.Join(t.TempDir(), "service.log")
	now := time.Date(2026, 3, 1, 10, 0, 0, 0, time.Local)
	clock := func() time.Time { return now }
	r, err := openRotatingFile(config.LogFile{Path: path, When: "M", Interval: 2, BackupCount: 2}, os.Stderr, clock)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	for _, step := range []time.Duration{0, time.Minute, 2 * time.Minute, 5 * time.Minute, 7 * time.Minute, 9 * time.Minute} {
		now = time.Date(2026, 3, 1, 10, 0, 0, 0, time.Local).Add(step)
		fmt.Fprintf(r, "at %s\n", now.Format("15:04"))
	}
	// Periods [10:00,10:02) [10:02,10:04) then [10:05,10:07) [10:07,10:09)
	// [10:09,...): the oldest backup (10:00) was pruned.
	if got := strings.Join(logFiles(t, filepath.Dir(path)), " "); got != "service.log service.log.2026-03-01_10-05 service.log.2026-03-01_10-07" {
		t.Fatalf("files: %s", got)
	}
	if got := readFile(t, path+".2026-03-01_10-05"); got != "at 10:05\n" {
		t.Errorf("backup holds %q", got)
	}
	if got := readFile(t, path); got != "at 10:09\n" {
		t.Errorf("current file holds %q", got)
	}
}

func TestRolloverAfterMidnightAndWeekday(t *testing.T) {
	r := &rotatingFile{cfg: config.LogFile{When: "MIDNIGHT"}}
	r.period = whenPeriod("MIDNIGHT", 1)
	at := time.Date(2026, 12, 4, 18, 30, 0, 0, time.Local) // a Friday
	if got := r.rolloverAfter(at); !got.Equal(time.Date(2026, 12, 5, 0, 0, 0, 0, time.Local)) {
		t.Errorf("MIDNIGHT: %v", got)
	}
	r.cfg.When = "W0" // Monday: rotate at the midnight that starts Tuesday
	if got := r.rolloverAfter(at); !got.Equal(time.Date(2026, 12, 8, 0, 0, 0, 0, time.Local)) {
		t.Errorf("W0: %v", got)
	}
}

// The logger writes JSON lines to the file at the handler's level and the
// logger's, and to stderr at the logger's level.
func TestLoggerWithFileLevels(t *testing.T) {
	path := filepath.Join(t.TempDir(), "gw.log")
	var stderr bytes.Buffer
	r, err := openRotatingFile(config.LogFile{Path: path, Level: "warn"}, &stderr, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	log := buildLogger(&stderr, zerolog.InfoLevel, nil, r)
	log.Debug().Msg("debug line")
	log.Info().Msg("info line")
	log.Warn().Msg("warn line")
	r.Close()
	file := readFile(t, path)
	if strings.Contains(file, "info line") || strings.Contains(file, "debug line") || !strings.Contains(file, `"message":"warn line"`) {
		t.Errorf("file:\n%s", file)
	}
	if s := stderr.String(); strings.Contains(s, "debug line") || !strings.Contains(s, "info line") || !strings.Contains(s, "warn line") {
		t.Errorf("stderr:\n%s", s)
	}
}

// A file that breaks while running is reported once, logging goes on on
// stderr, and the file is written again once it can be.
func TestLogFileWriteFailureReportedOnce(t *testing.T) {
	path := filepath.Join(t.TempDir(), "gw.log")
	var stderr bytes.Buffer
	now := time.Now()
	r, err := openRotatingFile(config.LogFile{Path: path}, &stderr, func() time.Time { return now })
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	log := buildLogger(&stderr, zerolog.InfoLevel, nil, r)
	r.f.Close() // the file breaks under the writer
	for i := range 3 {
		log.Info().Int("i", i).Msg("still logging")
	}
	if n := strings.Count(stderr.String(), "iotgw: log file"); n != 1 {
		t.Errorf("%d reports of the failure, want 1:\n%s", n, stderr.String())
	}
	if n := strings.Count(stderr.String(), "still logging"); n != 3 {
		t.Errorf("%d lines on stderr, want 3", n)
	}
	now = now.Add(2 * time.Second)
	log.Info().Msg("back")
	if !strings.Contains(readFile(t, path), `"message":"back"`) || !strings.Contains(stderr.String(), "writing again") {
		t.Errorf("the file was not written again: %q", stderr.String())
	}
}

// setupLogFile: logs.json's level applies when the main file has none, its
// file handler's file gets the log, and an unwritable file is one clear
// warning while stderr keeps logging.
func TestSetupLogFile(t *testing.T) {
	dir := t.TempDir()
	mainPath := filepath.Join(dir, "tb_gateway.json")
	logPath := filepath.Join(dir, "logs", "service.log")
	writeLogsJSON := func(filename string) {
		body := fmt.Sprintf(`{"handlers":{"serviceHandler":{"class":"thingsboard_gateway.tb_utility.tb_rotating_file_handler.TimedRotatingFileHandler",
			"filename":%q,"backupCount":7,"interval":3,"when":"D","maxBytes":0}},
			"loggers":{"service":{"level":"DEBUG","handlers":["serviceHandler"]}},"root":{"level":"ERROR"}}`, filename)
		if err := os.WriteFile(filepath.Join(dir, "logs.json"), []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	writeLogsJSON(logPath)
	cfg := &config.Gateway{}
	var stderr bytes.Buffer
	f, warnings := setupLogFile(mainPath, cfg, &stderr)
	if f == nil || len(warnings) > 0 || cfg.Logs.Level != "debug" {
		t.Fatalf("file %v, warnings %v, level %q", f, warnings, cfg.Logs.Level)
	}
	flog := buildLogger(&stderr, zerolog.DebugLevel, nil, f)
	flog.Debug().Msg("to the file")
	f.Close()
	if !strings.Contains(readFile(t, logPath), "to the file") {
		t.Error("the log line did not reach the file")
	}

	// The main file's logs.level wins.
	cfg = &config.Gateway{Logs: config.Logs{Level: "warn"}}
	f, _ = setupLogFile(mainPath, cfg, &stderr)
	f.Close()
	if cfg.Logs.Level != "warn" {
		t.Errorf("level %q, want the main file's", cfg.Logs.Level)
	}

	// A regular file where the directory should be: unwritable even as root.
	blocker := filepath.Join(dir, "blocker")
	if err := os.WriteFile(blocker, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	writeLogsJSON(filepath.Join(blocker, "service.log"))
	stderr.Reset()
	f, warnings = setupLogFile(mainPath, &config.Gateway{}, &stderr)
	if f != nil || len(warnings) != 1 || !strings.Contains(warnings[0], "logs.json: handlers.serviceHandler: cannot write the log file "+filepath.Join(blocker, "service.log")) ||
		!strings.Contains(warnings[0], "logging to stderr only") {
		t.Fatalf("file %v, warnings %q", f, warnings)
	}
	log := buildLogger(&stderr, zerolog.InfoLevel, nil, f)
	log.Info().Msg("stderr still works")
	if !strings.Contains(stderr.String(), "stderr still works") {
		t.Error("no logging on stderr")
	}

	// No logs.json: no file, nothing to say.
	if err := os.Remove(filepath.Join(dir, "logs.json")); err != nil {
		t.Fatal(err)
	}
	if f, warnings := setupLogFile(mainPath, &config.Gateway{}, &stderr); f != nil || warnings != nil {
		t.Errorf("without logs.json: %v %v", f, warnings)
	}
}

// `iotgw check` shows logs.json's file and its problems, and they do not
// make the config invalid.
func TestCheckReportsLogsJSON(t *testing.T) {
	dir := t.TempDir()
	main, err := os.ReadFile("../../protocols/config/testdata/valid/tb_gateway.json")
	if err != nil {
		t.Fatal(err)
	}
	for name, body := range map[string]string{
		"tb_gateway.json": string(main),
		"logs.json": `{"handlers":{"f":{"class":"logging.handlers.RotatingFileHandler","filename":"/var/log/gw.log","maxBytes":"big"}},
			"loggers":{"service":{"handlers":["f"]}}}`,
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	// The valid config's connector files are next to it.
	entries, _ := os.ReadDir("../../protocols/config/testdata/valid")
	for _, e := range entries {
		if e.Name() != "tb_gateway.json" {
			b, _ := os.ReadFile(filepath.Join("../../protocols/config/testdata/valid", e.Name()))
			os.WriteFile(filepath.Join(dir, e.Name()), b, 0o600)
		}
	}
	var out, errOut bytes.Buffer
	code := run([]string{"check", "-c", filepath.Join(dir, "tb_gateway.json")}, &out, &errOut)
	if code != 0 || !strings.Contains(out.String(), "log file /var/log/gw.log") ||
		!strings.Contains(errOut.String(), `warning: `+filepath.Join(dir, "logs.json")+`: handlers.f.maxBytes: "big" is not an integer`) {
		t.Fatalf("code %d\nstdout %s\nstderr %s", code, out.String(), errOut.String())
	}
}
