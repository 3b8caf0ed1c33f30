// Command iotgw is the IndustryOS IoT gateway.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"runtime/pprof"
	"strings"
	"syscall"
	"time"

	"github.com/mattn/go-isatty"
	"github.com/rs/zerolog"

	"github.com/industryos/gateway/actors"
	"github.com/industryos/gateway/actors/automation"
	"github.com/industryos/gateway/actors/observe"
	"github.com/industryos/gateway/protocols"
	"github.com/industryos/gateway/protocols/config"
	"github.com/industryos/gateway/protocols/kit/spec"

	_ "github.com/industryos/gateway/protocols/all"
)

const usage = `iotgw — IndustryOS IoT edge gateway

usage:
  iotgw run   -c tb_gateway.json   run the gateway
  iotgw check -c tb_gateway.json   validate the config and print every problem
  iotgw check -fields modbus       print the keys a connector type reads, with defaults
  iotgw convert --script f.star --input sample.json [--topic t] [--config ext.json] [--downlink [--for mqtt|request|rest|socket|can]]
                                   run a script converter on sample input and print the result
  iotgw demo                       run a self-contained demo (Modbus simulator + embedded broker)
  iotgw sim modbus [flags]         run the Modbus TCP device simulator alone
  iotgw health [--url URL]         exit 0 if a running gateway's /healthz answers 200
  iotgw version
`

func main() {
	if len(os.Args) > 1 && (os.Args[1] == "run" || os.Args[1] == "demo") {
		keepSysmonAwake()
	}
	// Edge boxes are short of memory, not of cycles at our load: a tighter GC
	// target keeps RSS near the live heap (procs.go relaxes it while the
	// gateway is busy). GOGC and GOMEMLIMIT still override.
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(gcQuietPercent)
	}
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	switch args[0] {
	case "run":
		return cmdRun(args[1:], stderr)
	case "check":
		return cmdCheck(args[1:], stdout, stderr)
	case "convert":
		return cmdConvert(args[1:], stdout, stderr)
	case "demo":
		return cmdDemo(args[1:], stdout, stderr)
	case "sim":
		return cmdSim(args[1:], stdout, stderr)
	case "health":
		return cmdHealth(args[1:], stdout, stderr)
	case "version", "--version", "-v":
		fmt.Fprint(stdout, currentVersion())
		return 0
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	}
	fmt.Fprintf(stderr, "iotgw: unknown command %q\n\n%s", args[0], usage)
	return 2
}

// newLogger writes JSON when stderr is not a terminal (a service, a container)
// and a readable console format when a person is watching.
func newLogger(w io.Writer, level string) (zerolog.Logger, error) {
	lvl, err := zerolog.ParseLevel(level)
	if err != nil || level == "" {
		return zerolog.Nop(), fmt.Errorf("unknown log level %q (want one of: trace, debug, info, warn, error)", level)
	}
	return buildLogger(w, lvl, nil, nil), nil
}

// buildLogger is newLogger's writer choice with an optional remote log,
// which gets the lines at the platform's RemoteLoggingLevel, and an
// optional log file (logs.json), which gets them as JSON whatever stderr is.
func buildLogger(w io.Writer, lvl zerolog.Level, remote *observe.RemoteLog, file *rotatingFile) zerolog.Logger {
	out := w
	if f, ok := w.(*os.File); ok && isatty.IsTerminal(f.Fd()) {
		out = zerolog.ConsoleWriter{Out: w, TimeFormat: time.TimeOnly}
	}
	if file != nil {
		out = zerolog.MultiLevelWriter(out, file)
	}
	return observe.NewLogger(out, lvl, remote)
}

// runLogLevel is the level of `iotgw run`: --log-level or IOTGW_LOG_LEVEL
// when given, else the config's logs.level, else info.
func runLogLevel(fs *flag.FlagSet, flagValue string, cfg *config.Gateway) zerolog.Level {
	name := flagValue
	given := os.Getenv("IOTGW_LOG_LEVEL") != ""
	fs.Visit(func(f *flag.Flag) {
		if f.Name == "log-level" {
			given = true
		}
	})
	if !given && cfg.Logs.Level != "" {
		name = cfg.Logs.Level
	}
	lvl, err := zerolog.ParseLevel(name)
	if err != nil {
		return zerolog.InfoLevel
	}
	return lvl
}

