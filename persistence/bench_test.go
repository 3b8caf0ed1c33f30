package persistence

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/industryos/gateway/protocols"
)

const (
	benchBatch  = 100
	benchRecord = 200
)

var benchJournals = []struct {
	name string
	open func(b *testing.B) Journal
}{
	{"memory", func(b *testing.B) Journal { return OpenMemory(Options{}) }},
	{"badger", func(b *testing.B) Journal { return openBadger(b, b.TempDir(), Options{}) }},
	{"badger-sync", func(b *testing.B) Journal { return openBadger(b, b.TempDir(), Options{SyncWrites: true}) }},
}

func reportRates(b *testing.B) {
	secs := b.Elapsed().Seconds()
	if secs == 0 {
		return
	}
	b.ReportMetric(float64(b.N)*benchBatch/secs, "records/s")
	b.ReportMetric(float64(b.N)/secs, "commits/s")
}

// BenchmarkAppend measures group commits of 100 x 200 B. The journal is drained outside the
// timer now and then so the backlog (and memory) stays bounded however large b.N gets.
func BenchmarkAppend(b *testing.B) {
	for _, bj := range benchJournals {
		b.Run(bj.name, func(b *testing.B) {
			j := bj.open(b)
			data := batch(1, benchBatch, benchRecord)
			b.SetBytes(benchBatch * benchRecord)
			b.ResetTimer()
			for i := range b.N {
				if _, _, err := j.Append(data); err != nil {
					b.Fatal(err)
				}
				if i%100 == 99 {
					b.StopTimer()
					if err := j.Ack(j.LastSeq()); err != nil {
						b.Fatal(err)
					}
					b.StartTimer()
				}
			}
			b.StopTimer()
			reportRates(b)
		})
	}
}

// BenchmarkAppendAck is the steady state with a healthy uplink: every batch is appended and
// then acknowledged.
func BenchmarkAppendAck(b *testing.B) {
	for _, bj := range benchJournals {
		b.Run(bj.name, func(b *testing.B) {
			appendAckLoop(b, bj.open(b), batch(1, benchBatch, benchRecord))
		})
	}
}

// appendAckLoop appends data and acknowledges it b.N times, then reports the rates.
func appendAckLoop(b *testing.B, j Journal, data [][]byte) {
	size := 0
	for _, r := range data {
		size += len(r)
	}
	b.SetBytes(int64(size))
	b.ResetTimer()
	for range b.N {
		_, last, err := j.Append(data)
		if err != nil {
			b.Fatal(err)
		}
		if err := j.Ack(last); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	reportRates(b)
}

// eventBatch is n telemetry events as the journal actor encodes them: 100 devices of one
// model, ten keys, sensor-like values with one decimal.
func eventBatch(n int) [][]byte {
	r := rand.New(rand.NewPCG(1, 2))
	out := make([][]byte, n)
	for i := range out {
		e := protocols.Event{Kind: protocols.EventTelemetry, Device: fmt.Sprintf("boiler-%03d", i%100), DeviceType: "BoilerSensor", Ts: 1_796_000_000_000 + int64(i)}
		for k := range 10 {
			e.Values = append(e.Values, protocols.Datapoint{Key: fmt.Sprintf("temperature_%d", k), Value: protocols.Value{Kind: protocols.KindFloat, F: float64(r.IntN(1000)) / 10}})
		}
		out[i] = e.AppendBinary(nil)
	}
	return out
}

// BenchmarkAppendAckData is BenchmarkAppendAck with records that compress as telemetry does
// ("events") and records that do not compress at all ("noise"): Badger stores compressible
// segments packed, so the repeated bytes of batch() would flatter it.
func BenchmarkAppendAckData(b *testing.B) {
	for _, d := range []struct {
		name string
		data [][]byte
	}{{"events", eventBatch(benchBatch)}, {"noise", noiseBatch(1, benchBatch, benchRecord)}} {
		for _, bj := range benchJournals[1:] {
			b.Run(d.name+"/"+bj.name, func(b *testing.B) {
				appendAckLoop(b, bj.open(b), d.data)
				b.ReportMetric(packRatio(d.data), "plain/stored")
			})
		}
	}
}

// packRatio is how many times smaller Badger stores data's segments than plain ones.
func packRatio(data [][]byte) float64 {
	plain, stored := 0, 0
	for start := 0; start < len(data); {
		end, _ := segmentEnd(data, start)
		v := appendSegValue(nil, 1, data[start:end])
		p, _ := packSegValue(nil, v)
		plain, stored = plain+len(v), stored+len(p)
		start = end
	}
	return float64(plain) / float64(stored)
}

// BenchmarkAppendSyncGroup shows what group commit buys with SyncWrites on:
// the gateway's journal actor commits everything that queued up during the
// previous write, so under load its batches are large.
func BenchmarkAppendSyncGroup(b *testing.B) {
	for _, n := range []int{10, 100, 1000} {
		b.Run(fmt.Sprintf("batch-%d", n), func(b *testing.B) {
			j := openBadger(b, b.TempDir(), Options{SyncWrites: true})
			data := batch(1, n, benchRecord)
			b.SetBytes(int64(n * benchRecord))
			b.ResetTimer()
			for i := range b.N {
				if _, _, err := j.Append(data); err != nil {
					b.Fatal(err)
				}
				if i%10 == 9 {
					b.StopTimer()
					if err := j.Ack(j.LastSeq()); err != nil {
						b.Fatal(err)
					}
					b.StartTimer()
				}
			}
			b.StopTimer()
			b.ReportMetric(float64(b.N*n)/b.Elapsed().Seconds(), "records/s")
		})
	}
}
