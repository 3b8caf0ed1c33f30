package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/industryos/gateway/persistence/atomicfile"
)

// Remote configuration keys: shared attributes of the gateway device, as the
// upstream gateway names them.
const (
	KeyGeneral  = "general_configuration"
	KeyStorage  = "storage_configuration"
	KeyActive   = "active_connectors"
	KeyLogLevel = "RemoteLoggingLevel"
	KeyStatus   = "remoteConfigurationStatus"
)

// RemoteKeys are the shared keys the gateway asks for on every connect (and
// the name of every connector), as upstream does.
var RemoteKeys = []string{KeyLogLevel, KeyGeneral, KeyStorage, KeyActive}

const (
	maxBackups = 10
	// BackupDir is the directory, next to a replaced file, that keeps its
	// previous versions.
	BackupDir = "backup"
)

// Files are the configuration as bytes: the JSON main file and the connector
// files it names. Remote configuration works on them rather than on disk, so
// a change is computed and validated before anything is written.
type Files struct {
	Path string // the main file
	Main []byte
	// Connectors maps a connector entry's "configuration" value to the
	// file's content; a file that cannot be read is absent.
	Connectors map[string][]byte
}

// FileWrite is one file to replace.
type FileWrite struct {
	Path string
	Data []byte // nil: the file did not exist (only in Update.Previous)
}

// Update is what a remote document changes.
type Update struct {
	// Keys are the document's keys that change something, sorted; empty
	// when the document matches the current configuration.
	Keys []string
	// Files are the configuration files after the update.
	Files *Files
	// Gateway is Files loaded and validated (nil when Keys is empty).
	Gateway *Gateway
	// Writes are the files to replace: connector files first, the main
	// file last, so the main file never names a connector file that is not
	// written yet.
	Writes []FileWrite
	// Previous are the same files as they were, to go back to.
	Previous []FileWrite
}

// RemoteError is a rejected remote document: Key names the attribute (or
// the comma-separated attributes) at fault, Err says what is wrong and, for
// a validation error, in which file and at which path.
type RemoteError struct {
	Key string
	Err error
}

func (e *RemoteError) Error() string { return e.Key + ": " + e.Err.Error() }
func (e *RemoteError) Unwrap() error { return e.Err }

// mainDoc is the main file as a generic JSON document: remote configuration
// replaces whole sections and keeps every key it does not know.
type mainDoc map[string]json.RawMessage

// connectorEntry is one entry of the main file's connectors list. Extra
// holds its other keys (class, enableRemoteLogging, ...), kept as they are.
type connectorEntry struct {
	Type, Name, Configuration string
	Extra                     map[string]json.RawMessage
}

func (e connectorEntry) MarshalJSON() ([]byte, error) {
	m := make(map[string]json.RawMessage, len(e.Extra)+3)
	for k, v := range e.Extra {
		m[k] = v
	}
	for k, v := range map[string]string{"type": e.Type, "name": e.Name, "configuration": e.Configuration} {
		m[k], _ = json.Marshal(v)
	}
	return json.Marshal(m)
}

func (e *connectorEntry) UnmarshalJSON(b []byte) error {
	if err := json.Unmarshal(b, &e.Extra); err != nil {
		return err
	}
	for key, dst := range map[string]*string{"type": &e.Type, "name": &e.Name, "configuration": &e.Configuration} {
		if raw, ok := e.Extra[key]; ok {
			// A non-string here is the loader's to report.
			_ = json.Unmarshal(raw, dst)
			delete(e.Extra, key)
		}
	}
	return nil
}

func parseMain(path string, raw []byte) (mainDoc, error) {
	var m mainDoc
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, fmt.Errorf("%s: %w (remote configuration needs a JSON main file)", filepath.Base(path), err)
	}
	if m == nil {
		return nil, fmt.Errorf("%s: expected a JSON object (remote configuration needs a JSON main file)", filepath.Base(path))
	}
	return m, nil
}

// connectors lists the entries; a malformed list reads as empty, and the
// loader reports it.
func (m mainDoc) connectors() []connectorEntry {
	var list []connectorEntry
	if json.Unmarshal(m["connectors"], &list) != nil {
		return nil
	}
	return list
}

// resolve is where a file named in the main file lives.
func resolve(dir, name string) string {
	if filepath.IsAbs(name) {
		return filepath.Clean(name)
	}
	return filepath.Join(dir, name)
}

// ReadFiles reads the main file at path and every connector file it names.
func ReadFiles(path string) (*Files, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading the main file: %w", err)
	}
	m, err := parseMain(path, raw)
	if err != nil {
		return nil, err
	}
	f := &Files{Path: path, Main: raw, Connectors: map[string][]byte{}}
	for _, c := range m.connectors() {
		if c.Configuration == "" {
			continue
		}
		if body, err := os.ReadFile(resolve(filepath.Dir(path), c.Configuration)); err == nil {
			f.Connectors[c.Configuration] = body
		}
	}
	return f, nil
}

