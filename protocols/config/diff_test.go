package config

import (
	"crypto/sha256"
	"strings"
	"testing"
	"time"
)

func TestDiff(t *testing.T) {
	conn := func(name, typ string, body string) Connector {
		return Connector{Name: name, Type: typ, File: "/etc/iotgw/" + name + ".json", Sum: sha256.Sum256([]byte(body))}
	}
	base := func() *Gateway {
		return &Gateway{
			ThingsBoard: ThingsBoard{Host: "tb", Port: 1883, SyncSharedAttributes: true},
			Storage:     Storage{UpstreamType: "memory", MaxRecords: 10, ReadBatch: 100},
			Connectors:  []Connector{conn("a", "modbus", "1"), conn("b", "mqtt", "2")},
			Activity:    Activity{Timeout: time.Minute},
		}
	}
	cases := []struct {
		name  string
		edit  func(g *Gateway)
		want  []string
		scope Scope
		names []string // connectors named by the changes
	}{
		{name: "same", edit: func(*Gateway) {}, scope: ScopeLive},
		{name: "connector_body", edit: func(g *Gateway) { g.Connectors[1].Sum = sha256.Sum256([]byte("3")) },
			want: []string{`connector "b" changed (configuration)`}, scope: ScopeConnector, names: []string{"b"}},
		{name: "connector_type_file_logging", edit: func(g *Gateway) {
			g.Connectors[0].Type, g.Connectors[0].File, g.Connectors[0].RemoteLogging = "socket", "/x.json", true
		}, want: []string{`connector "a" changed (type, file, enableRemoteLogging)`}, scope: ScopeConnector, names: []string{"a"}},
		{name: "add_remove_reorder", edit: func(g *Gateway) {
			g.Connectors = []Connector{conn("c", "can", "4"), g.Connectors[1]}
		}, want: []string{`connector "a" removed`, `connector "c" added`}, scope: ScopeConnector, names: []string{"a", "c"}},
		{name: "reorder_only", edit: func(g *Gateway) { g.Connectors[0], g.Connectors[1] = g.Connectors[1], g.Connectors[0] }, scope: ScopeLive},
		{name: "platform_and_connector", edit: func(g *Gateway) {
			g.ThingsBoard.Security.AccessToken = "new"
			g.Connectors = g.Connectors[:1]
		}, want: []string{`connector "b" removed`, "thingsboard changed (Security)"}, scope: ScopePlatform, names: []string{"b"}},
		{name: "live", edit: func(g *Gateway) {
			g.ThingsBoard.SyncSharedAttributes = false
			g.Activity.Enabled = true
			g.Filter = &DeviceFilter{}
		}, want: []string{"thingsboard.SyncSharedAttributes changed", "thingsboard.deviceFiltering changed",
			"thingsboard.checkingDeviceActivity changed"}, scope: ScopeLive},
		{name: "storage_batch", edit: func(g *Gateway) { g.Storage.ReadBatch = 5; g.Storage.Note = "x" },
			want: []string{"storage changed (ReadBatch)"}, scope: ScopeTree},
		{name: "process", edit: func(g *Gateway) {
			g.HTTP.Enabled = true
			g.Logs.Level = "debug"
			g.Resources.MemoryLimitMB = 64
		}, want: []string{"http changed (applies at the next start)", "logs changed (applies at the next start)",
			"resources changed (applies at the next start)"}, scope: ScopeProcess},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			old, next := base(), base()
			tc.edit(next)
			changes := Diff(old, next)
			var got, names []string
			for _, c := range changes {
				got = append(got, c.String())
				if n := ConnectorName(c); n != "" {
					names = append(names, n)
				}
			}
			if strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
				t.Errorf("changes:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
			}
			if s := Widest(changes); s != tc.scope {
				t.Errorf("scope %s, want %s", s, tc.scope)
			}
			if strings.Join(names, ",") != strings.Join(tc.names, ",") {
				t.Errorf("connectors %v, want %v", names, tc.names)
			}
		})
	}
}

func TestStorageReopen(t *testing.T) {
	old := &Gateway{Storage: Storage{UpstreamType: "memory", ReadBatch: 1}}
	for field, edit := range map[string]func(*Storage){
		"ReadBatch":      func(s *Storage) { s.ReadBatch = 2 },
		"CommitInterval": func(s *Storage) { s.CommitInterval = time.Second },
		"Dir":            func(s *Storage) { s.Dir = "/data" },
	} {
		next := &Gateway{Storage: old.Storage}
		edit(&next.Storage)
		changes := Diff(old, next)
		sc, ok := changes[0].(StorageChanged)
		if len(changes) != 1 || !ok {
			t.Fatalf("%s: %v", field, changes)
		}
		if want := reopenStorage[field]; sc.Reopen != want {
			t.Errorf("%s: reopen %v, want %v", field, sc.Reopen, want)
		}
	}
}
