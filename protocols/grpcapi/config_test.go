package grpcapi

import (
	"strings"
	"testing"
	"time"

	"github.com/industryos/gateway/protocols/kit/spec"
)

// TestParseServer: upstream's grpc section keys, their defaults, and a bad
// value named by its path.
func TestParseServer(t *testing.T) {
	parse := func(raw string) (ServerConfig, bool, *spec.Problems) {
		ps := &spec.Problems{}
		o := spec.Parse(ps, "tb_gateway.json", []byte(`{"grpc":`+raw+`}`)).Obj("grpc")
		cfg, on := ParseServer(o)
		return cfg, on, ps
	}
	cfg, on, ps := parse(`{"enabled":true,"serverPort":9596,"keepAliveTimeMs":20000,"keepAliveTimeoutMs":1000,
		"keepAlivePermitWithoutCalls":false,"maxPingsWithoutData":0,"minTimeBetweenPingsMs":8000,"minPingIntervalWithoutDataMs":9000}`)
	want := ServerConfig{Host: "127.0.0.1", Port: 9596, KeepAliveTime: 20 * time.Second, KeepAliveTimeout: time.Second,
		MinPingInterval: 8 * time.Second, MaxMessageSize: 4 << 20}
	if !on || cfg != want || len(ps.List) != 0 {
		t.Fatalf("got %+v %v %v, want %+v", cfg, on, ps.List, want)
	}
	if _, on, _ := parse(`{}`); on {
		t.Fatal("an empty section is enabled")
	}
	_, _, ps = parse(`{"enabled":true,"serverPort":70000,"keepAliveTimeMs":"x","srverPort":1}`)
	text := ""
	for _, p := range ps.List {
		text += p.String() + "\n"
	}
	for _, w := range []string{"tb_gateway.json: grpc.serverPort", "grpc.keepAliveTimeMs", `grpc.srverPort`} {
		if !strings.Contains(text, w) {
			t.Errorf("problems lack %q:\n%s", w, text)
		}
	}
	if newService(spec.New(&spec.Problems{}, "f", "grpc", map[string]any{"enabled": false})) != nil {
		t.Fatal("a disabled section made a service")
	}
}
