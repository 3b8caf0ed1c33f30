package config

import (
	"crypto/sha256"
	"encoding/json"

	"github.com/industryos/gateway/protocols"
	"github.com/industryos/gateway/protocols/kit/spec"
)

// LocalAPISection is the main file's key of the local device API, and the
// name its push source runs under (in statistics, logs and metrics).
const LocalAPISection = "localApi"

// localAPIType is the registered type that reads the section (package
// protocols/localapi).
const localAPIType = "localapi"

// parseLocalAPI builds the local device API from its section of the main
// file. It runs as one more push connector, so the runtime needs nothing
// new for it; its Sum is over the section, so editing the section restarts
// it on reload like an edited connector file. nil when the section is
// absent or turns every transport off.
func parseLocalAPI(root *spec.Obj, mainFile string, global protocols.ReportStrategy, taken []Connector) *Connector {
	v, ok := root.Any(LocalAPISection)
	if !ok {
		return nil
	}
	m, isMap := v.(map[string]any)
	if !isMap {
		root.Errorf(LocalAPISection, "expected an object, got %s", spec.Describe(v))
		return nil
	}
	for _, c := range taken {
		if c.Name == LocalAPISection {
			root.Errorf(LocalAPISection, "a connector is already named %q; rename it, the local device API runs under that name", LocalAPISection)
			return nil
		}
	}
	factory, ok := protocols.Lookup(localAPIType)
	if !ok {
		root.Problems().Skipf(root.File(), root.KeyPath(LocalAPISection), "the local device API is not in this build (build tag protocols.localapi); the section is ignored")
		return nil
	}
	raw, _ := json.Marshal(m)
	sum := sha256.Sum256(raw)
	file, path := root.File(), root.KeyPath(LocalAPISection)
	build := func(ps *spec.Problems) (protocols.Connector, error) {
		conn, err := factory(protocols.ConnectorConfig{Name: LocalAPISection, Type: localAPIType,
			Config: spec.New(ps, file, path, m), File: absPath(mainFile), Report: global})
		if err == nil && ps.HasErrors() {
			err = ps.Err()
		}
		return conn, err
	}
	conn, err := build(root.Problems())
	if err != nil {
		return nil
	}
	if e, ok := conn.(interface{ Enabled() bool }); ok && !e.Enabled() {
		return nil
	}
	return &Connector{Name: LocalAPISection, Type: localAPIType, Connector: conn, Sum: sum,
		Build: func() (protocols.Connector, error) { return build(&spec.Problems{}) }}
}
