package protocols

import (
	"cmp"
	"fmt"

	"github.com/industryos/gateway/protocols/kit/spec"
)

// Open is the opening every protocol's NewConnector shares. It refuses a
// missing config, runs parse (which reads through the protocol's field
// table, so the defaults and the type and range checks `iotgw check`
// reports come from there), stops on the errors recorded with their file
// and JSON path (unknown keys stay warnings), and picks the connector's
// name: the main config's, else the one parse found in the file.
func Open[C any](cc ConnectorConfig, typ string, parse func(*spec.Obj) (C, string)) (C, string, error) {
	var zero C
	if cc.Config == nil {
		return zero, "", fmt.Errorf("%s: no connector config", typ)
	}
	parsed, name := parse(cc.Config)
	if err := cc.Config.Problems().Err(); err != nil {
		return zero, "", err
	}
	return parsed, cmp.Or(cc.Name, name), nil
}
