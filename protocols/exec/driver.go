package exec

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	osexec "os/exec"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/rs/zerolog"

	"github.com/industryos/gateway/protocols"
	"github.com/industryos/gateway/protocols/kit/ratelimit"
	"github.com/industryos/gateway/protocols/kit/spec"
)

func init() {
	protocols.Register("exec", protocols.FactoryOf(func(cfg protocols.ConnectorConfig) (*Connector, error) { return NewConnector(cfg) }))
	protocols.RegisterFields("exec", Sections())
}

// ErrNotRunning is returned for a command while the program is not running
// (it exited and waits for its restart); it matches protocols.ErrIO.
var ErrNotRunning = fmt.Errorf("program not running: %w", protocols.ErrIO)

// stopGrace is how long a program has to exit after SIGTERM before it is
// killed, when the connector stops.
const stopGrace = 5 * time.Second

// Connector is a configured exec connector: a push source whose devices
// are whatever the program's lines name.
type Connector struct {
	name string
	cfg  *Config
	dir  string
	log  zerolog.Logger

	cur    atomic.Pointer[proc] // the running program; nil between runs
	nextID atomic.Int64
	clock  ratelimit.Clock // times runs and restart delays

	starts, restarts, exits, lines, bad, records, stdinErrs atomic.Uint64
	stderrLog                                               ratelimit.Lines
}

// Option configures NewConnector.
type Option func(*Connector)

// WithClock replaces the clock that times runs (stableAfter) and restart
// delays, so a test can drive the backoff without waiting for it.
func WithClock(clk ratelimit.Clock) Option { return func(c *Connector) { c.clock = clk } }

type realClock struct{}

func (realClock) Now() time.Time                         { return time.Now() }
func (realClock) After(d time.Duration) <-chan time.Time { return time.After(d) }

// NewConnector parses the connector file. It does no I/O: Run starts the
// program.
func NewConnector(cfg protocols.ConnectorConfig, opts ...Option) (*Connector, error) {
	parsed, name, err := protocols.Open(cfg, "exec", func(o *spec.Obj) (*Config, string) {
		c := Parse(o)
		return c, c.Name
	})
	if err != nil {
		return nil, err
	}
	c := &Connector{name: name, cfg: parsed, log: cfg.Logger.With().Str("connector", name).Logger(), clock: realClock{}}
	for _, o := range opts {
		o(c)
	}
	if cfg.File != "" {
		c.dir = filepath.Dir(cfg.File)
	}
	if parsed.WorkingDir != "" {
		if filepath.IsAbs(parsed.WorkingDir) {
			c.dir = parsed.WorkingDir
		} else {
			c.dir = filepath.Join(c.dir, parsed.WorkingDir)
		}
	}
	c.cfg.Report = parsed.Report.Or(cfg.Report)
	return c, nil
}

// Config is the parsed file.
func (c *Connector) Config() *Config { return c.cfg }

// Devices implements protocols.Connector: devices appear as lines name them.
func (c *Connector) Devices() []protocols.Device { return nil }

// Close implements protocols.Connector: Run owns the program and stops it
// when its context ends.
func (c *Connector) Close() error { return nil }

// Stats are the connector's counters.
type Stats struct {
	Starts, Restarts, Exits, Lines, Malformed, Records, StdinErrors uint64
}

// Stats returns the counters since NewConnector.
func (c *Connector) Stats() Stats {
	return Stats{Starts: c.starts.Load(), Restarts: c.restarts.Load(), Exits: c.exits.Load(), Lines: c.lines.Load(),
		Malformed: c.bad.Load(), Records: c.records.Load(), StdinErrors: c.stdinErrs.Load()}
}

// Metrics implements protocols.MetricsSource: the runtime exports these as
// iotgw_exec_*{connector="..."}.
func (c *Connector) Metrics() []protocols.Metric {
	st := c.Stats()
	return []protocols.Metric{
		{Name: "exec_restarts_total", Help: "Restarts of the program after it exited.", Value: float64(st.Restarts)},
		{Name: "exec_malformed_lines_total", Help: "Stdout lines that were not a valid record or reply (counted, logged, skipped).", Value: float64(st.Malformed)},
		{Name: "exec_records_total", Help: "Records read from the program's stdout and handed on.", Value: float64(st.Records)},
		{Name: "exec_stdin_write_errors_total", Help: "Commands that could not be written to the program's stdin.", Value: float64(st.StdinErrors)},
	}
}

// Run implements protocols.Source: it starts the program, reads its lines
// until it exits, and starts it again after a delay that doubles from
// restartDelay to maxRestartDelay (reset by a run of stableAfter).
func (c *Connector) Run(ctx context.Context, sink protocols.Sink) error {
	delay := c.cfg.RestartDelay
	for {
		started := c.clock.Now()
		err := c.runOnce(ctx, sink)
		if ctx.Err() != nil {
			return nil
		}
		if c.clock.Now().Sub(started) >= c.cfg.Stable {
			delay = c.cfg.RestartDelay
		}
		sink.Link(false, fmt.Errorf("exec %q: %w; restarting in %v", c.cfg.Command[0], err, delay))
		select {
		case <-ctx.Done():
			return nil
		case <-c.clock.After(delay):
		}
		c.restarts.Add(1)
		delay = min(2*delay, c.cfg.MaxRestart)
	}
}

