package actors

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/industryos/gateway/protocols"
	"github.com/industryos/gateway/protocols/config"
	"github.com/industryos/gateway/protocols/platform"
)

// remoteConfig applies configuration sent by the platform: the files are
// turned into a new configuration by config.ApplyRemote, which validates it
// with the same loader as `iotgw check`; only a valid result is written
// (with backups), and config.Diff decides what restarts. The journal is
// never touched.
type remoteConfig struct {
	remoteConfigDeps
	// queue holds updates not applied yet: they are applied one at a time,
	// in the order the platform sent them, so a later change always wins.
	mu      sync.Mutex
	queue   []map[string]json.RawMessage
	running bool
	// reqID numbers v1/devices/me/attributes/request/<n>.
	reqID int64
}

// remoteConfigDeps are what remote configuration needs from the gateway.
type remoteConfigDeps struct {
	log   zerolog.Logger
	conf  func() *config.Gateway
	apply func(ctx context.Context, cfg *config.Gateway, changes []config.Change) error
	// waitConnected reports whether the platform session is up before ctx ends.
	waitConnected func(ctx context.Context) bool
	publishWhenUp func(ctx context.Context, topic string, payload []byte, qos byte) error
	publishDirect func(ctx context.Context, topic string, payload []byte, qos byte) error
	goSafe        func(what string, fn func())
	// automation applies an automation file sent by the platform (nil:
	// automation is not running).
	automation func() AutomationApplier
	// trialFor overrides how long a new general_configuration gets to
	// connect (tests); 0 means 30 s.
	trialFor time.Duration
}

// trial is how long a new general_configuration gets to connect.
func (rc *remoteConfig) trial() time.Duration {
	if rc.trialFor > 0 {
		return rc.trialFor
	}
	return 30 * time.Second
}

// connects waits for the platform session after a reload.
func (rc *remoteConfig) connects() bool {
	ctx, cancel := context.WithTimeout(context.Background(), rc.trial())
	defer cancel()
	return rc.waitConnected(ctx)
}

// enqueue takes an attribute message on the MQTT goroutine without
// blocking it; one worker applies the queue in arrival order.
func (rc *remoteConfig) enqueue(values map[string]json.RawMessage) {
	rc.mu.Lock()
	rc.queue = append(rc.queue, values)
	start := !rc.running
	rc.running = true
	rc.mu.Unlock()
	if start {
		rc.goSafe("remote configuration", rc.work)
	}
}

func (rc *remoteConfig) work() {
	for {
		rc.mu.Lock()
		if len(rc.queue) == 0 {
			rc.running = false
			rc.mu.Unlock()
			return
		}
		v := rc.queue[0]
		rc.queue = rc.queue[1:]
		rc.mu.Unlock()
		rc.handleSafe(v)
	}
}

// handleSafe keeps the worker alive past a panicking update, which is
// logged and counted like any background panic.
func (rc *remoteConfig) handleSafe(v map[string]json.RawMessage) {
	done := make(chan struct{})
	rc.goSafe("remote configuration update", func() {
		defer close(done)
		rc.handle(v)
	})
	<-done
}

// KeyAutomation is the shared attribute that carries automation.yaml
// (ours): its text as a JSON string, or a JSON object (JSON is YAML).
const KeyAutomation = "automation_configuration"

// AutomationApplier validates an automation file's text and, when valid,
// writes and runs it; changed is false for the text already in use.
type AutomationApplier func(text []byte) (changed bool, err error)

// applyAutomation handles KeyAutomation, reported under that key.
func (rc *remoteConfig) applyAutomation(raw json.RawMessage) {
	var apply AutomationApplier
	if rc.automation != nil {
		apply = rc.automation()
	}
	if apply == nil {
		rc.report(KeyAutomation, errors.New("automation is not running on this gateway; it starts with a valid automation.yaml next to the main config"))
		return
	}
	text := []byte(raw)
	var s string
	if json.Unmarshal(raw, &s) == nil {
		text = []byte(s)
	}
	changed, err := apply(text)
	if !changed && err == nil {
		return // the running file: a re-send on connect
	}
	if err == nil {
		rc.log.Info().Msg("remote automation configuration applied")
	}
	rc.report(KeyAutomation, err)
}

