package persistence

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
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

// SaveDevices writes the registry atomically (WriteFileAtomic), always in
// the current format.
func SaveDevices(path string, devs map[string]*SavedDevice) error {
	raw, err := json.MarshalIndent(devs, "", "  ")
	if err != nil {
		return fmt.Errorf("encode device registry: %w", err)
	}
	if err := WriteFileAtomic(path, raw); err != nil {
		return fmt.Errorf("save device registry: %w", err)
	}
	return nil
}

// WriteFileAtomic replaces path with data so that a crash leaves the old or
// the new file, never half of one: a synced temporary file in the same
// directory renamed over it, then the directory synced.
func WriteFileAtomic(path string, data []byte) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
	return nil
}
