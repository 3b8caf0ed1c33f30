package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func writeMain(t *testing.T, body string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "tb_gateway.json")
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

const minimalMain = `{"thingsboard": {"host": "h", "security": {"accessToken": "t"}}%s}`

func TestHTTPDefaults(t *testing.T) {
	cfg, err := Load(writeMain(t, strings.Replace(minimalMain, "%s", "", 1)), func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	if cfg.HTTP.Enabled || cfg.HTTP.Pprof || cfg.HTTP.Address != "127.0.0.1:9100" {
		t.Errorf("defaults: %+v", cfg.HTTP)
	}
	if cfg.Logs.Level != "" {
		t.Errorf("logs.level default %q", cfg.Logs.Level)
	}
}

func TestHTTPSectionAndEnv(t *testing.T) {
	path := writeMain(t, strings.Replace(minimalMain, "%s",
		`, "http": {"enabled": true, "address": "127.0.0.1:0", "pprof": true}, "logs": {"level": "DEBUG", "format": "upstream key"}`, 1))
	cfg, err := Load(path, func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	if !cfg.HTTP.Enabled || !cfg.HTTP.Pprof || cfg.HTTP.Address != "127.0.0.1:0" || cfg.Logs.Level != "debug" {
		t.Errorf("parsed: %+v %+v", cfg.HTTP, cfg.Logs)
	}
	if w := cfg.Problems.Warnings(); len(w) != 0 {
		t.Errorf("upstream keys in logs must not warn: %v", w)
	}

	// The environment enables the endpoint and replaces the address.
	off := writeMain(t, strings.Replace(minimalMain, "%s", "", 1))
	cfg, err = Load(off, func(k string) string { return map[string]string{EnvHTTPAddress: "0.0.0.0:9200"}[k] })
	if err != nil {
		t.Fatal(err)
	}
	if !cfg.HTTP.Enabled || cfg.HTTP.Address != "0.0.0.0:9200" {
		t.Errorf("env: %+v", cfg.HTTP)
	}
	_, err = Load(off, func(k string) string { return map[string]string{EnvHTTPAddress: "nonsense"}[k] })
	if err == nil || !strings.Contains(err.Error(), `environment: IOTGW_HTTP_ADDRESS: "nonsense" is not host:port`) {
		t.Errorf("bad env address: %v", err)
	}
}

func TestConnectorRemoteLogging(t *testing.T) {
	cfg, err := Load("testdata/valid/tb_gateway.json", func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cfg.Connectors {
		if c.RemoteLogging {
			t.Errorf("connector %q: enableRemoteLogging defaults to false", c.Name)
		}
	}
}

// TestStorageCommitInterval: a syncing journal batches its commits longer by
// default, since each one is a disk sync; commit_interval_ms overrides it and
// a value out of range is an error naming the key.
func TestStorageCommitInterval(t *testing.T) {
	for _, c := range []struct {
		storage string
		want    time.Duration
	}{
		{`{"type": "memory"}`, 5 * time.Millisecond},
		{`{"type": "file"}`, 20 * time.Millisecond},
		{`{"type": "file", "sync_writes": false}`, 5 * time.Millisecond},
		{`{"type": "sqlite", "commit_interval_ms": 50}`, 50 * time.Millisecond},
	} {
		cfg, err := Load(writeMain(t, strings.Replace(minimalMain, "%s", `, "storage": `+c.storage, 1)), func(string) string { return "" })
		if err != nil {
			t.Fatalf("%s: %v", c.storage, err)
		}
		if cfg.Storage.CommitInterval != c.want {
			t.Errorf("%s: commit interval %v, want %v", c.storage, cfg.Storage.CommitInterval, c.want)
		}
	}
	_, err := Load(writeMain(t, strings.Replace(minimalMain, "%s", `, "storage": {"type": "file", "commit_interval_ms": 0}`, 1)), func(string) string { return "" })
	if err == nil || !strings.Contains(err.Error(), "storage.commit_interval_ms") {
		t.Fatalf("commit_interval_ms 0: %v, want an error naming storage.commit_interval_ms", err)
	}
}

// TestStorageMinFree: a Badger journal keeps 64 MB free on its filesystem
// unless min_free_mb says otherwise (0 turns the reserve off); the memory
// journal has no disk.
func TestStorageMinFree(t *testing.T) {
	for _, c := range []struct {
		storage string
		want    int64
	}{
		{`{"type": "memory"}`, 0},
		{`{"type": "file"}`, 64 << 20},
		{`{"type": "badger", "min_free_mb": 512}`, 512 << 20},
		{`{"type": "sqlite", "min_free_mb": 0}`, 0},
	} {
		cfg, err := Load(writeMain(t, strings.Replace(minimalMain, "%s", `, "storage": `+c.storage, 1)), func(string) string { return "" })
		if err != nil {
			t.Fatalf("%s: %v", c.storage, err)
		}
		if cfg.Storage.MinFreeBytes != c.want {
			t.Errorf("%s: min free %d, want %d", c.storage, cfg.Storage.MinFreeBytes, c.want)
		}
	}
	_, err := Load(writeMain(t, strings.Replace(minimalMain, "%s", `, "storage": {"type": "file", "min_free_mb": -1}`, 1)), func(string) string { return "" })
	if err == nil || !strings.Contains(err.Error(), "storage.min_free_mb") {
		t.Fatalf("min_free_mb -1: %v, want an error naming storage.min_free_mb", err)
	}
}
