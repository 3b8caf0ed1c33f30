package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// remoteBase is testdata/remote: two Modbus connectors, "Line A" and
// "Line B", and a memory journal.
const remoteBase = "testdata/remote/tb_gateway.json"

func readBase(t testing.TB) *Files {
	t.Helper()
	f, err := ReadFiles(remoteBase)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func loadBase(t testing.TB) *Gateway {
	t.Helper()
	g, err := Validate(readBase(t), noEnv)
	if err != nil {
		t.Fatal(err)
	}
	return g
}

// golden compares got with testdata/remote/<name>, or rewrites it with -update.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", "remote", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs\n--- got\n%s\n--- want\n%s", name, got, want)
	}
}

func TestSnapshot(t *testing.T) {
	doc, names, err := Snapshot(readBase(t), time.UnixMilli(1700000000000))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(names, ",") != "Line A,Line B" {
		t.Errorf("names: %q", names)
	}
	var b bytes.Buffer
	if err := json.Indent(&b, doc, "", "  "); err != nil {
		t.Fatal(err)
	}
	b.WriteByte('\n')
	golden(t, "snapshot.golden.json", b.Bytes())
}

func TestSnapshotRejectsYAMLMain(t *testing.T) {
	_, _, err := Snapshot(&Files{Path: "/etc/iotgw/tb_gateway.yaml", Main: []byte("thingsboard: {}\n")}, time.Time{})
	if err == nil || !strings.Contains(err.Error(), "tb_gateway.yaml") || !strings.Contains(err.Error(), "needs a JSON main file") {
		t.Errorf("err = %v", err)
	}
}

const lineAChanged = `{"name": "Line A", "type": "modbus", "configurationJson": {"master": {"slaves": [
  {"host": "127.0.0.1", "port": 5022, "type": "tcp", "method": "socket", "unitId": 1, "pollPeriod": 1000,
   "deviceName": "Meter a", "deviceType": "meter",
   "timeseries": [{"tag": "power", "type": "16int", "functionCode": 4, "objectsCount": 1, "address": 1}]}]}}}`

const lineCNew = `{"name": "Line C", "type": "modbus", "configuration": "../../etc/passwd", "configurationJson": {"master": {"slaves": [
  {"host": "127.0.0.1", "port": 5023, "type": "tcp", "method": "socket", "unitId": 1, "pollPeriod": 1000,
   "deviceName": "Meter c", "deviceType": "meter",
   "timeseries": [{"tag": "power", "type": "16int", "functionCode": 4, "objectsCount": 1, "address": 1}]}]}}}`