// parseFlags parses fs and builds the logger from its --log-level flag, which
// the caller registered as level; when it returns false the command exits
// with code (0 after --help, 2 after printing what was wrong).
func parseFlags(fs *flag.FlagSet, args []string, level *string, stderr io.Writer) (log zerolog.Logger, code int, ok bool) {
	if err := fs.Parse(args); err != nil {
		return zerolog.Nop(), flagExit(err), false
	}
	log, err := newLogger(stderr, *level)
	if err != nil {
		fmt.Fprintln(stderr, "iotgw:", err)
		return log, 2, false
	}
	return log, 0, true
}

// flagExit is the exit code after fs.Parse failed: --help or -h is a request, not an error.
func flagExit(err error) int {
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	return 2
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

func printProblems(w io.Writer, cfg *config.Gateway) {
	if cfg == nil || cfg.Problems == nil {
		return
	}
	for _, p := range cfg.Problems.List {
		if p.Msg == "invalid JSON: unexpected EOF" {
			p.Msg += truncatedAt(filepath.Join(filepath.Dir(cfg.File), p.File))
		}
		fmt.Fprintln(w, p.String())
	}
}

// truncatedAt says where a truncated file ends: encoding/json reports no position for it.
func truncatedAt(path string) string {
	raw, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	line, col := 1, 1
	for _, c := range raw {
		if c == '\n' {
			line++
			col = 1
		} else {
			col++
		}
	}
	return fmt.Sprintf(" at line %d column %d (the file ends there: truncated?)", line, col)
}

func cmdCheck(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("check", stderr)
	path := fs.String("c", "tb_gateway.json", "main config file (JSON or YAML)")
	fields := fs.String("fields", "", "print the keys a connector type reads (its field tables) instead of checking")
	if err := fs.Parse(args); err != nil {
		return flagExit(err)
	}
	if *fields != "" {
		return printFields(*fields, stdout, stderr)
	}
	if hint := connectorFileHint(*path); hint != "" {
		fmt.Fprintln(stderr, hint)
		return 1
	}
	cfg, err := config.Load(*path, os.Getenv)
	printProblems(stderr, cfg)
	printFieldsHint(stderr, cfg)
	if err != nil {
		fmt.Fprintf(stderr, "%s: invalid configuration\n", *path)
		return 1
	}
	for _, c := range cfg.Connectors {
		// A push source without polled devices (the local device API) says
		// what it serves instead.
		if s, ok := c.Connector.(interface{ Summary() string }); ok {
			fmt.Fprintf(stdout, "%s: %s\n", c.Name, s.Summary())
			continue
		}
		fmt.Fprintf(stdout, "connector %q (%s): %d devices\n", c.Name, c.Type, len(c.Connector.Devices()))
	}
	// logs.json never stops the gateway: its problems are warnings here too.
	logs, problems := config.LoadLogs(filepath.Dir(*path), os.Getenv)
	for _, p := range problems {
		fmt.Fprintln(stderr, p.String())
	}
	if logs != nil && logs.Out != nil {
		fmt.Fprintf(stdout, "%s: log file %s\n", logs.File, logs.Out.Path)
	}
	if !checkAutomation(filepath.Join(filepath.Dir(*path), automation.FileName), stdout, stderr) {
		return 1
	}
	fmt.Fprintf(stdout, "%s: OK\n", *path)
	return 0
}

// printFields shows the field tables check validates a connector file
// against: the same tables give the protocol's defaults and its README
// reference, so what is printed here is what the parser applies.
func printFields(typ string, stdout, stderr io.Writer) int {
	sections, ok := protocols.Fields(typ)
	if !ok {
		fmt.Fprintf(stderr, "unknown connector type %q (this binary has: %s)\n", typ, strings.Join(protocols.Types(), ", "))
		return 1
	}
	fmt.Fprint(stdout, spec.Markdown(sections...))
	return 0
}

// printFieldsHint points from an unknown key in a connector file to the
// keys that connector type does read.
func printFieldsHint(w io.Writer, cfg *config.Gateway) {
	if cfg == nil || cfg.Problems == nil {
		return
	}
	done := map[string]bool{}
	for _, p := range cfg.Problems.List {
		if !strings.HasPrefix(p.Msg, "unknown key") {
			continue
		}
		for _, c := range cfg.Connectors {
			if filepath.Base(c.File) != filepath.Base(p.File) || done[c.File] {
				continue
			}
			if _, ok := protocols.Fields(c.Type); ok {
				done[c.File] = true
				fmt.Fprintf(w, "%s: the keys a %s connector reads: iotgw check -fields %s\n", p.File, c.Type, c.Type)
			}
		}
	}
}

func cmdRun(args []string, stderr io.Writer) int {
	fs := newFlagSet("run", stderr)
	path := fs.String("c", "tb_gateway.json", "main config file (JSON or YAML)")
	level := fs.String("log-level", envOr("IOTGW_LOG_LEVEL", "info"), "log level")
	log, code, ok := parseFlags(fs, args, level, stderr)
	if !ok {
		return code
	}
	cfg, err := config.Load(*path, os.Getenv)
	if err != nil {
		printProblems(stderr, cfg)
		fmt.Fprintf(stderr, "%s: invalid configuration, not starting\n", *path)
		return 1
	}
	// The final logger: the config may set the level, and the platform
	// may ask for remote logs (RemoteLoggingLevel).
	remote := observe.NewRemoteLog(observe.RemoteLogOptions{})
	file, logWarnings := setupLogFile(*path, cfg, stderr)
	if file != nil {
		defer file.Close()
	}
	log = buildLogger(stderr, runLogLevel(fs, *level, cfg), remote, file)
	for _, p := range cfg.Problems.Warnings() {
		log.Warn().Msg(p.String())
	}
	for _, p := range cfg.Problems.Skips() {
		log.Error().Msg(p.String())
	}
	for _, w := range logWarnings {
		log.Warn().Msg(w)
	}
	applyMemoryLimit(cfg.Resources.MemoryLimitMB, log)
	if path := os.Getenv("IOTGW_CPUPROFILE"); path != "" {
		// Developer aid for the bench: the HTTP pprof endpoint comes with observability.
		if f, err := os.Create(path); err == nil && pprof.StartCPUProfile(f) == nil {
			defer func() { pprof.StopCPUProfile(); f.Close() }()
		}
	}
	if path := os.Getenv("IOTGW_MEMPROFILE"); path != "" {
		defer func() {
			if f, err := os.Create(path); err == nil {
				_ = pprof.Lookup("heap").WriteTo(f, 0)
				f.Close()
			}
		}()
	}
	// Caught before the tree starts: a stop asked for during start-up (a
	// service manager's quick restart) still gets the orderly shutdown.
	sig := stopSignals()
	bv := currentVersion()
	sd := newSDNotifier(os.Getenv)
	opts := actors.Options{Config: cfg, Logger: log, Version: bv.Version, RemoteLog: remote}
	if every := sd.pingEvery(); every > 0 {
		opts.AliveEvery = every
		opts.Alive = func() {
			if err := sd.notify("WATCHDOG=1"); err != nil {
				log.Warn().Err(err).Msg("systemd watchdog ping")
			}
		}
	}
	gw, err := actors.Start(opts)
	if err != nil {
		log.Error().Err(err).Msg("cannot start")
		return 1
	}
	if err := sd.notify("READY=1\nSTATUS=running"); err != nil {
		log.Warn().Err(err).Msg("systemd notify")
	}
	log.Info().Str("version", bv.Version).Str("commit", bv.Commit).Str("config", *path).Int("connectors", len(cfg.Connectors)).Msg("gateway started")
	defer releaseStartupPagesLater(cfg.Resources.KeepStartupPages, log)()
	defer governProcs(cfg.Resources.MaxProcs, log)()
	stopAutomation, err := startAutomation(gw, *path, log)
	if err != nil {
		// Data collection must not stop for a broken automation file: log
		// every problem's summary and run without automation.
		log.Error().Err(err).Msg("automation not started; the gateway runs without it (iotgw check shows every problem)")
	}
	return waitAndStop(gw, sig, log, sd, stopAutomation)
}

// stopSignals starts catching SIGINT and SIGTERM for waitAndStop.
func stopSignals() chan os.Signal {
	sig := make(chan os.Signal, 2)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	return sig
}

// waitAndStop blocks until SIGINT/SIGTERM and stops the tree in order; a second
// signal, or the 5 s budget running out, exits at once.
func waitAndStop(gw *actors.Gateway, sig chan os.Signal, log zerolog.Logger, sd sdNotifier, before ...func()) int {
	s := <-sig
	log.Info().Str("signal", s.String()).Msg("stopping")
	_ = sd.notify("STOPPING=1")
	// Automation first: nothing may queue a write to a connector that stops.
	for _, f := range before {
		f()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4500*time.Millisecond)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- gw.Stop(ctx) }()
	select {
	case err := <-done:
		if err != nil {
			log.Error().Err(err).Msg("stop")
			return 1
		}
		return 0
	case <-sig:
		log.Warn().Msg("second signal: exiting now")
		return 1
	case <-ctx.Done():
		log.Error().Msg("stop took too long; exiting")
		return 1
	}
}
