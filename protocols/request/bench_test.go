package request

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/industryos/gateway/protocols/kit/sinktest"
)

const benchBody = `{"id":7,"type":"GridVis","temp":"21.42","hum":40.5,"on":true,"meta":{"readings":[{"level":3}]},"serial":"SN-1"}`

func benchMapping() *Mapping {
	m := mapping("${id}-${type}", "${type}", key("temp", "float", "${temp}"), key("hum", "double", "${hum}"),
		key("on", "bool", "${on}"), key("level", "int", "${$.meta.readings[0].level}"), key("combo", "string", "${temp}:${hum}"))
	m.Converter.Attributes = []KeyConfig{key("serial", "string", "${serial}")}
	return m
}

// BenchmarkConvert is the json converter on one response of six values.
func BenchmarkConvert(b *testing.B) {
	c, err := NewJSONConverter(benchMapping())
	if err != nil {
		b.Fatal(err)
	}
	body := []byte(benchBody)
	now := time.Now()
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		out, err := c.Convert(body, now)
		if err != nil || len(out) != 1 {
			b.Fatal(out, err)
		}
	}
	b.ReportMetric(float64(6*b.N)/b.Elapsed().Seconds(), "values/s")
}

// BenchmarkPoll is one whole poll against a real HTTP server on loopback:
// request, answer, decode, convert, push.
func BenchmarkPoll(b *testing.B) {
	mux := http.NewServeMux()
	mux.HandleFunc("/d", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte(benchBody)) })
	srv := httptest.NewServer(mux)
	defer srv.Close()
	c, _ := newConnector(b, `{"host":"`+srv.URL+`","mapping":[{"url":"d","scanPeriod":60,"converter":{"deviceNameJsonExpression":"${id}-${type}","deviceTypeJsonExpression":"${type}",
	  "attributes":[{"key":"serial","type":"string","value":"${serial}"}],
	  "telemetry":[{"key":"temp","type":"float","value":"${temp}"},{"key":"hum","type":"double","value":"${hum}"},{"key":"on","type":"bool","value":"${on}"},
	    {"key":"level","type":"int","value":"${$.meta.readings[0].level}"},{"key":"combo","type":"string","value":"${temp}:${hum}"}]}}]}`)
	s := sinktest.NewCounter()
	p := c.pollers[0]
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		c.poll(ctx, s, p)
	}
	b.StopTimer()
	if s.PushedValues() != 6*b.N {
		b.Fatalf("pushed %d values for %d polls", s.PushedValues(), b.N)
	}
	b.ReportMetric(float64(6*b.N)/b.Elapsed().Seconds(), "values/s")
}
