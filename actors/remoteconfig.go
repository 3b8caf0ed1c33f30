package actors

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/industryos/gateway/protocols"
	"github.com/industryos/gateway/protocols/config"
	"github.com/industryos/gateway/protocols/platform"
)

// Remote configuration keys (shared attributes of the gateway device).
const (
	keyGeneral    = "general_configuration"
	keyStorage    = "storage_configuration"
	keyActive     = "active_connectors"
	keyLogLevel   = "RemoteLoggingLevel"
	keyStatus     = "remoteConfigurationStatus"
	maxBackups    = 10
	backupDirName = "backup"
)

// remoteConfig applies configuration sent by the platform. Every change is
// validated with the same loader as `iotgw check` against a scratch copy of
// the files; only a valid result is written (with backups) and applied by
// restarting the actor tree. The journal is never touched.
type remoteConfig struct {
	g  *Gateway
	mu sync.Mutex // one change at a time
	// reqID numbers v1/devices/me/attributes/request/<n>.
	reqID int64
}

// trial is how long a new general_configuration gets to connect.
func (rc *remoteConfig) trial() time.Duration {
	if d := rc.g.opts.RemoteConfigTrial; d > 0 {
		return d
	}
	return 30 * time.Second
}

// connects waits for the platform session after a reload.
func (rc *remoteConfig) connects() bool {
	ctx, cancel := context.WithTimeout(context.Background(), rc.trial())
	defer cancel()
	return rc.g.waitConnected(ctx)
}

// remoteKeys are requested on every connect, as upstream does.
var remoteKeys = []string{keyLogLevel, keyGeneral, keyStorage, keyActive}

// mainFile is the upstream main file as a generic JSON document.
type mainFile map[string]json.RawMessage

type connectorEntry struct {
	Type          string `json:"type"`
	Name          string `json:"name"`
	Configuration string `json:"configuration"`
}

func (rc *remoteConfig) readMain() (mainFile, error) {
	raw, err := os.ReadFile(rc.g.conf().File)
	if err != nil {
		return nil, err
	}
	var m mainFile
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, fmt.Errorf("%s: %w (remote configuration needs a JSON main file)", filepath.Base(rc.g.conf().File), err)
	}
	return m, nil
}

func (m mainFile) connectors() []connectorEntry {
	var list []connectorEntry
	_ = json.Unmarshal(m["connectors"], &list)
	return list
}

