package can_test

import (
	"fmt"

	"github.com/industryos/gateway/protocols/can"
)

func ExampleDecoder_Decode() {
	cfg, _, err := can.Load("can.json", []byte(`{"interface":"virtual","channel":"vcan0","devices":[{"name":"Car","timeseries":[
		{"key":"rpm","nodeId":418119424,"isExtendedId":true,"command":"2:2:big:48059","value":"4:2:little:int","expression":"value * 10"}]}]}`))
	if err != nil {
		panic(err)
	}
	out, matched, err := can.NewDecoder(cfg).Decode(can.Frame{ID: 418119424, Extended: true,
		Data: []byte{0, 0, 0xbb, 0xbb, 0xd2, 0x04}}, nil)
	fmt.Println(matched, err)
	for _, r := range out {
		fmt.Println(r.Device.Name, r.Key.Key, r.Value)
	}
	// Output:
	// true <nil>
	// Car rpm 12340
}

func ExampleLoad_error() {
	_, _, err := can.Load("can.json", []byte(`{"channel":"c","reconnectPeriod":"soon","devices":[]}`))
	fmt.Println(err)
	// Output: can.json: reconnectPeriod: "soon" is not a number of seconds
}

// A bad entry is left out, not the file: upstream loads it and fails only
// when it is used.
func ExampleLoad_skipped() {
	cfg, problems, err := can.Load("can.json", []byte(`{"channel":"c","devices":[{"name":"d","timeseries":[
		{"key":"a","nodeId":1,"value":"0:1:int"},{"key":"b","nodeId":1,"value":"0:2:big:int7"}]}]}`))
	fmt.Println(err, len(cfg.Devices[0].Timeseries))
	for _, p := range problems {
		fmt.Println(p)
	}
	// Output:
	// <nil> 1
	// error (entry skipped): can.json: devices[0].timeseries[1].value: unknown type "int7" (want one of: bool, boolean, int, long, float, double, string, raw)
}
