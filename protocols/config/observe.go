package config

import (
	"net"
	"strconv"
	"strings"

	"github.com/industryos/gateway/protocols/kit/spec"
)

// DefaultHTTPAddress is where the observability endpoint listens when it is
// enabled without an address: loopback only, so nothing is exposed to the
// plant network unless someone asks for it.
const DefaultHTTPAddress = "127.0.0.1:9100"

// EnvHTTPAddress overrides http.address and enables the endpoint.
const EnvHTTPAddress = "IOTGW_HTTP_ADDRESS"

// HTTP is our own "http" section of the main file: the observability
// endpoint (/metrics, /healthz, /readyz and optionally /debug/pprof).
type HTTP struct {
	Enabled bool
	Address string // host:port; port 0 picks a free port
	Pprof   bool   // serve /debug/pprof
}

// Logs is the level part of the "logs" section. Upstream files may carry
// other keys there; only "level" is read and nothing else is reported.
type Logs struct {
	Level string // zerolog level name; "" when not configured
}

// logLevels are zerolog's level names, as --log-level takes them.
var logLevels = []string{"trace", "debug", "info", "warn", "error"}

func parseHTTP(root *spec.Obj, getenv func(string) string) HTTP {
	h := HTTP{Address: DefaultHTTPAddress}
	if o := root.Obj("http"); o != nil {
		h.Enabled = o.Bool("enabled", false)
		h.Address = o.Str("address", DefaultHTTPAddress)
		h.Pprof = o.Bool("pprof", false)
		checkAddress(o, "address", h.Address)
		o.Done()
	}
	if getenv != nil {
		if v := strings.TrimSpace(getenv(EnvHTTPAddress)); v != "" {
			h.Enabled = true
			h.Address = v
			env := spec.New(root.Problems(), "environment", "", map[string]any{EnvHTTPAddress: v})
			checkAddress(env, EnvHTTPAddress, v)
		}
	}
	return h
}

func checkAddress(o *spec.Obj, key, addr string) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		o.Errorf(key, "%q is not host:port (e.g. %q)", addr, DefaultHTTPAddress)
		return
	}
	if p, err := strconv.Atoi(port); err != nil || p < 0 || p > 65535 {
		o.Errorf(key, "%q: port %q is not a number in 0..65535", addr, port)
	}
	if host != "" && net.ParseIP(host) == nil && strings.ContainsAny(host, " /") {
		o.Errorf(key, "%q: %q is not a host name or IP address", addr, host)
	}
}

// parseLogs reads logs.level when "logs" is an object; upstream's other log
// settings in the same section are left alone.
func parseLogs(root *spec.Obj) Logs {
	v, ok := root.Any("logs")
	if !ok {
		return Logs{}
	}
	m, isMap := v.(map[string]any)
	if !isMap {
		return Logs{}
	}
	o := spec.New(root.Problems(), root.File(), root.KeyPath("logs"), m)
	return Logs{Level: o.Enum("level", "", logLevels...)}
}
