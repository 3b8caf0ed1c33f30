package mqtt_test

import (
	"fmt"
	"time"

	"github.com/industryos/gateway/protocols/mqtt"
)

func Example() {
	cfg, _, err := mqtt.ParseFile("mqtt.json", mqtt.Sample)
	if err != nil {
		panic(err)
	}
	conv, err := mqtt.NewConverter(cfg.Mapping[0])
	if err != nil {
		panic(err)
	}
	payload := `{"serialNumber":"SN-001","sensorType":"Thermometer","sensorModel":"T1000","temp":21.5,"hum":40,"ts":1700000000000}`
	out, err := conv.Convert("sensor/data", []byte(payload), time.Now())
	if err != nil {
		panic(err)
	}
	for _, c := range out {
		fmt.Println(c.Device, c.Profile, c.Ts)
		for _, dp := range c.Attributes {
			fmt.Println(" attribute", dp.Key, dp.Value)
		}
		for _, dp := range c.Telemetry {
			fmt.Println(" telemetry", dp.Key, dp.Value)
		}
	}
	// Output:
	// SN-001 Thermometer 1700000000000
	//  attribute model T1000
	//  attribute T1000 on
	//  telemetry temperature 21.5
	//  telemetry humidity 40
	//  telemetry combine 40:21.5
}
