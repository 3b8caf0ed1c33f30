package socket

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/industryos/gateway/protocols"
	"github.com/industryos/gateway/protocols/kit/sinktest"
	"github.com/industryos/gateway/protocols/kit/spec"
)

// BenchmarkConvert: upstream's default device (two telemetry and two
// attribute slices of a UTF-8 message), the convert path alone.
func BenchmarkConvert(b *testing.B) {
	cfg, _, err := Load("bench.json", []byte(tcpFile("")))
	if err != nil {
		b.Fatal(err)
	}
	d := cfg.Devices[0]
	msg := []byte("23.5;61;ok")
	var errs []KeyError
	b.ReportAllocs()
	for b.Loop() {
		var r protocols.Reading
		r, errs = d.Convert(msg, errs[:0])
		if len(r.Telemetry) != 2 || len(errs) > 0 {
			b.Fatal(r, errs)
		}
	}
	b.ReportMetric(4*float64(b.N)/b.Elapsed().Seconds(), "values/s")
}

// BenchmarkTCP: the whole connector over loopback: 16 connections each
// writing lines of upstream's default device; a counting sink. Reports
// values/s (3 per line) from the first byte written to the last push.
func BenchmarkTCP(b *testing.B) {
	const conns = 16
	ps := &spec.Problems{}
	root := spec.Parse(ps, "bench.json", []byte(`{"socket": {"port": 0}, "devices": [{"address": "127.0.0.1:*", "deviceName": "D",
	  "telemetry": [{"key": "temp", "byteTo": -1}, {"key": "hum", "byteTo": 2}], "attributes": [{"key": "num", "byteFrom": 2, "byteTo": 4}]}]}`))
	c, err := NewConnector(protocols.ConnectorConfig{Config: root, Logger: zerolog.Nop()})
	if err != nil {
		b.Fatal(err)
	}
	sink := sinktest.NewCounter()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go c.Run(ctx, sink)
	<-c.Ready()
	ws := make([]*bufio.Writer, conns)
	for i := range ws {
		nc, err := net.Dial("tcp", c.Addr().String())
		if err != nil {
			b.Fatal(err)
		}
		defer nc.Close()
		ws[i] = bufio.NewWriter(nc)
	}
	b.ReportAllocs()
	b.ResetTimer()
	done := sink.WhenPushed(b.N)
	for i := range b.N {
		fmt.Fprintf(ws[i%conns], "%d.5\n", i%100)
	}
	for _, w := range ws {
		w.Flush()
	}
	select {
	case <-done:
	case <-time.After(time.Minute):
		b.Fatalf("%d of %d pushes", sink.Pushed(), b.N)
	}
	b.ReportMetric(3*float64(b.N)/b.Elapsed().Seconds(), "values/s")
}