func TestApplyRemote(t *testing.T) {
	general := func(extra string) string {
		return `{"host": "platform.example.com", "port": 1883, "remoteConfiguration": true, "security": {"accessToken": "YOUR_ACCESS_TOKEN"}` + extra + `}`
	}
	cases := []struct {
		name    string
		doc     string
		keys    string   // changed keys, comma-separated
		changes []string // Diff against the base
		scope   Scope
		writes  []string // base names of the files written, in order
		err     []string // substrings of the error
		errKey  string
	}{
		{name: "unchanged", doc: `{"general_configuration": ` + general("") + `, "active_connectors": ["Line A", "Line B"], "RemoteLoggingLevel": "DEBUG", "other": 5}`},
		{name: "unchanged_key_order", doc: `{"storage_configuration": {"max_records_count": 100000, "read_records_count": 100, "type": "memory"}}`},
		{name: "connector_changed", doc: `{"Line A": ` + lineAChanged + `}`, keys: "Line A",
			changes: []string{`connector "Line A" changed (configuration)`}, scope: ScopeConnector,
			writes: []string{"line_a.json", "tb_gateway.json"}},
		{name: "connector_added_name_sanitized", doc: `{"Line C": ` + lineCNew + `}`, keys: "Line C",
			changes: []string{`connector "Line C" added`}, scope: ScopeConnector,
			writes: []string{"line_c.json", "tb_gateway.json"}},
		{name: "connector_removed", doc: `{"active_connectors": ["Line B"]}`, keys: "active_connectors",
			changes: []string{`connector "Line A" removed`}, scope: ScopeConnector,
			writes: []string{"tb_gateway.json"}},
		{name: "log_level_only", doc: `{"RemoteLoggingLevel": "DEBUG"}`},
		{name: "platform", doc: `{"general_configuration": ` + general(`, "port": 8883, "syncDevicesSharedAttributesOnConnect": false`) + `}`,
			keys: "general_configuration", changes: []string{"thingsboard.SyncSharedAttributes changed", "thingsboard changed (Port)"},
			scope: ScopePlatform, writes: []string{"tb_gateway.json"}},
		{name: "storage", doc: `{"storage_configuration": {"type": "memory", "read_records_count": 50}}`,
			keys: "storage_configuration", changes: []string{"storage changed (ReadBatch)"}, scope: ScopeTree,
			writes: []string{"tb_gateway.json"}},
		{name: "storage_reopen", doc: `{"storage_configuration": {"type": "badger", "path": "./data"}}`,
			keys: "storage_configuration", scope: ScopeTree, writes: []string{"tb_gateway.json"},
			changes: []string{"storage changed (UpstreamType, Durable, Dir, MaxRecords, MaxBytes, MaxAge, ReadBatch, SyncWrites, CommitInterval, MinFreeBytes)"}},
		{name: "bad_platform", doc: `{"general_configuration": {"host": "", "port": 99999, "security": {"accessToken": "x"}}}`,
			errKey: "general_configuration", err: []string{"tb_gateway.json: thingsboard.port: 99999 is out of range", "thingsboard.host: must not be empty"}},
		{name: "bad_connector", doc: `{"Line B": {"type": "modbus", "configurationJson": {"master": {"slaves": [{"deviceName": "x", "type": "tcp", "port": "many"}]}}}}`,
			errKey: "Line B", err: []string{"line_b.json"}},
		{name: "connector_without_type", doc: `{"Line B": {"configurationJson": {}}}`,
			errKey: "Line B", err: []string{`Line B: connector attribute without "type"`}},
		{name: "active_not_a_list", doc: `{"active_connectors": "Line A"}`,
			errKey: "active_connectors", err: []string{"active_connectors: want a list of connector names"}},
		{name: "unknown_type", doc: `{"Line C": {"type": "modbsu", "configurationJson": {}}}`,
			errKey: "Line C", err: []string{`unknown connector type "modbsu"`, `did you mean "modbus"?`}},
	}
	base := loadBase(t)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var doc map[string]json.RawMessage
			if err := json.Unmarshal([]byte(tc.doc), &doc); err != nil {
				t.Fatal(err)
			}
			u, err := ApplyRemote(readBase(t), doc, noEnv)
			if len(tc.err) > 0 {
				var re *RemoteError
				if !errors.As(err, &re) || re.Key != tc.errKey {
					t.Fatalf("err = %v, want a RemoteError for %q", err, tc.errKey)
				}
				for _, want := range tc.err {
					if !strings.Contains(err.Error(), want) {
						t.Errorf("error does not say %q:\n%v", want, err)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := strings.Join(u.Keys, ","); got != tc.keys {
				t.Errorf("keys = %q, want %q", got, tc.keys)
			}
			if tc.keys == "" {
				if u.Gateway != nil || len(u.Writes) != 0 {
					t.Errorf("no change, yet %d writes", len(u.Writes))
				}
				return
			}
			var writes []string
			for i, w := range u.Writes {
				writes = append(writes, filepath.Base(w.Path))
				if filepath.Dir(w.Path) != "testdata/remote" {
					t.Errorf("writes outside the config directory: %s", w.Path)
				}
				if u.Previous[i].Path != w.Path {
					t.Errorf("previous %d is %s, not %s", i, u.Previous[i].Path, w.Path)
				}
			}
			if strings.Join(writes, ",") != strings.Join(tc.writes, ",") {
				t.Errorf("writes = %v, want %v", writes, tc.writes)
			}
			changes := Diff(base, u.Gateway)
			var got []string
			for _, c := range changes {
				got = append(got, c.String())
			}
			if strings.Join(got, "\n") != strings.Join(tc.changes, "\n") {
				t.Errorf("changes:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tc.changes, "\n"))
			}
			if s := Widest(changes); s != tc.scope {
				t.Errorf("scope = %s, want %s", s, tc.scope)
			}
			golden(t, "apply_"+tc.name+".golden.json", u.Writes[len(u.Writes)-1].Data)
			// The same document again changes nothing.
			again, err := ApplyRemote(u.Files, doc, noEnv)
			if err != nil || len(again.Keys) != 0 {
				t.Errorf("applying twice: keys %v, err %v", again.Keys, err)
			}
		})
	}
}

// TestApplyRemoteKeepsEntryKeys: a connector update replaces the file and
// the type, and keeps what else its main-file entry says.
func TestApplyRemoteKeepsEntryKeys(t *testing.T) {
	doc := map[string]json.RawMessage{"Line B": json.RawMessage(strings.Replace(lineAChanged, `"Line A"`, `"Line B"`, 1))}
	u, err := ApplyRemote(readBase(t), doc, noEnv)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range u.Gateway.Connectors {
		if c.Name == "Line B" && !c.RemoteLogging {
			t.Error("enableRemoteLogging of Line B was dropped")
		}
	}
}

func TestWriteSnapshot(t *testing.T) {
	dir := t.TempDir()
	main := filepath.Join(dir, "tb_gateway.json")
	conn := filepath.Join(dir, "new.json")
	if err := os.WriteFile(main, []byte(`{"v":0}`), 0o600); err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1700000000, 0)
	for i := 1; i <= 12; i++ {
		ws := []FileWrite{{Path: conn, Data: []byte(`{"c":1}`)}, {Path: main, Data: []byte(`{"v":` + string(rune('0'+i%10)) + `}`)}}
		if err := WriteSnapshot(ws, now.Add(time.Duration(i)*time.Second)); err != nil {
			t.Fatal(err)
		}
	}
	backups, _ := filepath.Glob(filepath.Join(dir, BackupDir, "tb_gateway.backup.*.json"))
	if len(backups) != maxBackups {
		t.Errorf("%d backups of the main file, want %d", len(backups), maxBackups)
	}
	// The oldest go first: the newest backup holds the write before the last.
	if raw, _ := os.ReadFile(backups[len(backups)-1]); string(raw) != `{"v":1}` {
		t.Errorf("newest backup holds %s", raw)
	}
	if raw, _ := os.ReadFile(main); string(raw) != `{"v":2}` {
		t.Errorf("main file holds %s", raw)
	}
	if err := Restore([]FileWrite{{Path: conn}, {Path: main, Data: []byte(`{"v":0}`)}}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(conn); !os.IsNotExist(err) {
		t.Errorf("restore left a file that did not exist: %v", err)
	}
	if raw, _ := os.ReadFile(main); string(raw) != `{"v":0}` {
		t.Errorf("restored main file holds %s", raw)
	}
	if leftovers, _ := filepath.Glob(filepath.Join(dir, ".*.tmp-*")); len(leftovers) != 0 {
		t.Errorf("temporary files left: %v", leftovers)
	}
}

// FuzzApplyRemote: any document is either rejected with a RemoteError or
// gives files that validate and a diff.
func FuzzApplyRemote(f *testing.F) {
	f.Add(`{"Line A": ` + lineAChanged + `}`)
	f.Add(`{"Line C": ` + lineCNew + `, "active_connectors": ["Line C", "Line B"]}`)
	f.Add(`{"general_configuration": {"host": "h", "port": 1, "security": {"accessToken": "x"}}}`)
	f.Add(`{"storage_configuration": {"type": "sqlite"}}`)
	f.Add(`{"x": {"type": "modbus", "configuration": "..", "configurationJson": {}}}`)
	f.Add(`{"active_connectors": null}`)
	base := readBase(f)
	old, err := Validate(base, noEnv)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, s string) {
		var doc map[string]json.RawMessage
		if json.Unmarshal([]byte(s), &doc) != nil {
			return
		}
		u, err := ApplyRemote(base, doc, noEnv)
		if err != nil {
			var re *RemoteError
			if !errors.As(err, &re) {
				t.Fatalf("not a RemoteError: %v", err)
			}
			return
		}
		if len(u.Keys) == 0 {
			return
		}
		if _, err := Validate(u.Files, noEnv); err != nil {
			t.Fatalf("accepted files do not validate: %v", err)
		}
		for _, w := range u.Writes {
			if filepath.Dir(w.Path) != "testdata/remote" {
				t.Fatalf("write outside the config directory: %s", w.Path)
			}
		}
		_ = Diff(old, u.Gateway)
	})
}

// BenchmarkApplyDiff: one connector's configuration arrives, is validated
// and compared with the running configuration.
func BenchmarkApplyDiff(b *testing.B) {
	base := readBase(b)
	old, err := Validate(base, noEnv)
	if err != nil {
		b.Fatal(err)
	}
	doc := map[string]json.RawMessage{"Line A": json.RawMessage(lineAChanged)}
	b.ReportAllocs()
	for b.Loop() {
		u, err := ApplyRemote(base, doc, noEnv)
		if err != nil {
			b.Fatal(err)
		}
		if len(Diff(old, u.Gateway)) != 1 {
			b.Fatal("want one change")
		}
	}
}
