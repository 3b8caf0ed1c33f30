package tests

import (
	"context"
	"fmt"
	"net"
	"os"
	"runtime/pprof"
	"strings"
	"testing"
	"time"

	"github.com/industryos/gateway/protocols/kit/testpeer"
)

// BenchmarkMQTTToPlatform measures messages/s of 10-value JSON from an
// external mosquitto through the whole gateway (mqtt connector, device
// actors, Badger journal, uplink) to the platform mosquitto's PUBACK, and
// allocations per message for the whole process. The messages are queued
// on the device broker for the gateway's persistent session while it is
// offline, so no publisher competes with it for the two cores; the clock
// runs from the gateway's start until the journal is acknowledged past
// the last of them. The platform answers getSessionLimits as ThingsBoard
// 3.8+ does (64 KB payloads).
//
//	go test -run - -bench MQTTToPlatform -benchtime 100000x ./tests/
func BenchmarkMQTTToPlatform(b *testing.B) {
	const devices, values = 100, 10
	platform := testpeer.StartMosquitto(b)
	testpeer.AnswerSessionLimits(b, platform.Addr(), testpeer.PlatformSessionLimits)
	broker := testpeer.StartMosquitto(b)
	host, port, _ := net.SplitHostPort(broker.Addr())
	keys := make([]string, values)
	for v := range values {
		keys[v] = fmt.Sprintf(`{"type": "double", "key": "v%d", "value": "${v%d}"}`, v, v)
	}
	connector := fmt.Sprintf(`{
  "broker": {"host": %q, "port": %s, "clientId": "iotgw-bench", "version": 5, "cleanStart": false, "sessionExpiryInterval": 3600, "security": {"type": "anonymous"}},
  "mapping": [{
    "topicFilter": "sensor/+/data", "subscriptionQos": 1,
    "converter": {"type": "json",
      "deviceInfo": {"deviceNameExpressionSource": "topic", "deviceNameExpression": "sensor/([^/]+)/data",
                     "deviceProfileExpressionSource": "constant", "deviceProfileExpression": "BenchSensor"},
      "timeseries": [%s]}
  }]
}`, host, port, strings.Join(keys, ", "))
	dir := b.TempDir()
	path := writeConfig(b, dir, platform.Addr(), fmt.Sprintf(`{"type": "file", "data_folder_path": %q, "max_file_count": 1000, "max_records_per_file": 100000}`, dir+"/journal"),
		map[string][]byte{"mqtt": []byte(connector)})
	pub := testpeer.Subscribe(b, broker.Addr())
	pub.WaitReady(b, 10*time.Second)

	// The first run makes the broker know the session and its subscription:
	// a message published now arrives once it is subscribed.
	g := startGateway(b, path, nil)
	testpeer.Waiter{Timeout: 20 * time.Second, Poll: 200 * time.Millisecond}.Until(b, "the warm-up message to be journaled", func() error {
		ctx, cancel := contextTimeout(time.Second)
		defer cancel()
		_ = pub.Publish(ctx, "sensor/warmup/data", []byte(`{"v0":1,"v1":1,"v2":1,"v3":1,"v4":1,"v5":1,"v6":1,"v7":1,"v8":1,"v9":1}`), 1)
		if g.Counters().EventsJournaled.Load() == 0 {
			return fmt.Errorf("connector not subscribed yet")
		}
		return nil
	})
	ctx, cancel := contextTimeout(10 * time.Second)
	if err := g.Stop(ctx); err != nil {
		b.Fatal(err)
	}
	cancel()

	if err := testpeer.PublishSensors(b.N, devices, values, func(topic string, payload []byte) error {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		return pub.Publish(ctx, topic, payload, 1)
	}); err != nil {
		b.Fatalf("queue the backlog: %v", err)
	}

	b.ReportAllocs()
	stopProfile := profileTimed(b)
	b.ResetTimer()
	start := time.Now()
	g = startGateway(b, path, nil)
	ctr, j := g.Counters(), g.Journal()
	deadline := start.Add(5 * time.Minute)
	// One telemetry event per message, and a connect per device.
	for ctr.EventsJournaled.Load() < uint64(b.N+min(b.N, devices)) || j.Cursor() < j.LastSeq() {
		if time.Now().After(deadline) {
			b.Fatalf("journaled %d of %d messages, acknowledged up to %d of %d (malformed %d, unmatched %d, input dropped %d)",
				ctr.EventsJournaled.Load(), b.N, j.Cursor(), j.LastSeq(), ctr.Malformed.Load(), ctr.Unmatched.Load(), ctr.InputDropped.Load())
		}
		time.Sleep(time.Millisecond)
	}
	el := time.Since(start)
	b.StopTimer()
	stopProfile()
	b.ReportMetric(float64(b.N)/el.Seconds(), "msgs/s")
	b.ReportMetric(float64(b.N*values)/el.Seconds(), "values/s")
}

// profileTimed profiles a benchmark's timed part only (go test's
// -cpuprofile and -memprofile would include its setup): a CPU profile to
// the file IOTGW_BENCH_CPUPROFILE names, and allocation profiles at the
// start and the end to IOTGW_BENCH_MEMPROFILE.{start,end}, for
// go tool pprof -diff_base.
func profileTimed(b *testing.B) (stop func()) {
	cpu, mem := os.Getenv("IOTGW_BENCH_CPUPROFILE"), os.Getenv("IOTGW_BENCH_MEMPROFILE")
	writeHeap := func(path string) {
		f, err := os.Create(path)
		if err != nil {
			b.Fatal(err)
		}
		defer f.Close()
		if err := pprof.Lookup("allocs").WriteTo(f, 0); err != nil {
			b.Fatal(err)
		}
	}
	if mem != "" {
		writeHeap(mem + ".start")
	}
	var f *os.File
	if cpu != "" {
		var err error
		if f, err = os.Create(cpu); err != nil {
			b.Fatal(err)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			b.Fatal(err)
		}
	}
	return func() {
		if f != nil {
			pprof.StopCPUProfile()
			_ = f.Close()
		}
		if mem != "" {
			writeHeap(mem + ".end")
		}
	}
}
