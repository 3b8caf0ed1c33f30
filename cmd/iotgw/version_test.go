package main

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"runtime/debug"
	"strings"
	"testing"
)

func TestResolveVersion(t *testing.T) {
	checkout := &debug.BuildInfo{
		GoVersion: "go1.26.8",
		Main:      debug.Module{Path: "github.com/industryos/gateway", Version: "v0.0.0-20261204182547-c75175c4f143+dirty"},
		Settings: []debug.BuildSetting{
			{Key: "vcs", Value: "git"},
			{Key: "vcs.revision", Value: "c75175c4f1433a431903f85172163268ee98e55d"},
			{Key: "vcs.time", Value: "2026-12-04T18:25:47Z"},
			{Key: "vcs.modified", Value: "true"},
		},
	}
	goRun := &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "(devel)"},
		Settings: []debug.BuildSetting{{Key: "vcs.revision", Value: "c75175c4f1433a431903f85172163268ee98e55d"}}}
	noVCS := &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "(devel)"}}
	for _, c := range []struct {
		name            string
		bi              *debug.BuildInfo
		ldV, ldC, ldD   string
		version, commit string
		date            string
		modified        bool
	}{
		{"checkout", checkout, "", "", "", "v0.0.0-20261204182547-c75175c4f143+dirty", "c75175c4f1433a431903f85172163268ee98e55d", "2026-12-04T18:25:47Z", true},
		{"release", checkout, "v1.4.0", "", "", "v1.4.0", "c75175c4f1433a431903f85172163268ee98e55d", "2026-12-04T18:25:47Z", true},
		{"release without vcs", noVCS, "v1.4.0", "abc", "2026-12-01T00:00:00Z", "v1.4.0", "abc", "2026-12-01T00:00:00Z", false},
		{"go run", goRun, "", "", "", "(devel)-c75175c4f143", "c75175c4f1433a431903f85172163268ee98e55d", "", false},
		{"nothing known", noVCS, "", "", "", "(devel)", "", "", false},
		{"no build info", nil, "", "", "", "(devel)", "", "", false},
	} {
		t.Run(c.name, func(t *testing.T) {
			v := resolveVersion(c.bi, c.ldV, c.ldC, c.ldD)
			if v.Version != c.version || v.Commit != c.commit || v.Date != c.date || v.Modified != c.modified {
				t.Fatalf("got %+v", v)
			}
			if v.Version == "dev" || v.Version == "" {
				t.Fatalf("version %q", v.Version)
			}
		})
	}
}

func TestVersionCommand(t *testing.T) {
	for _, arg := range []string{"version", "--version", "-v"} {
		var out, errOut bytes.Buffer
		if code := run([]string{arg}, &out, &errOut); code != 0 {
			t.Fatalf("%s: exit %d", arg, code)
		}
		s := out.String()
		for _, want := range []string{"iotgw ", "\ncommit: ", "\ndate: ", "\ngo: "} {
			if !strings.Contains(s, want) {
				t.Errorf("%s: no %q in %q", arg, want, s)
			}
		}
		if strings.HasPrefix(s, "iotgw dev\n") {
			t.Errorf("%s: %q", arg, s)
		}
	}
}

func TestHealthCommand(t *testing.T) {
	ok := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok")) }))
	defer ok.Close()
	bad := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(503) }))
	defer bad.Close()
	var out, errOut bytes.Buffer
	if code := run([]string{"health", "--url", ok.URL}, &out, &errOut); code != 0 {
		t.Fatalf("healthy: exit %d %s", code, errOut.String())
	}
	if code := run([]string{"health", "--url", bad.URL}, &out, &errOut); code != 1 {
		t.Fatalf("unhealthy: exit %d", code)
	}
	if code := run([]string{"health", "--url", "http://127.0.0.1:1/healthz"}, &out, &errOut); code != 1 {
		t.Fatalf("nothing listening: exit %d", code)
	}
}