// handle runs on its own goroutine for every gateway attribute message.
func (rc *remoteConfig) handle(values map[string]json.RawMessage) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	g := rc.g
	main, err := rc.readMain()
	if err != nil {
		rc.report("", err)
		return
	}
	files := map[string][]byte{} // connector file name → new content
	changed := []string{}
	for _, key := range sortedKeys(values) {
		v := values[key]
		switch key {
		case keyLogLevel, keyStatus:
			// RemoteLoggingLevel belongs to the remote log handler.
		case keyGeneral, keyStorage:
			section := "thingsboard"
			if key == keyStorage {
				section = "storage"
			}
			if jsonEqual(main[section], v) {
				continue // unchanged: upstream rebuilt storage anyway (#2124); we don't
			}
			main[section] = v
			changed = append(changed, key)
		case keyActive:
			var names []string
			if err := json.Unmarshal(v, &names); err != nil {
				rc.report(key, fmt.Errorf("%s: want a list of connector names: %v", key, err))
				return
			}
			keep := map[string]bool{}
			for _, n := range names {
				keep[n] = true
			}
			var list []connectorEntry
			for _, c := range main.connectors() {
				if keep[c.Name] {
					list = append(list, c)
				}
			}
			if len(list) == len(main.connectors()) {
				continue
			}
			raw, _ := json.Marshal(list)
			main["connectors"] = raw
			changed = append(changed, key)
		default:
			entry, body, ok, err := parseConnectorAttribute(key, v)
			if !ok {
				continue // some other attribute; not ours
			}
			if err != nil {
				rc.report(key, err)
				return
			}
			list := main.connectors()
			found := false
			for i, c := range list {
				if c.Name == entry.Name {
					entry.Configuration = c.Configuration
					list[i] = entry
					found = true
				}
			}
			if !found {
				list = append(list, entry)
			}
			if cur, err := os.ReadFile(filepath.Join(filepath.Dir(g.conf().File), entry.Configuration)); err == nil && found && jsonEqual(cur, body) {
				continue
			}
			raw, _ := json.Marshal(list)
			main["connectors"] = raw
			files[entry.Configuration] = body
			changed = append(changed, key)
		}
	}
	if len(changed) == 0 {
		return
	}
	mainRaw, _ := json.MarshalIndent(main, "", "  ")
	if err := rc.validate(mainRaw, files); err != nil {
		rc.report(strings.Join(changed, ","), err)
		return
	}
	// Keep what is being replaced, for the connection trial below.
	oldMain, _ := os.ReadFile(g.conf().File)
	oldFiles := map[string][]byte{}
	for name := range files {
		if raw, err := os.ReadFile(filepath.Join(filepath.Dir(g.conf().File), name)); err == nil {
			oldFiles[name] = raw
		}
	}
	if err := rc.write(mainRaw, files); err != nil {
		rc.report(strings.Join(changed, ","), err)
		return
	}
	cfg, err := config.Load(g.conf().File, os.Getenv)
	if err != nil {
		rc.report(strings.Join(changed, ","), err)
		return
	}
	g.log.Info().Strs("changed", changed).Msg("remote configuration applied; restarting the actor tree")
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := g.Reload(ctx, cfg); err != nil {
		rc.report(strings.Join(changed, ","), err)
		return
	}
	if slices.Contains(changed, keyGeneral) && !rc.connects() {
		// A platform address or credential that validates but does not work
		// would cut the gateway off from the only channel that can fix it:
		// go back to the previous files, as upstream does after its trial.
		for name, raw := range oldFiles {
			_ = writeFileAtomic(filepath.Join(filepath.Dir(g.conf().File), name), raw)
		}
		_ = writeFileAtomic(g.conf().File, oldMain)
		if old, err := config.Load(g.conf().File, os.Getenv); err == nil {
			_ = g.Reload(ctx, old)
		}
		rc.report(strings.Join(changed, ","), fmt.Errorf("the new platform connection did not come up within %s; the previous configuration was restored", rc.trial()))
		return
	}
	rc.report(strings.Join(changed, ","), nil)
	for _, k := range changed {
		if k == keyStorage {
			// The open journal holds undelivered data; swapping it live could
			// strand that data, so the new storage is used from the next start.
			g.log.Warn().Msg("storage_configuration saved; it takes effect when the gateway process restarts")
		}
	}
}

