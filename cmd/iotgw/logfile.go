package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/industryos/gateway/protocols/config"
)

// rotatingFile is the log file of a logs.json file handler, rotated as
// Python's RotatingFileHandler (on size, backups name.1 .. name.N) or
// upstream's TimedRotatingFileHandler (on time, and on size when maxBytes
// is set; backups name.<period start>) would. It is a zerolog.LevelWriter
// that drops lines below the handler's level. A write error is reported
// once on errOut, not per line, and never fails the logger: stderr keeps
// logging whatever happens to the file.
type rotatingFile struct {
	mu      sync.Mutex
	cfg     config.LogFile
	min     zerolog.Level
	f       *os.File
	size    int64
	next    time.Time     // timed: when the current period ends
	period  time.Duration // timed: length of a period
	now     func() time.Time
	errOut  io.Writer
	failing bool
	retryAt time.Time // broken file: when to try opening it again
}

func openRotatingFile(cfg config.LogFile, errOut io.Writer, now func() time.Time) (*rotatingFile, error) {
	r := &rotatingFile{cfg: cfg, min: zerolog.TraceLevel, now: now, errOut: errOut}
	if cfg.Level != "" {
		lvl, err := zerolog.ParseLevel(cfg.Level)
		if err != nil {
			return nil, err
		}
		r.min = lvl
	}
	if err := os.MkdirAll(filepath.Dir(cfg.Path), 0o755); err != nil {
		return nil, err
	}
	if err := r.open(); err != nil {
		return nil, err
	}
	if cfg.When != "" {
		r.period = whenPeriod(cfg.When, cfg.Interval)
		// As Python: a file that already exists continues the period its
		// last write belongs to.
		base := now()
		if st, err := r.f.Stat(); err == nil && st.Size() > 0 {
			base = st.ModTime()
		}
		r.next = r.rolloverAfter(base)
	}
	return r, nil
}

func (r *rotatingFile) open() error {
	f, err := os.OpenFile(r.cfg.Path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return err
	}
	r.f, r.size = f, st.Size()
	return nil
}

// whenPeriod is the rotation period of a TimedRotatingFileHandler.
func whenPeriod(when string, interval int) time.Duration {
	n := time.Duration(max(interval, 1))
	switch {
	case when == "S":
		return n * time.Second
	case when == "M":
		return n * time.Minute
	case when == "H":
		return n * time.Hour
	case when == "D":
		return n * 24 * time.Hour
	case when == "MIDNIGHT":
		return 24 * time.Hour
	}
	return 7 * 24 * time.Hour // W0..W6
}

// rolloverAfter is the end of the period that t falls in.
func (r *rotatingFile) rolloverAfter(t time.Time) time.Time {
	when := r.cfg.When
	if when != "MIDNIGHT" && !strings.HasPrefix(when, "W") {
		return t.Add(r.period)
	}
	y, m, d := t.Date()
	next := time.Date(y, m, d+1, 0, 0, 0, 0, t.Location())
	if strings.HasPrefix(when, "W") {
		// Python numbers days from Monday (W0); Go from Sunday.
		day, _ := strconv.Atoi(when[1:])
		want := time.Weekday((day + 1) % 7)
		for next.Add(-24*time.Hour).Weekday() != want {
			next = next.Add(24 * time.Hour)
		}
	}
	return next
}

// suffix is Python's backup name suffix for the handler's period length;
// upstream's handler uses seconds whenever it also rotates on size.
func (r *rotatingFile) suffix(t time.Time) string {
	layout := "2006-01-02"
	switch {
	case r.cfg.MaxBytes > 0 || r.cfg.When == "S":
		layout = "2006-01-02_15-04-05"
	case r.cfg.When == "M":
		layout = "2006-01-02_15-04"
	case r.cfg.When == "H":
		layout = "2006-01-02_15"
	}
	return t.Format(layout)
}

func (r *rotatingFile) Write(p []byte) (int, error) {
	return r.WriteLevel(zerolog.NoLevel, p)
}

