package persistence

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"

	"github.com/industryos/gateway/persistence/atomicfile"
)

// DevicesFile is the name of the device registry file, kept beside the main
// config file as upstream keeps it.
const DevicesFile = "connected_devices.json"

// ErrBadDevicesFile is returned by LoadDevices for a file that is neither
// upstream's current nor its older format.
var ErrBadDevicesFile = errors.New("device registry file is not in a known format")

// SavedDevice is one entry of connected_devices.json, in upstream's format,
// so a gateway replacing upstream's keeps its devices' names and profiles.
type SavedDevice struct {
	ConnectorName string  `json:"connectorName"`
	ConnectorID   string  `json:"connectorId,omitempty"`
	DeviceType    string  `json:"device_type"`
	Renaming      *string `json:"renaming"`
	Disconnected  bool    `json:"disconnected"`
}

// LoadDevices reads a device registry file. A missing file is an empty
// registry; a file in no known format is ErrBadDevicesFile (wrapped).
func LoadDevices(path string) (map[string]*SavedDevice, error) {
	raw, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return map[string]*SavedDevice{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read device registry: %w", err)
	}
	devs, err := ParseDevices(raw)
	if err != nil {
		return nil, fmt.Errorf("%s: %w: %w", path, ErrBadDevicesFile, err)
	}
	return devs, nil
}

// ParseDevices reads upstream's current format and its older list format
// [connectorName, deviceType, newName?].
func ParseDevices(raw []byte) (map[string]*SavedDevice, error) {
	var generic map[string]json.RawMessage
	if err := json.Unmarshal(raw, &generic); err != nil {
		return nil, err
	}
	out := make(map[string]*SavedDevice, len(generic))
	for name, v := range generic {
		var s SavedDevice
		if err := json.Unmarshal(v, &s); err == nil {
			out[name] = &s
			continue
		}
		var list []*string
		if err := json.Unmarshal(v, &list); err != nil || len(list) < 2 || list[0] == nil || list[1] == nil {
			return nil, fmt.Errorf("device %q: neither an object nor [connector, type, newName?]", name)
		}
		s = SavedDevice{ConnectorName: *list[0], DeviceType: *list[1]}
		if len(list) > 2 && list[2] != nil {
			s.Renaming = list[2]
		}
		out[name] = &s
	}
	return out, nil
}

// SaveDevices writes the registry atomically (atomicfile.Write), always in
// the current format.
func SaveDevices(path string, devs map[string]*SavedDevice) error {
	raw, err := json.MarshalIndent(devs, "", "  ")
	if err != nil {
		return fmt.Errorf("encode device registry: %w", err)
	}
	if err := atomicfile.Write(path, raw, 0o600); err != nil {
		return fmt.Errorf("save device registry: %w", err)
	}
	return nil
}
