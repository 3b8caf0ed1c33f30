package main

import (
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/rs/zerolog"

	"github.com/industryos/gateway/actors"
	"github.com/industryos/gateway/actors/automation"
	"github.com/industryos/gateway/actors/automation/handler"
)

// checkAutomation validates automation.yaml when there is one: every
// problem with its path, false when any is an error.
func checkAutomation(path string, stdout, stderr io.Writer) bool {
	cfg, ps, err := automation.Load(path)
	if ps != nil {
		for _, p := range ps.List {
			fmt.Fprintln(stderr, p.String())
		}
	}
	if err != nil {
		if ps == nil {
			fmt.Fprintln(stderr, err)
		}
		fmt.Fprintf(stderr, "%s: invalid automation\n", path)
		return false
	}
	if cfg != nil {
		fmt.Fprintf(stdout, "%s: %d forwards, %d tasks\n", path, len(cfg.Forwards), len(cfg.Tasks))
	}
	return true
}

// watchEvery is how often the automation file is checked for changes.
const watchEvery = 2 * time.Second

// startAutomation runs automation.yaml next to the main config, when there
// is one, on the gateway's bus; a change of the file, or SIGHUP, reloads it
// without touching the connectors (a file with errors is refused and the
// running one stays).
// The returned stop is never nil.
func startAutomation(gw *actors.Gateway, mainPath string, log zerolog.Logger) (stop func(), err error) {
	path := filepath.Join(filepath.Dir(mainPath), automation.FileName)
	cfg, ps, err := automation.Load(path)
	if ps != nil {
		for _, p := range ps.NotErrors() {
			log.Warn().Msg(p.String())
		}
	}
	if err != nil {
		return func() {}, err
	}
	if cfg == nil {
		return func() {}, nil
	}
	eng, err := automation.Start(cfg, automation.Deps{
		System: gw.ActorSystem(), Bus: gw.Bus(), Log: log,
		Env: handler.Env{WriteDevice: gw.WriteAttributes, DeviceRPC: gw.DeviceRPC, Journal: gw.AppendGatewayEvents},
	})
	if err != nil {
		return func() {}, err
	}
	gw.SetAutomationStatus(func() any { return eng.Report() })
	gw.SetAutomationStats(func() any { return eng.Summary() })
	logReload := func(err error) {
		if err != nil {
			log.Error().Msg(err.Error())
		} else {
			log.Info().Str("file", path).Msg("automation reloaded")
		}
	}
	// The file is watched; SIGHUP reloads it at once.
	stopWatch := eng.WatchFile(path, watchEvery, logReload)
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	done := make(chan struct{})
	go func() {
		for {
			select {
			case <-done:
				return
			case <-hup:
				logReload(eng.ReloadFile(path))
			}
		}
	}()
	return func() {
		gw.SetAutomationStatus(nil)
		gw.SetAutomationStats(nil)
		stopWatch()
		signal.Stop(hup)
		close(done)
		if err := eng.Stop(); err != nil {
			log.Warn().Err(err).Msg("stopping automation")
		}
	}, nil
}
