package actors

// startServices starts the protocols' gateway-wide servers the main file
// switches on (config.Service), before the connectors that use them. The
// runtime knows them only through the registry in package protocols, so it
// imports no protocol: a build without a protocol has none of its server.
// A service that fails to start is logged and the gateway runs on; its
// connectors report their link down.
func (g *Gateway) startServices() {
	for _, s := range g.cfg.Services {
		log := g.log.With().Str("component", s.Section).Logger()
		if err := s.Service.Start(log); err != nil {
			log.Error().Err(err).Msgf("%s server not started", s.Section)
			continue
		}
		g.services = append(g.services, s)
	}
}

// stopServices stops what startServices started, in reverse order, after
// the connectors.
func (g *Gateway) stopServices() {
	for i := len(g.services) - 1; i >= 0; i-- {
		g.services[i].Service.Stop()
	}
	g.services = nil
}
