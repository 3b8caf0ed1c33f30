package rest

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/industryos/gateway/protocols/kit/sinktest"
)

// benchFile maps ten typed values of one device, like the MQTT benchmark.
func benchFile() string {
	var ts []string
	types := []string{"double", "int", "double", "bool", "int", "double", "int", "bool", "long", "float"}
	for i, typ := range types {
		ts = append(ts, fmt.Sprintf(`{"type":%q,"key":"k%d","value":"${v%d}"}`, typ, i, i))
	}
	return `{"server":{"port":0},"maxInFlight":4096,"mapping":[{"endpoint":"/data","HTTPMethods":["POST"],"converter":{"type":"json",
		"deviceInfo":{"deviceNameExpression":"${serialNumber}","deviceProfileExpressionSource":"request","deviceProfileExpression":"${sensorType}"},
		"timeseries":[` + strings.Join(ts, ",") + `]}}]}`
}

const benchBody = `{"serialNumber":"SN-0001","sensorType":"thermo","v0":21.5,"v1":42,"v2":-3.25,"v3":true,"v4":7,"v5":1013.25,"v6":0,"v7":"on","v8":123456789,"v9":0.5}`

// BenchmarkHandler measures one request through the handler (read, convert,
// push, commit, answer) without the network: the connector's own cost.
func BenchmarkHandler(b *testing.B) {
	c, _ := build(b, "rest.json", []byte(benchFile()))
	s := sinktest.NewCounter()
	h, err := c.Handler(s)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		req := httptest.NewRequest("POST", "/data", strings.NewReader(benchBody))
		req.Header.Set("Content-Type", "application/json")
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code != 200 {
			b.Fatalf("answer %d %s", w.Code, w.Body)
		}
	}
	b.ReportMetric(float64(s.PushedValues())/b.Elapsed().Seconds(), "values/s")
}

// BenchmarkConvert is the convert path alone: payload and converter.
func BenchmarkConvert(b *testing.B) {
	c, _ := build(b, "rest.json", []byte(benchFile()))
	ep := c.endpoints[0]
	in := Input{ContentType: "application/json", Body: []byte(benchBody)}
	values := 0
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		p, err := in.Payload()
		if err != nil {
			b.Fatal(err)
		}
		out, err := convert(ep.conv, "/data", p, time.Now())
		if err != nil {
			b.Fatal(err)
		}
		values += len(out[0].Telemetry)
	}
	b.ReportMetric(float64(values)/b.Elapsed().Seconds(), "values/s")
}

// BenchmarkServer: Go HTTP clients over loopback keep-alive connections
// push to the running server; every answer waits for the (immediate)
// commit. Allocations include the clients'.
func BenchmarkServer(b *testing.B) {
	c, _ := build(b, "rest.json", []byte(benchFile()))
	s := sinktest.NewCounter()
	sinktest.Run(b, c, s)
	s.Wait(b, 10*time.Second, "listening", func() bool { return s.Ups() == 1 })
	url := "http://" + c.Addr() + "/data"
	const clients = 8
	tr := &http.Transport{MaxIdleConnsPerHost: clients}
	defer tr.CloseIdleConnections()
	cl := &http.Client{Transport: tr}
	b.ReportAllocs()
	b.ResetTimer()
	var wg sync.WaitGroup
	var failed sync.Once
	for w := 0; w < clients; w++ {
		n := b.N / clients
		if w == 0 {
			n += b.N % clients
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < n; i++ {
				resp, err := cl.Post(url, "application/json", strings.NewReader(benchBody))
				if err == nil {
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode != 200 {
						err = fmt.Errorf("answer %d", resp.StatusCode)
					}
				}
				if err != nil {
					failed.Do(func() { b.Error(err) })
					return
				}
			}
		}()
	}
	wg.Wait()
	b.ReportMetric(float64(s.PushedValues())/b.Elapsed().Seconds(), "values/s")
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "requests/s")
}
