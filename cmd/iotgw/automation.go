package main

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"sync"
	"syscall"
	"time"

	"github.com/rs/zerolog"

	"github.com/industryos/gateway/actors"
	"github.com/industryos/gateway/actors/automation"
	"github.com/industryos/gateway/actors/automation/handler"
	"github.com/industryos/gateway/persistence/atomicfile"
	"github.com/industryos/gateway/protocols/config"
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

// startAutomation runs automation.yaml next to the main config on the
// gateway's bus; a change of the file, or SIGHUP, reloads it without
// touching the connectors (a file with errors is refused and the running
// one stays). Without a valid file the gateway runs without automation
// and starts it once a valid file appears, on disk or from the platform.
// The returned stop is never nil.
func startAutomation(gw *actors.Gateway, mainPath string, log zerolog.Logger) (stop func(), err error) {
	path := filepath.Join(filepath.Dir(mainPath), automation.FileName)
	cfg, ps, err := automation.Load(path)
	if ps != nil {
		for _, p := range ps.NotErrors() {
			log.Warn().Msg(p.String())
		}
	}
	if err == nil && cfg != nil {
		if stop, err = runAutomation(gw, cfg, path, log); err == nil {
			return stop, nil
		}
	}
	return awaitAutomation(gw, path, log), err
}

// awaitAutomation waits, without an engine, for a valid automation file:
// written next to the main config (checked every watchEvery) or sent by
// the platform as automation_configuration, which is written there first.
// The first one that loads starts the engine.
func awaitAutomation(gw *actors.Gateway, path string, log zerolog.Logger) (stop func()) {
	var (
		mu      sync.Mutex
		running func() // the engine's stop, once started
		stopped bool
		seen    [32]byte // the last content tried
	)
	// try starts the engine from the file when its content is new and
	// valid; it reports whether the content was new.
	try := func(raw []byte) (bool, error) {
		mu.Lock()
		defer mu.Unlock()
		sum := sha256.Sum256(raw)
		if stopped || running != nil || sum == seen {
			return false, nil
		}
		seen = sum
		cfg, ps := automation.Parse(path, raw)
		if err := ps.Err(); err != nil {
			return true, fmt.Errorf("automation %s not started:\n%w", path, err)
		}
		stop, err := runAutomation(gw, cfg, path, log)
		if err != nil {
			return true, err
		}
		running = stop
		log.Info().Str("file", path).Msg("automation started")
		return true, nil
	}
	gw.SetAutomationRemote(func(text []byte) (bool, error) {
		if err := storeAutomation(path, text); err != nil {
			return true, fmt.Errorf("automation not applied:\n%w", err)
		}
		_, err := try(text)
		return true, err
	})
	stopPoll := automation.PollFile(path, watchEvery, func(raw []byte, _ [32]byte) bool {
		changed, err := try(raw)
		if changed && err != nil {
			log.Error().Msg(err.Error())
		}
		mu.Lock()
		defer mu.Unlock()
		return running == nil // once started, the engine watches the file
	})
	return func() {
		stopPoll()
		mu.Lock()
		stopped = true
		stop := running
		mu.Unlock()
		if stop != nil {
			stop()
		} else {
			gw.SetAutomationRemote(nil)
		}
	}
}

// runAutomation starts the engine for cfg loaded from path and wires it to
// the gateway: status, platform stats, remote configuration, file watch and
// SIGHUP.
func runAutomation(gw *actors.Gateway, cfg *automation.Config, path string, log zerolog.Logger) (stop func(), err error) {
	eng, err := automation.Start(cfg, automation.Deps{
		System: gw.ActorSystem(), Bus: gw.Bus(), Log: log,
		Env: handler.Env{WriteDevice: gw.WriteAttributes, DeviceRPC: gw.DeviceRPC, Journal: gw.AppendGatewayEvents},
	})
	if err != nil {
		return nil, err
	}
	gw.SetAutomationStatus(func() any { return eng.Report() })
	gw.SetAutomationStats(func() any { return eng.Summary() })
	gw.SetAutomationRemote(func(text []byte) (bool, error) { return applyRemoteAutomation(eng, path, text) })
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
		gw.SetAutomationRemote(nil)
		stopWatch()
		signal.Stop(hup)
		close(done)
		if err := eng.Stop(); err != nil {
			log.Warn().Err(err).Msg("stopping automation")
		}
	}, nil
}

// applyRemoteAutomation runs an automation file sent by the platform: text
// already in the file changes nothing; text with errors is refused (each
// problem with its line) and the running automation stays; valid text
// replaces the file, the previous one kept under backup/ as remote
// configuration does, and is loaded.
func applyRemoteAutomation(eng *automation.Engine, path string, text []byte) (bool, error) {
	if cur, err := os.ReadFile(path); err == nil && bytes.Equal(cur, text) {
		return false, nil
	}
	if err := storeAutomation(path, text); err != nil {
		return true, fmt.Errorf("automation not applied; the running automation stays:\n%w", err)
	}
	return true, eng.ReloadFile(path)
}

// storeAutomation validates text as an automation file and writes it to
// path, the previous file kept by backupAutomation.
func storeAutomation(path string, text []byte) error {
	if _, ps := automation.Parse(path, text); ps.Err() != nil {
		return ps.Err()
	}
	if err := backupAutomation(path, time.Now()); err != nil {
		return fmt.Errorf("backing up %s: %w", path, err)
	}
	return atomicfile.Write(path, text, 0o600)
}

// backupAutomation keeps path's current content as
// backup/automation.backup.<ns>.yaml, the newest 10, as remote
// configuration keeps the JSON files.
func backupAutomation(path string, now time.Time) error {
	raw, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	dir := filepath.Join(filepath.Dir(path), config.BackupDir)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	if err := atomicfile.Write(filepath.Join(dir, fmt.Sprintf("automation.backup.%d.yaml", now.UnixNano())), raw, 0o600); err != nil {
		return err
	}
	old, _ := filepath.Glob(filepath.Join(dir, "automation.backup.*.yaml"))
	sort.Strings(old) // same-width nanosecond stamps sort by time
	for len(old) > 10 {
		_ = os.Remove(old[0])
		old = old[1:]
	}
	return nil
}
