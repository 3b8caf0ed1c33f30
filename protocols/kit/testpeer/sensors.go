package testpeer

import (
	"fmt"
	"strconv"
	"sync"
	"time"
)

// SensorMessage is the benchmarks' device message: "ts" and the values
// v0..v<values-1>, derived from n so that consecutive messages differ.
func SensorMessage(ts int64, n, values int) []byte {
	b := fmt.Appendf(nil, `{"ts":%d`, ts)
	for v := range values {
		b = fmt.Appendf(b, `,"v%d":%d.5`, v, n+v)
	}
	return append(b, '}')
}

// PublishSensors publishes n SensorMessages on sensor/d<i%devices>/data
// through publish, up to 512 at a time, and returns the first error. The
// timestamps are distinct and end now: messages of one device in the same
// millisecond would share the platform's (device, key, ts) and be merged.
func PublishSensors(n, devices, values int, publish func(topic string, payload []byte) error) error {
	var wg sync.WaitGroup
	var once sync.Once
	var first error
	sem := make(chan struct{}, 512)
	base := time.Now().UnixMilli() - int64(n)
	for i := range n {
		payload := SensorMessage(base+int64(i), i, values)
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			if err := publish("sensor/d"+strconv.Itoa(i%devices)+"/data", payload); err != nil {
				once.Do(func() { first = err })
			}
		}()
	}
	wg.Wait()
	return first
}
