package config

import (
	"time"

	"github.com/industryos/gateway/protocols/kit/spec"
)

// GRPC is the grpc section: the server out-of-process connectors register
// with (upstream's keys, plus our host and maxMessageSize).
type GRPC struct {
	Enabled            bool
	Host               string // 127.0.0.1 unless set: the key is the only authentication
	Port               int
	KeepAliveTime      time.Duration
	KeepAliveTimeout   time.Duration
	PermitWithoutCalls bool
	MinPingInterval    time.Duration
	MaxMessageSize     int
}

func parseGRPC(root *spec.Obj) GRPC {
	g := GRPC{Host: "127.0.0.1", Port: 9595, KeepAliveTime: 10 * time.Second, KeepAliveTimeout: 5 * time.Second,
		PermitWithoutCalls: true, MinPingInterval: 10 * time.Second, MaxMessageSize: 4 << 20}
	o := root.Obj("grpc")
	if o == nil {
		return g
	}
	g.Enabled = o.Bool("enabled", false)
	g.Host = o.Str("host", g.Host)
	g.Port = int(o.IntRange("serverPort", 9595, 1, 65535))
	g.KeepAliveTime = time.Duration(o.IntRange("keepAliveTimeMs", 10000, 1000, 24*3600*1000)) * time.Millisecond
	g.KeepAliveTimeout = time.Duration(o.IntRange("keepAliveTimeoutMs", 5000, 100, 3600*1000)) * time.Millisecond
	g.PermitWithoutCalls = o.Bool("keepAlivePermitWithoutCalls", true)
	between := o.IntRange("minTimeBetweenPingsMs", 10000, 0, 3600*1000)
	idle := o.IntRange("minPingIntervalWithoutDataMs", 5000, 0, 3600*1000)
	g.MinPingInterval = time.Duration(min(between, idle)) * time.Millisecond
	g.MaxMessageSize = int(o.IntRange("maxMessageSize", 4<<20, 1024, 64<<20))
	// grpc-go's server has no limit on pings without data to set.
	o.Known("maxPingsWithoutData")
	o.Done()
	return g
}