// handle applies one attribute message.
func (rc *remoteConfig) handle(values map[string]json.RawMessage) {
	if raw, ok := values[KeyAutomation]; ok {
		rc.applyAutomation(raw)
		rest := make(map[string]json.RawMessage, len(values))
		for k, v := range values {
			if k != KeyAutomation {
				rest[k] = v
			}
		}
		values = rest
	}
	cur, err := config.ReadFiles(rc.conf().File)
	if err != nil {
		rc.report("", err)
		return
	}
	u, err := config.ApplyRemote(cur, values, os.Getenv)
	if err != nil {
		key := ""
		if re := (*config.RemoteError)(nil); errors.As(err, &re) {
			key = re.Key
		}
		rc.report(key, err)
		return
	}
	if len(u.Keys) == 0 {
		return
	}
	keys := strings.Join(u.Keys, ",")
	if err := config.WriteSnapshot(u.Writes, time.Now()); err != nil {
		rc.report(keys, err)
		return
	}
	changes := config.Diff(rc.conf(), u.Gateway)
	descr := make([]string, len(changes))
	for i, c := range changes {
		descr[i] = c.String()
	}
	rc.log.Info().Strs("keys", u.Keys).Strs("changes", descr).Str("restarts", config.Widest(changes).String()).
		Msg("remote configuration applied")
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := rc.apply(ctx, u.Gateway, changes); err != nil {
		rc.report(keys, err)
		return
	}
	if slices.Contains(u.Keys, config.KeyGeneral) && !rc.connects() {
		// A platform address or credential that validates but does not work
		// would cut the gateway off from the only channel that can fix it:
		// go back to the previous files, as upstream does after its trial.
		if err := config.Restore(u.Previous); err != nil {
			rc.log.Error().Err(err).Msg("remote configuration: restoring the previous files")
		}
		if old, err := config.Load(rc.conf().File, os.Getenv); err == nil {
			_ = rc.apply(ctx, old, config.Diff(rc.conf(), old))
		}
		rc.report(keys, fmt.Errorf("the new platform connection did not come up within %s; the previous configuration was restored", rc.trial()))
		return
	}
	rc.report(keys, nil)
	for _, c := range changes {
		if s, ok := c.(config.StorageChanged); ok && s.Reopen {
			// The open journal holds undelivered data; swapping it live could
			// strand that data, so the new journal is used from the next start.
			rc.log.Warn().Msg("storage_configuration saved; it takes effect when the gateway process restarts")
		}
		if c.Scope() == config.ScopeProcess {
			rc.log.Warn().Msg(c.String())
		}
	}
}

// report publishes the outcome as a client attribute, so the operator sees a
// rejected change and why next to the configuration widget.
func (rc *remoteConfig) report(key string, err error) {
	b := []byte(`{"` + config.KeyStatus + `":{"key":`)
	b = protocols.AppendJSONString(b, key)
	b = append(b, `,"applied":`...)
	b = strconv.AppendBool(b, err == nil)
	if err != nil {
		b = append(b, `,"error":`...)
		b = protocols.AppendJSONString(b, err.Error())
		rc.log.Error().Str("key", key).Msg("remote configuration rejected:\n" + err.Error())
	}
	b = append(b, `,"ts":`...)
	b = strconv.AppendInt(b, time.Now().UnixMilli(), 10)
	b = append(b, "}}"...)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if perr := rc.publishWhenUp(ctx, platform.TopicMeAttributes, b, 1); perr != nil {
		rc.log.Warn().Err(perr).Msg("cannot report remote configuration status")
	}
}

// announce publishes the current configuration as client attributes and
// requests the shared configuration keys; it runs after every connect.
func (rc *remoteConfig) announce() {
	files, err := config.ReadFiles(rc.conf().File)
	if err != nil {
		rc.log.Warn().Err(err).Msg("remote configuration: cannot read the main file")
		return
	}
	payload, names, err := config.Snapshot(files, time.Now())
	if err != nil {
		rc.log.Warn().Err(err).Msg("remote configuration: cannot describe the configuration")
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := rc.publishDirect(ctx, platform.TopicMeAttributes, payload, 1); err != nil {
		rc.log.Debug().Err(err).Msg("configuration attributes not sent")
		return
	}
	rc.mu.Lock()
	rc.reqID++
	id := rc.reqID
	rc.mu.Unlock()
	keys := append(slices.Clone(config.RemoteKeys), names...)
	if rc.automation != nil && rc.automation() != nil {
		keys = append(keys, KeyAutomation)
	}
	req, _ := json.Marshal(map[string]string{"sharedKeys": strings.Join(keys, ",")})
	if err := rc.publishDirect(ctx, platform.TopicMeAttributesRequestPrefix+strconv.FormatInt(id, 10), req, 1); err != nil {
		rc.log.Debug().Err(err).Msg("shared configuration request not sent")
	}
}