func (r *rotatingFile) WriteLevel(l zerolog.Level, p []byte) (int, error) {
	if l < r.min && l != zerolog.NoLevel {
		return len(p), nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.rotateIfDue(len(p)); err != nil {
		r.fail(err)
	}
	if r.f == nil {
		// Broken: try again now and then, not on every line.
		if now := r.now(); now.Before(r.retryAt) {
			return len(p), nil
		} else if err := r.open(); err != nil {
			r.retryAt = now.Add(time.Second)
			r.fail(err)
			return len(p), nil
		}
	}
	n, err := r.f.Write(p)
	r.size += int64(n)
	if err != nil {
		r.f.Close()
		r.f = nil
		r.retryAt = r.now().Add(time.Second)
		r.fail(err)
	} else if r.failing {
		r.failing = false
		fmt.Fprintf(r.errOut, "iotgw: log file %s: writing again\n", r.cfg.Path)
	}
	// The line reached stderr regardless; a file problem is not the
	// caller's to handle.
	return len(p), nil
}

// fail reports the first error of a run of failures.
func (r *rotatingFile) fail(err error) {
	if !r.failing {
		r.failing = true
		fmt.Fprintf(r.errOut, "iotgw: log file %s: %v; logging continues on stderr only until it can be written again\n", r.cfg.Path, err)
	}
}

func (r *rotatingFile) rotateIfDue(n int) error {
	if r.f == nil {
		return nil
	}
	now := r.now()
	timed := r.cfg.When != ""
	switch {
	case timed && !now.Before(r.next):
		start := r.next.Add(-r.period)
		r.next = r.rolloverAfter(now)
		return r.rotateTimed(start)
	case r.cfg.MaxBytes > 0 && r.size > 0 && r.size+int64(n) >= r.cfg.MaxBytes:
		if timed {
			return r.rotateTimed(now)
		}
		if r.cfg.BackupCount > 0 {
			return r.rotateNumbered()
		}
	}
	return nil
}

// rotateNumbered is RotatingFileHandler's rollover: name.N-1 -> name.N, ...,
// name -> name.1; the oldest is dropped.
func (r *rotatingFile) rotateNumbered() error {
	r.f.Close()
	r.f = nil
	p := r.cfg.Path
	for i := r.cfg.BackupCount - 1; i >= 1; i-- {
		src := p + "." + strconv.Itoa(i)
		if _, err := os.Stat(src); err == nil {
			if err := os.Rename(src, p+"."+strconv.Itoa(i+1)); err != nil {
				return err
			}
		}
	}
	if err := os.Rename(p, p+".1"); err != nil {
		return err
	}
	return r.open()
}

// rotateTimed renames the file after the period it holds and keeps the
// newest BackupCount backups (all when 0).
func (r *rotatingFile) rotateTimed(start time.Time) error {
	r.f.Close()
	r.f = nil
	p := r.cfg.Path
	dst := p + "." + r.suffix(start)
	// Two rollovers with the same name (size rotations within a second):
	// Python would overwrite the earlier backup; keep both.
	for i := 1; ; i++ {
		if _, err := os.Stat(dst); os.IsNotExist(err) {
			break
		}
		dst = p + "." + r.suffix(start) + "." + strconv.Itoa(i)
	}
	if err := os.Rename(p, dst); err != nil {
		return err
	}
	if err := r.open(); err != nil {
		return err
	}
	if r.cfg.BackupCount > 0 {
		r.pruneTimed()
	}
	return nil
}

func (r *rotatingFile) pruneTimed() {
	dir, base := filepath.Split(r.cfg.Path)
	entries, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	type backup struct {
		name string
		mod  time.Time
	}
	var bs []backup
	for _, e := range entries {
		// Only our backups: name.<date...>.
		rest, ok := strings.CutPrefix(e.Name(), base+".")
		if !ok || rest == "" || rest[0] < '0' || rest[0] > '9' || !e.Type().IsRegular() {
			continue
		}
		if info, err := e.Info(); err == nil {
			bs = append(bs, backup{filepath.Join(dir, e.Name()), info.ModTime()})
		}
	}
	if len(bs) <= r.cfg.BackupCount {
		return
	}
	sort.Slice(bs, func(i, j int) bool {
		if !bs[i].mod.Equal(bs[j].mod) {
			return bs[i].mod.Before(bs[j].mod)
		}
		return bs[i].name < bs[j].name
	})
	for _, b := range bs[:len(bs)-r.cfg.BackupCount] {
		os.Remove(b.name)
	}
}

// Close closes the file.
func (r *rotatingFile) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.f == nil {
		return nil
	}
	err := r.f.Close()
	r.f = nil
	return err
}

// setupLogFile reads logs.json next to the main file: its level becomes the
// config's when the main file sets none, and its file handler's file is
// opened. Problems come back as warnings for the final logger; the gateway
// logs to stderr alone when the file cannot be opened.
func setupLogFile(mainPath string, cfg *config.Gateway, stderr io.Writer) (*rotatingFile, []string) {
	logs, problems := config.LoadLogs(filepath.Dir(mainPath), os.Getenv)
	var warnings []string
	for _, p := range problems {
		warnings = append(warnings, p.String())
	}
	if logs == nil {
		return nil, warnings
	}
	if cfg.Logs.Level == "" {
		cfg.Logs.Level = logs.Level
	}
	if logs.Out == nil {
		return nil, warnings
	}
	f, err := openRotatingFile(*logs.Out, stderr, time.Now)
	if err != nil {
		warnings = append(warnings, fmt.Sprintf("warning: %s: handlers.%s: cannot write the log file %s: %v; logging to stderr only",
			logs.File, logs.Out.Handler, logs.Out.Path, unwrapPathErr(err)))
		return nil, warnings
	}
	return f, warnings
}

func unwrapPathErr(err error) error {
	if pe, ok := err.(*os.PathError); ok {
		return pe.Err
	}
	return err
}