// parseConnectorAttribute recognises the upstream wrapper
// {"name","type","configuration"?,"configurationJson":{...}}.
func parseConnectorAttribute(key string, v json.RawMessage) (connectorEntry, []byte, bool, error) {
	var w struct {
		Name              string          `json:"name"`
		Type              string          `json:"type"`
		Configuration     string          `json:"configuration"`
		ConfigurationJSON json.RawMessage `json:"configurationJson"`
	}
	if len(v) == 0 || v[0] != '{' || json.Unmarshal(v, &w) != nil || len(w.ConfigurationJSON) == 0 {
		return connectorEntry{}, nil, false, nil
	}
	if w.Name == "" {
		w.Name = key
	}
	if w.Type == "" {
		return connectorEntry{}, nil, true, fmt.Errorf("%s: connector attribute without \"type\"", key)
	}
	file := w.Configuration
	if file == "" || strings.ContainsAny(file, `/\`) {
		// Never let a remote name write outside the config directory.
		file = sanitizeFileName(w.Name) + ".json"
	}
	var body bytes.Buffer
	if err := json.Indent(&body, w.ConfigurationJSON, "", "  "); err != nil {
		return connectorEntry{}, nil, true, fmt.Errorf("%s: configurationJson: %v", key, err)
	}
	return connectorEntry{Type: w.Type, Name: w.Name, Configuration: file}, body.Bytes(), true, nil
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

// validate loads the candidate files from a scratch directory with the
// regular loader, so a remote change is held to exactly what `iotgw check` says.
func (rc *remoteConfig) validate(mainRaw []byte, files map[string][]byte) error {
	dir, err := os.MkdirTemp("", "iotgw-remote-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	src := filepath.Dir(rc.g.conf().File)
	var main mainFile
	_ = json.Unmarshal(mainRaw, &main)
	for _, c := range main.connectors() {
		body, ok := files[c.Configuration]
		if !ok {
			if body, err = os.ReadFile(filepath.Join(src, c.Configuration)); err != nil {
				return fmt.Errorf("connector %q: %w", c.Name, err)
			}
		}
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, c.Configuration)), 0o700); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dir, c.Configuration), body, 0o600); err != nil {
			return err
		}
	}
	// Files the thingsboard section refers to (certificates, filter list)
	// are resolved against the real directory: copy the main file's name only.
	scratch := filepath.Join(dir, filepath.Base(rc.g.conf().File))
	if err := os.WriteFile(scratch, mainRaw, 0o600); err != nil {
		return err
	}
	_, err = config.Load(scratch, os.Getenv)
	return err
}

// write backs up and replaces the files; each write is atomic.
func (rc *remoteConfig) write(mainRaw []byte, files map[string][]byte) error {
	dir := filepath.Dir(rc.g.conf().File)
	for name, body := range files {
		path := filepath.Join(dir, name)
		backup(path)
		if err := writeFileAtomic(path, body); err != nil {
			return err
		}
	}
	backup(rc.g.conf().File)
	return writeFileAtomic(rc.g.conf().File, mainRaw)
}

// backup keeps config/backup/<name>.backup.<unixts>.json, at most 10 per file.
func backup(path string) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return
	}
	dir := filepath.Join(filepath.Dir(path), backupDirName)
	if os.MkdirAll(dir, 0o700) != nil {
		return
	}
	base := strings.TrimSuffix(filepath.Base(path), filepath.Ext(path))
	_ = writeFileAtomic(filepath.Join(dir, fmt.Sprintf("%s.backup.%d.json", base, time.Now().UnixNano())), raw)
	old, _ := filepath.Glob(filepath.Join(dir, base+".backup.*.json"))
	sort.Strings(old)
	for len(old) > maxBackups {
		_ = os.Remove(old[0])
		old = old[1:]
	}
}

// report publishes the outcome as a client attribute, so the operator sees a
// rejected change and why next to the configuration widget.
func (rc *remoteConfig) report(key string, err error) {
	g := rc.g
	b := []byte(`{"` + keyStatus + `":{"key":`)
	b = protocols.AppendJSONString(b, key)
	b = append(b, `,"applied":`...)
	b = strconv.AppendBool(b, err == nil)
	if err != nil {
		b = append(b, `,"error":`...)
		b = protocols.AppendJSONString(b, err.Error())
		g.log.Error().Str("key", key).Msg("remote configuration rejected:\n" + err.Error())
	}
	b = append(b, `,"ts":`...)
	b = strconv.AppendInt(b, time.Now().UnixMilli(), 10)
	b = append(b, "}}"...)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if perr := g.PublishWhenUp(ctx, platform.TopicMeAttributes, b, 1); perr != nil {
		g.log.Warn().Err(perr).Msg("cannot report remote configuration status")
	}
}

// announce publishes the current configuration as client attributes and
// requests the shared configuration keys; it runs after every connect.
func (rc *remoteConfig) announce() {
	g := rc.g
	main, err := rc.readMain()
	if err != nil {
		g.log.Warn().Err(err).Msg("remote configuration: cannot read the main file")
		return
	}
	var names []string
	out := map[string]json.RawMessage{}
	out[keyGeneral] = main["thingsboard"]
	out[keyStorage] = main["storage"]
	for _, c := range main.connectors() {
		names = append(names, c.Name)
		body, err := os.ReadFile(filepath.Join(filepath.Dir(g.conf().File), c.Configuration))
		if err != nil || !json.Valid(body) {
			continue
		}
		w, _ := json.Marshal(map[string]any{"name": c.Name, "type": c.Type, "configuration": c.Configuration,
			"configurationJson": json.RawMessage(body), "ts": time.Now().UnixMilli()})
		out[c.Name] = w
	}
	out[keyActive], _ = json.Marshal(names)
	payload, _ := json.Marshal(out)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := g.PublishDirect(ctx, platform.TopicMeAttributes, payload, 1); err != nil {
		g.log.Debug().Err(err).Msg("configuration attributes not sent")
		return
	}
	rc.mu.Lock()
	rc.reqID++
	id := rc.reqID
	rc.mu.Unlock()
	req, _ := json.Marshal(map[string]string{"sharedKeys": strings.Join(append(append([]string{}, remoteKeys...), names...), ",")})
	if err := g.PublishDirect(ctx, platform.TopicMeAttributesRequestPrefix+strconv.FormatInt(id, 10), req, 1); err != nil {
		g.log.Debug().Err(err).Msg("shared configuration request not sent")
	}
}

func jsonEqual(a, b []byte) bool {
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return bytes.Equal(a, b)
	}
	xa, _ := json.Marshal(x)
	ya, _ := json.Marshal(y)
	return bytes.Equal(xa, ya)
}