// Snapshot is the document the platform sees: the thingsboard and storage
// sections, one wrapper per connector whose file is valid JSON, and the list
// of connector names (also returned, for the shared-keys request). ts stamps
// the connector wrappers, as upstream does.
func Snapshot(f *Files, ts time.Time) (doc []byte, names []string, err error) {
	m, err := parseMain(f.Path, f.Main)
	if err != nil {
		return nil, nil, err
	}
	out := map[string]json.RawMessage{KeyGeneral: m["thingsboard"], KeyStorage: m["storage"]}
	for _, c := range m.connectors() {
		names = append(names, c.Name)
		body, ok := f.Connectors[c.Configuration]
		if !ok || !json.Valid(body) {
			continue
		}
		w, err := json.Marshal(map[string]any{"name": c.Name, "type": c.Type, "configuration": c.Configuration,
			"configurationJson": json.RawMessage(body), "ts": ts.UnixMilli()})
		if err != nil {
			return nil, nil, fmt.Errorf("connector %q: %w", c.Name, err)
		}
		out[c.Name] = w
	}
	out[KeyActive], _ = json.Marshal(names)
	doc, err = json.Marshal(out)
	return doc, names, err
}

// ApplyRemote computes what a remote document (the gateway device's shared
// attributes) changes in the files cur, and validates the result with the
// same loader as `iotgw check`. Keys that are not configuration (another
// attribute, RemoteLoggingLevel, which the remote log applies live) are
// ignored. Nothing is written: see WriteSnapshot.
func ApplyRemote(cur *Files, doc map[string]json.RawMessage, getenv func(string) string) (*Update, error) {
	main, err := parseMain(cur.Path, cur.Main)
	if err != nil {
		return nil, &RemoteError{Key: "main file", Err: err}
	}
	conns := make(map[string][]byte, len(cur.Connectors))
	for k, v := range cur.Connectors {
		conns[k] = v
	}
	written := map[string]bool{} // connector files this update replaces
	var changed []string
	keys := make([]string, 0, len(doc))
	for k := range doc {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, key := range keys {
		v := doc[key]
		switch key {
		case KeyLogLevel, KeyStatus:
		case KeyGeneral, KeyStorage:
			section := "thingsboard"
			if key == KeyStorage {
				section = "storage"
			}
			if jsonEqual(main[section], v) {
				continue // unchanged: upstream rebuilt storage anyway (#2124); we don't
			}
			main[section] = v
			changed = append(changed, key)
		case KeyActive:
			var names []string
			if err := json.Unmarshal(v, &names); err != nil {
				return nil, &RemoteError{Key: key, Err: fmt.Errorf("want a list of connector names: %v", err)}
			}
			keep := map[string]bool{}
			for _, n := range names {
				keep[n] = true
			}
			all := main.connectors()
			var list []connectorEntry
			for _, c := range all {
				if keep[c.Name] {
					list = append(list, c)
				}
			}
			if len(list) == len(all) {
				continue
			}
			main["connectors"], _ = json.Marshal(list)
			changed = append(changed, key)
		default:
			entry, body, ok, err := parseConnectorAttribute(key, v)
			if !ok {
				continue // some other attribute; not ours
			}
			if err != nil {
				return nil, &RemoteError{Key: key, Err: err}
			}
			list := main.connectors()
			found, sameType := false, false
			for i, c := range list {
				if c.Name == entry.Name {
					sameType = strings.EqualFold(c.Type, entry.Type)
					entry.Configuration, entry.Extra = c.Configuration, c.Extra
					list[i] = entry
					found = true
				}
			}
			if !found {
				list = append(list, entry)
			}
			if old, ok := conns[entry.Configuration]; ok && found && sameType && jsonEqual(old, body) {
				continue
			}
			main["connectors"], _ = json.Marshal(list)
			conns[entry.Configuration] = body
			written[entry.Configuration] = true
			changed = append(changed, key)
		}
	}
	if len(changed) == 0 {
		return &Update{Files: cur}, nil
	}
	mainRaw, err := json.MarshalIndent(main, "", "  ")
	if err != nil {
		return nil, &RemoteError{Key: strings.Join(changed, ","), Err: err}
	}
	next := &Files{Path: cur.Path, Main: mainRaw, Connectors: conns}
	g, err := Validate(next, getenv)
	if err != nil {
		return nil, &RemoteError{Key: strings.Join(changed, ","), Err: err}
	}
	u := &Update{Keys: changed, Files: next, Gateway: g}
	dir := filepath.Dir(cur.Path)
	names := make([]string, 0, len(written))
	for name := range written {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		path := resolve(dir, name)
		u.Writes = append(u.Writes, FileWrite{Path: path, Data: conns[name]})
		u.Previous = append(u.Previous, FileWrite{Path: path, Data: cur.Connectors[name]})
	}
	u.Writes = append(u.Writes, FileWrite{Path: cur.Path, Data: mainRaw})
	u.Previous = append(u.Previous, FileWrite{Path: cur.Path, Data: cur.Main})
	return u, nil
}

// Validate loads f with the regular loader, from memory: a remote change is
// held to exactly what `iotgw check` says of the same files. Files the
// thingsboard section refers to (certificates, the filter list) are read
// from the main file's directory.
func Validate(f *Files, getenv func(string) string) (*Gateway, error) {
	dir := filepath.Dir(f.Path)
	byPath := make(map[string][]byte, len(f.Connectors)+1)
	for name, body := range f.Connectors {
		byPath[resolve(dir, name)] = body
	}
	byPath[filepath.Clean(f.Path)] = f.Main
	read := func(p string) ([]byte, error) {
		if b, ok := byPath[filepath.Clean(p)]; ok {
			return b, nil
		}
		return nil, &fs.PathError{Op: "open", Path: p, Err: fs.ErrNotExist}
	}
	return load(f.Path, read, getenv)
}

// parseConnectorAttribute recognises the upstream wrapper
// {"name","type","configuration"?,"configurationJson":{...}}; ok is false
// for any other attribute.
func parseConnectorAttribute(key string, v json.RawMessage) (entry connectorEntry, body []byte, ok bool, err error) {
	var w struct {
		Name              string          `json:"name"`
		Type              string          `json:"type"`
		Configuration     string          `json:"configuration"`
		ConfigurationJSON json.RawMessage `json:"configurationJson"`
	}
	v = bytes.TrimSpace(v)
	if len(v) == 0 || v[0] != '{' || json.Unmarshal(v, &w) != nil || len(w.ConfigurationJSON) == 0 {
		return connectorEntry{}, nil, false, nil
	}
	if w.Name == "" {
		w.Name = key
	}
	if w.Type == "" {
		return connectorEntry{}, nil, true, errors.New(`connector attribute without "type"`)
	}
	file := w.Configuration
	if file == "" || strings.ContainsAny(file, `/\`) || file == "." || file == ".." {
		// Never let a remote name write outside the config directory.
		file = sanitizeFileName(w.Name) + ".json"
	}
	var b bytes.Buffer
	if err := json.Indent(&b, w.ConfigurationJSON, "", "  "); err != nil {
		return connectorEntry{}, nil, true, fmt.Errorf("configurationJson: %v", err)
	}
	return connectorEntry{Type: w.Type, Name: w.Name, Configuration: file}, b.Bytes(), true, nil
}

func sanitizeFileName(s string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(s) {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9', r == '-', r == '_':
			b.WriteRune(r)
		default:
			b.WriteRune('_')
		}
	}
	return b.String()
}

// jsonEqual compares two documents by value (key order and spacing aside).
func jsonEqual(a, b []byte) bool {
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return bytes.Equal(a, b)
	}
	xa, _ := json.Marshal(x)
	ya, _ := json.Marshal(y)
	return bytes.Equal(xa, ya)
}

// WriteSnapshot replaces the files in order, each atomically, after keeping
// its current content in backup/<name>.backup.<unixnano>.json next to it (at
// most 10 per file). now names the backups.
func WriteSnapshot(ws []FileWrite, now time.Time) error {
	for _, w := range ws {
		if err := backup(w.Path, now); err != nil {
			return fmt.Errorf("backing up %s: %w", w.Path, err)
		}
		if err := atomicfile.Write(w.Path, w.Data, 0o600); err != nil {
			return fmt.Errorf("writing %s: %w", w.Path, err)
		}
	}
	return nil
}

// Restore puts back files as Update.Previous lists them, without backups
// (the backups already hold them): a file that did not exist is removed.
func Restore(ws []FileWrite) error {
	var errs []error
	for _, w := range ws {
		var err error
		if w.Data == nil {
			if err = os.Remove(w.Path); errors.Is(err, fs.ErrNotExist) {
				err = nil
			}
		} else {
			err = atomicfile.Write(w.Path, w.Data, 0o600)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("restoring %s: %w", w.Path, err))
		}
	}
	return errors.Join(errs...)
}

// backup keeps a copy of path's current content, if it has one.
func backup(path string, now time.Time) error {
	raw, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil // a new file: nothing to keep
	}
	if err != nil {
		return err
	}
	dir := filepath.Join(filepath.Dir(path), BackupDir)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	base := strings.TrimSuffix(filepath.Base(path), filepath.Ext(path))
	if err := atomicfile.Write(filepath.Join(dir, fmt.Sprintf("%s.backup.%d.json", base, now.UnixNano())), raw, 0o600); err != nil {
		return err
	}
	old, _ := filepath.Glob(filepath.Join(dir, base+".backup.*.json"))
	// Same-width nanosecond stamps sort by time as strings.
	sort.Strings(old)
	for len(old) > maxBackups {
		_ = os.Remove(old[0])
		old = old[1:]
	}
	return nil
}
