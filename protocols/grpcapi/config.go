package grpcapi

import (
	"time"

	"github.com/rs/zerolog"

	"github.com/industryos/gateway/protocols"
	"github.com/industryos/gateway/protocols/kit/spec"
)

// Section is the main file's key of the server's settings (upstream's).
const Section = "grpc"

// ParseServer reads the main file's grpc section: upstream's keys, plus our
// host and maxMessageSize. enabled is false when the section leaves the
// server off.
func ParseServer(o *spec.Obj) (cfg ServerConfig, enabled bool) {
	cfg = ServerConfig{Host: "127.0.0.1", Port: 9595, KeepAliveTime: 10 * time.Second, KeepAliveTimeout: 5 * time.Second,
		PermitWithoutCalls: true, MinPingInterval: 5 * time.Second, MaxMessageSize: 4 << 20}
	if o == nil {
		return cfg, false
	}
	enabled = o.Bool("enabled", false)
	// 127.0.0.1 unless set: the connector key is the only authentication.
	cfg.Host = o.Str("host", cfg.Host)
	cfg.Port = int(o.IntRange("serverPort", 9595, 1, 65535))
	cfg.KeepAliveTime = time.Duration(o.IntRange("keepAliveTimeMs", 10000, 1000, 24*3600*1000)) * time.Millisecond
	cfg.KeepAliveTimeout = time.Duration(o.IntRange("keepAliveTimeoutMs", 5000, 100, 3600*1000)) * time.Millisecond
	cfg.PermitWithoutCalls = o.Bool("keepAlivePermitWithoutCalls", true)
	between := o.IntRange("minTimeBetweenPingsMs", 10000, 0, 3600*1000)
	idle := o.IntRange("minPingIntervalWithoutDataMs", 5000, 0, 3600*1000)
	cfg.MinPingInterval = time.Duration(min(between, idle)) * time.Millisecond
	cfg.MaxMessageSize = int(o.IntRange("maxMessageSize", 4<<20, 1024, 64<<20))
	// grpc-go's server has no limit on pings without data to set.
	o.Known("maxPingsWithoutData")
	o.Done()
	return cfg, enabled
}

// server is the Default hub as the runtime's Service.
type server struct {
	hub *Hub
	cfg ServerConfig
}

func newService(o *spec.Obj) protocols.Service {
	cfg, enabled := ParseServer(o)
	if !enabled {
		return nil
	}
	return &server{hub: Default, cfg: cfg}
}

// Start listens; a failed bind leaves the grpc connectors waiting (link
// down in /readyz) and the rest of the gateway running.
func (s *server) Start(log zerolog.Logger) error {
	_, err := s.hub.Listen(s.cfg, log)
	return err
}

func (s *server) Stop() { s.hub.Stop() }

var _ protocols.Service = (*server)(nil)
