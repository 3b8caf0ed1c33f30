package main

import (
	"flag"
	"io"
	"testing"

	"github.com/rs/zerolog"

	"github.com/industryos/gateway/protocols/config"
)

// TestRunLogLevel: --log-level (or IOTGW_LOG_LEVEL) wins over logs.level in
// the main file, which wins over the default.
func TestRunLogLevel(t *testing.T) {
	t.Setenv("IOTGW_LOG_LEVEL", "")
	cfg := &config.Gateway{Logs: config.Logs{Level: "debug"}}
	parse := func(args ...string) (*flag.FlagSet, string) {
		fs := flag.NewFlagSet("run", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		level := fs.String("log-level", "info", "")
		if err := fs.Parse(args); err != nil {
			t.Fatal(err)
		}
		return fs, *level
	}
	fs, v := parse()
	if got := runLogLevel(fs, v, cfg); got != zerolog.DebugLevel {
		t.Errorf("config level not used: %v", got)
	}
	fs, v = parse("--log-level", "warn")
	if got := runLogLevel(fs, v, cfg); got != zerolog.WarnLevel {
		t.Errorf("flag must win: %v", got)
	}
	fs, v = parse()
	if got := runLogLevel(fs, v, &config.Gateway{}); got != zerolog.InfoLevel {
		t.Errorf("default: %v", got)
	}
	t.Setenv("IOTGW_LOG_LEVEL", "error")
	fs, v = parse()
	if got := runLogLevel(fs, v, cfg); got != zerolog.InfoLevel {
		// The flag's default came from the environment in cmdRun; here it is "info".
		t.Errorf("environment must win over the config: %v", got)
	}
}
