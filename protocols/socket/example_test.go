package socket_test

import (
	"fmt"

	"github.com/industryos/gateway/protocols/socket"
)

func ExampleDeviceConfig_Convert() {
	cfg, _, err := socket.Load("socket.json", []byte(`{"socket": {"port": 50000}, "devices": [{"address": "*:*", "deviceName": "Meter",
		"telemetry": [{"key": "temp", "byteFrom": 0, "byteTo": 4}, {"key": "unit", "byteFrom": -1}],
		"attributes": [{"key": "raw", "byteFrom": 0, "byteTo": -1}]}]}`))
	if err != nil {
		panic(err)
	}
	d := cfg.Devices[0]
	ok, _ := d.Matches("192.168.1.20:40112")
	r, errs := d.Convert([]byte("21.5C"), nil)
	fmt.Println(ok, len(errs))
	for _, dp := range append(r.Telemetry, r.Attributes...) {
		fmt.Printf("%s=%q\n", dp.Key, dp.Value.S)
	}
	// Output:
	// true 0
	// temp="21.5"
	// unit="C"
	// raw="21.5C"
}

// A device whose entry cannot be used is left out, with the reason; the
// file still loads.
func ExampleLoad_skipped() {
	cfg, problems, err := socket.Load("socket.json", []byte(`{"devices": [
		{"address": "*:*", "deviceName": "A", "encoding": "cp037"},
		{"address": "*:*", "deviceName": "B"}]}`))
	fmt.Println(err, len(cfg.Devices))
	for _, p := range problems {
		fmt.Println(p)
	}
	// Output:
	// <nil> 1
	// error (entry skipped): socket.json: devices[0].encoding: unknown encoding "cp037" (supported: utf-8, ascii, latin-1, utf-16, utf-16-le, utf-16-be, hex)
}
