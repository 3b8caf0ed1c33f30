package template

import (
	"fmt"

	"github.com/industryos/gateway/protocols"
)

// Convert turns one read of the device's registers into telemetry and
// attributes. It is pure, so golden cases pin it down without a device.
// A register the device did not return is left out, not sent as null: the
// platform keeps the key's last value.
func Convert(d *DeviceConfig, regs map[string]any) (protocols.Reading, error) {
	var r protocols.Reading
	var err error
	r.Telemetry, err = convertKeys(d.Telemetry, regs)
	if err != nil {
		return r, err
	}
	r.Attributes, err = convertKeys(d.Attributes, regs)
	return r, err
}

func convertKeys(keys []*KeyConfig, regs map[string]any) ([]protocols.Datapoint, error) {
	var out []protocols.Datapoint
	for _, k := range keys {
		raw, ok := regs[k.Register]
		if !ok {
			continue
		}
		v, ok := protocols.FromGo(raw)
		if !ok {
			return nil, fmt.Errorf("template: register %q holds %T, not a value", k.Register, raw)
		}
		out = append(out, protocols.Datapoint{Key: k.Key, Value: v})
	}
	return out, nil
}
