package actors

import (
	"context"
	"errors"
	"slices"
	"sort"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/industryos/gateway/protocols/config"
)

// applyChanges makes cfg the running configuration and restarts no more than
// changes need (changes is config.Diff of the running configuration and
// cfg):
//
//   - a connector added, removed or changed starts, stops or restarts that
//     connector's actor (with its devices) alone; the others keep running;
//   - a platform or storage change still restarts the whole tree, over the
//     open journal: the platform client, the statistics loop and the global
//     report strategy every connector is built with, and the journal and
//     uplink settings, are all bound when the tree starts;
//   - a live change (device filter, activity check) restarts nothing, and a
//     setting read only at process start waits for the next start.
func (g *Gateway) applyChanges(ctx context.Context, cfg *config.Gateway, changes []config.Change) error {
	if config.Widest(changes) >= config.ScopePlatform {
		return g.Reload(ctx, cfg)
	}
	g.treeMu.Lock()
	defer g.treeMu.Unlock()
	if g.stopped {
		return errors.New("gateway is stopping")
	}
	touched := map[string]bool{}
	for _, c := range changes {
		if name := config.ConnectorName(c); name != "" {
			touched[name] = true
		}
	}
	wanted := map[string]bool{}
	for _, c := range cfg.Connectors {
		wanted[c.Name] = true
	}
	oldCfgs, oldPIDs := g.connectorPIDs()
	running := map[string]*actor.PID{}
	var stop []string
	for i, c := range oldCfgs {
		if i >= len(oldPIDs) {
			continue
		}
		if touched[c.Name] || !wanted[c.Name] {
			stop = append(stop, c.Name)
		}
		running[c.Name] = oldPIDs[i]
	}
	// Stopped before the new ones start: a restarted connector's actor takes
	// the old one's name, and what the old one holds (a serial line, a
	// listening port) must be free for the new one.
	sort.Strings(stop)
	for _, name := range stop {
		_ = g.sys.Root.StopFuture(running[name]).Wait()
		delete(running, name)
	}
	// The new configuration goes live before the new actors start, so their
	// devices read it (connector type, filter); a connector that is not
	// started yet has no PID, which readers already handle.
	pids := make([]*actor.PID, len(cfg.Connectors))
	for i, c := range cfg.Connectors {
		pids[i] = running[c.Name]
	}
	g.setConnectors(cfg, pids)
	next := slices.Clone(pids) // pids is published: readers may hold it
	for i, c := range cfg.Connectors {
		if next[i] == nil {
			g.log.Info().Str("connector", c.Name).Msg("starting connector after a configuration change")
			next[i] = g.spawnConnector(c, true)
		}
	}
	g.setConnectors(cfg, next)
	return nil
}

// setConnectors swaps the configuration and the connector PIDs together;
// pids is never changed after, since readers keep the slice.
func (g *Gateway) setConnectors(cfg *config.Gateway, pids []*actor.PID) {
	g.stateMu.Lock()
	g.cfg = cfg
	g.connectors = pids
	g.stateMu.Unlock()
}
