package localapi

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	paho3 "github.com/eclipse/paho.mqtt.golang"

	"github.com/industryos/gateway/protocols"
	"github.com/industryos/gateway/protocols/kit/sinktest"
	"github.com/industryos/gateway/protocols/kit/spec"
)

const benchPayload = `{"v0":21.5,"v1":42,"v2":-3.25,"v3":true,"v4":7,"v5":1013.25,"v6":0,"v7":"on","v8":123456789,"v9":0.5}`

// startBench runs the local API with n token devices ("TOKEN_i") into a
// counting sink that commits at once: the cost of the local API itself.
func startBench(b *testing.B, n int) (*Connector, *sinktest.Recorder) {
	b.Helper()
	devices := make([]any, n)
	for i := range devices {
		devices[i] = map[string]any{"name": fmt.Sprintf("dev-%d", i), "accessToken": fmt.Sprintf("TOKEN_%d", i)}
	}
	ps := &spec.Problems{}
	c, err := NewConnector(protocols.ConnectorConfig{Name: Section, Type: Type, Config: spec.New(ps, "tb_gateway.json", Section, map[string]any{
		"mqtt": map[string]any{"enabled": true, "address": "127.0.0.1:0"},
		"http": map[string]any{"enabled": true, "address": "127.0.0.1:0"}, "devices": devices})})
	if err != nil {
		b.Fatal(err)
	}
	s := sinktest.NewCounter()
	sinktest.Run(b, c, s)
	select {
	case <-c.Ready():
	case <-time.After(wait):
		b.Fatal("not ready")
	}
	return c, s
}

// BenchmarkMQTTDevices: 100 devices, each its own MQTT 3.1.1 connection,
// publish 10-value telemetry at QoS 1 and wait for each PUBACK (sent after
// the sink's commit); b.N messages in all.
func BenchmarkMQTTDevices(b *testing.B) {
	const devices = 100
	c, s := startBench(b, devices)
	clients := make([]paho3.Client, devices)
	for i := range clients {
		o := paho3.NewClientOptions().AddBroker("tcp://" + c.Addr("mqtt")).SetClientID(fmt.Sprintf("bench-%d", i)).
			SetUsername(fmt.Sprintf("TOKEN_%d", i)).SetProtocolVersion(4).SetAutoReconnect(false)
		clients[i] = paho3.NewClient(o)
		if tok := clients[i].Connect(); !tok.WaitTimeout(wait) || tok.Error() != nil {
			b.Fatalf("connect %d: %v", i, tok.Error())
		}
		defer clients[i].Disconnect(0)
	}
	b.ReportAllocs()
	b.ResetTimer()
	var wg sync.WaitGroup
	for i, cl := range clients {
		n := b.N / devices
		if i < b.N%devices {
			n++
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range n {
				if tok := cl.Publish("v1/devices/me/telemetry", 1, false, benchPayload); !tok.WaitTimeout(wait) || tok.Error() != nil {
					b.Errorf("publish: %v", tok.Error())
					return
				}
			}
		}()
	}
	wg.Wait()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
	b.ReportMetric(float64(s.PushedValues())/b.Elapsed().Seconds(), "values/s")
}

// BenchmarkHTTPKeepAlive: 8 keep-alive clients POST 10-value telemetry; each
// 200 comes after the sink's commit.
func BenchmarkHTTPKeepAlive(b *testing.B) {
	const workers = 8
	c, s := startBench(b, workers)
	tr := &http.Transport{MaxIdleConnsPerHost: workers}
	defer tr.CloseIdleConnections()
	cl := &http.Client{Transport: tr}
	b.ReportAllocs()
	b.ResetTimer()
	var wg sync.WaitGroup
	for w := range workers {
		n := b.N / workers
		if w < b.N%workers {
			n++
		}
		url := fmt.Sprintf("http://%s/api/v1/TOKEN_%d/telemetry", c.Addr("http"), w)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range n {
				resp, err := cl.Post(url, "application/json", strings.NewReader(benchPayload))
				if err != nil {
					b.Errorf("post: %v", err)
					return
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					b.Errorf("status %d", resp.StatusCode)
					return
				}
			}
		}()
	}
	wg.Wait()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "req/s")
	b.ReportMetric(float64(s.PushedValues())/b.Elapsed().Seconds(), "values/s")
}
