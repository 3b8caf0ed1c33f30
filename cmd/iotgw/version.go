package main

import (
	"fmt"
	"runtime"
	"runtime/debug"
	"strings"
)

// Release builds set these with -ldflags "-X main.version=v1.2.3 -X main.commit=... -X main.date=...";
// otherwise they come from the build info the go command stamps into every binary built in a
// git checkout (the module's pseudo-version, vcs.revision, vcs.time, vcs.modified).
var (
	version string
	commit  string
	date    string
)

// buildVersion is what the gateway reports as its version: to the platform (gateway_version
// RPC, Version attribute), in iotgw_build_info and in `iotgw version`.
type buildVersion struct {
	Version  string // v1.2.3, a pseudo-version such as v0.0.0-20261204180000-22c6f0f1234a+dirty, or (devel)
	Commit   string // full revision, "" when unknown
	Date     string // commit time (RFC 3339), "" when unknown
	Modified bool   // built from a checkout with uncommitted changes
	Go       string
}

func currentVersion() buildVersion {
	bi, _ := debug.ReadBuildInfo()
	return resolveVersion(bi, version, commit, date)
}

func resolveVersion(bi *debug.BuildInfo, ldVersion, ldCommit, ldDate string) buildVersion {
	v := buildVersion{Version: "(devel)", Go: runtime.Version()}
	if bi != nil {
		if bi.Main.Version != "" {
			v.Version = bi.Main.Version
		}
		v.Go = bi.GoVersion
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				v.Commit = s.Value
			case "vcs.time":
				v.Date = s.Value
			case "vcs.modified":
				v.Modified = s.Value == "true"
			}
		}
	}
	// `go run` and `go build` of a single package in a checkout older than the module's
	// pseudo-version support report (devel); the commit still tells which code this is.
	if v.Version == "(devel)" && v.Commit != "" {
		v.Version = "(devel)-" + shortCommit(v.Commit)
		if v.Modified {
			v.Version += "+dirty"
		}
	}
	if ldVersion != "" {
		v.Version = ldVersion
	}
	if ldCommit != "" {
		v.Commit = ldCommit
	}
	if ldDate != "" {
		v.Date = ldDate
	}
	return v
}

func shortCommit(c string) string {
	if len(c) > 12 {
		return c[:12]
	}
	return c
}

func (v buildVersion) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "iotgw %s\n", v.Version)
	commit := v.Commit
	if commit == "" {
		commit = "unknown"
	}
	if v.Modified {
		commit += " (modified)"
	}
	fmt.Fprintf(&b, "commit: %s\n", commit)
	d := v.Date
	if d == "" {
		d = "unknown"
	}
	fmt.Fprintf(&b, "date:   %s\n", d)
	fmt.Fprintf(&b, "go:     %s %s/%s\n", v.Go, runtime.GOOS, runtime.GOARCH)
	return b.String()
}
