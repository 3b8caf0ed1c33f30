package persistence

import (
	"fmt"
	"testing"
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
			j := bj.open(b)
			data := batch(1, benchBatch, benchRecord)
			b.SetBytes(benchBatch * benchRecord)
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
		})
	}
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
