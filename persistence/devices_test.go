package persistence

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

func TestDevicesRoundTripAndOldFormat(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, DevicesFile)
	got, err := LoadDevices(path)
	if err != nil || len(got) != 0 {
		t.Fatalf("missing file: %v, %v", got, err)
	}
	newName := "pump-1"
	want := map[string]*SavedDevice{
		"a": {ConnectorName: "modbus", DeviceType: "pump", Renaming: &newName},
		"b": {ConnectorName: "mqtt", DeviceType: "default", Disconnected: true},
	}
	if err := SaveDevices(path, want); err != nil {
		t.Fatal(err)
	}
	if got, err = LoadDevices(path); err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("round trip: %+v, %v", got, err)
	}
	old := []byte(`{"c":["opcua","valve",null],"d":["can","motor","motor-2"]}`)
	parsed, err := ParseDevices(old)
	if err != nil {
		t.Fatal(err)
	}
	if c := parsed["c"]; c.ConnectorName != "opcua" || c.DeviceType != "valve" || c.Renaming != nil {
		t.Fatalf("c: %+v", c)
	}
	if d := parsed["d"]; d.Renaming == nil || *d.Renaming != "motor-2" {
		t.Fatalf("d: %+v", d)
	}
	if err := os.WriteFile(path, []byte(`{"e":[1]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadDevices(path); !errors.Is(err, ErrBadDevicesFile) {
		t.Fatalf("bad file: %v", err)
	}
}