// runOnce runs the program once and returns why it ended.
func (c *Connector) runOnce(ctx context.Context, sink protocols.Sink) error {
	argv := c.cfg.Command
	cmd := osexec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Dir = c.dir
	cmd.Env = append(os.Environ(), c.cfg.Env...)
	// Its own process group, so that stopping reaches what it started too
	// (a shell's sleep would otherwise hold stdout open after the shell died).
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM) }
	cmd.WaitDelay = stopGrace
	// Our own stdin pipe: an *os.File takes write deadlines, so a program
	// that stops reading cannot block a command forever.
	inR, inW, err := os.Pipe()
	if err != nil {
		return fmt.Errorf("stdin pipe: %w", err)
	}
	cmd.Stdin = inR
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		inR.Close()
		inW.Close()
		return fmt.Errorf("stdout pipe: %w", err)
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		inR.Close()
		inW.Close()
		return fmt.Errorf("stderr pipe: %w", err)
	}
	if err := cmd.Start(); err != nil {
		inR.Close()
		inW.Close()
		return fmt.Errorf("start: %w", err)
	}
	inR.Close()
	c.starts.Add(1)
	p := &proc{stdin: inW, waiting: map[int64]chan Record{}}
	c.cur.Store(p)
	c.log.Info().Strs("command", argv).Int("pid", cmd.Process.Pid).Msg("program started")
	sink.Link(true, nil)

	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		c.logStderr(stderr)
	}()
	// On stop, lines still in the pipe are not wanted: stop reading at once
	// rather than wait for every holder of the pipe to exit.
	readDone := make(chan struct{})
	go func() {
		select {
		case <-ctx.Done():
			stdout.Close()
		case <-readDone:
		}
	}()
	c.readLines(ctx, sink, p, stdout)
	close(readDone)
	c.cur.CompareAndSwap(p, nil)
	p.close()
	wg.Wait()
	err = cmd.Wait()
	c.exits.Add(1)
	if err == nil {
		return errors.New("exited with status 0")
	}
	return fmt.Errorf("exited: %w", err)
}

// readLines handles stdout until it ends (the program exited or closed it).
func (c *Connector) readLines(ctx context.Context, sink protocols.Sink, p *proc, r io.Reader) {
	br := bufio.NewReaderSize(r, c.cfg.MaxLine+1)
	where := "exec " + c.name
	for {
		line, err := br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			// Too long: counted, and the rest of it skipped.
			c.bad.Add(1)
			sink.Malformed(where, fmt.Errorf("%w: line longer than maxLineBytes %d", ErrMalformed, c.cfg.MaxLine))
			for errors.Is(err, bufio.ErrBufferFull) {
				_, err = br.ReadSlice('\n')
			}
			if err != nil {
				return
			}
			continue
		}
		if len(bytes.TrimSpace(line)) > 0 {
			c.lines.Add(1)
			if !c.handle(ctx, sink, p, bytes.TrimSpace(line), where) {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// handle takes one line; it returns false once ctx ended.
func (c *Connector) handle(ctx context.Context, sink protocols.Sink, p *proc, line []byte, where string) bool {
	r, err := ParseLine(line)
	if err != nil {
		c.bad.Add(1)
		sink.Malformed(where, err)
		return true
	}
	if r.IsReply {
		if !p.answer(r) {
			c.bad.Add(1)
			sink.Malformed(where, fmt.Errorf("%w: reply to id %d, which no command waits for", ErrMalformed, r.ID))
		}
		return true
	}
	ts := time.Now()
	if r.Ts != 0 {
		ts = time.UnixMilli(r.Ts)
	}
	c.records.Add(1)
	err = sink.Push(ctx, protocols.Push{Device: r.Device, Profile: r.Profile, Ts: ts,
		Reading: protocols.Reading{Telemetry: r.Telemetry, Attributes: r.Attributes}, Report: c.cfg.Report})
	if err != nil {
		if ctx.Err() != nil {
			return false
		}
		sink.Dropped(where, len(r.Telemetry)+len(r.Attributes), fmt.Errorf("device %q: push refused: %w", r.Device, err))
	}
	return true
}

// logStderr logs what the program writes to stderr, rate-limited: it is
// the program's own log.
func (c *Connector) logStderr(r io.Reader) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 4096), 64<<10)
	for sc.Scan() {
		if ok, suppressed := c.stderrLog.Allow(time.Now()); ok {
			c.log.Warn().Str("stderr", sc.Text()).Int("suppressed", suppressed).Msg("program wrote to stderr")
		}
	}
	// A line beyond 64 KiB stops the scanner; drain so the program never blocks.
	_, _ = io.Copy(io.Discard, r)
}

var (
	_ protocols.Connector      = (*Connector)(nil)
	_ protocols.Source         = (*Connector)(nil)
	_ protocols.DeviceCommands = (*Connector)(nil)
	_ protocols.MetricsSource  = (*Connector)(nil)
)
