package can

import (
	"runtime"
	"strings"
	"testing"

	"github.com/industryos/gateway/protocols/kit/sinktest"
)

const benchCfg = `{"channel":"b","devices":[{"name":"Car","timeseries":[
	{"key":"rpm","nodeId":418119424,"isExtendedId":true,"command":"2:2:big:48059","value":"4:2:little:int"},
	{"key":"milliage","nodeId":418119424,"isExtendedId":true,"command":"2:2:big:48060","value":"4:4:little:int:signed"},
	{"key":"temp","nodeId":258,"value":"0:4:little:float"},
	{"key":"door","nodeId":258,"value":"4:1:bool"},
	{"key":"scaled","nodeId":300,"value":"0:2:int","expression":"value * 10"},
	{"key":"word","nodeId":301,"value":"0:1:int","expression":"can_data[0] * 256 + can_data[1]"}]}]}`

func benchDecode(b *testing.B, frames []Frame) {
	cfg, _, err := Load("bench.json", []byte(benchCfg))
	if err != nil {
		b.Fatal(err)
	}
	d := NewDecoder(cfg)
	out := make([]Reading, 0, 8)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		var err error
		out, _, err = d.Decode(frames[i%len(frames)], out[:0])
		if err != nil || len(out) == 0 {
			b.Fatal(err, len(out))
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "frames/s")
}

// BenchmarkDecode: command-selected ints plus a float and bool frame, no expressions.
func BenchmarkDecode(b *testing.B) {
	benchDecode(b, []Frame{
		{ID: 418119424, Extended: true, Data: []byte{0, 0, 0xbb, 0xbb, 0xd2, 0x04, 0, 0}},
		{ID: 418119424, Extended: true, Data: []byte{0, 0, 0xbb, 0xbc, 0x40, 0xe2, 0x01, 0}},
		{ID: 258, Data: []byte{0, 0, 0x48, 0x41, 1}},
	})
}

// BenchmarkDecodeExpression: one key with "value * 10" (the expression
// fast path: int and float arithmetic without the interpreter).
func BenchmarkDecodeExpression(b *testing.B) {
	benchDecode(b, []Frame{{ID: 300, Data: []byte{0x01, 0x02}}})
}

// BenchmarkDecodeStarlark: one key whose expression runs in Starlark
// ("can_data[0] * 256 + can_data[1]": the frame as a list, a pooled thread).
func BenchmarkDecodeStarlark(b *testing.B) {
	benchDecode(b, []Frame{{ID: 301, Data: []byte{0x01, 0x02}}})
}

// BenchmarkVirtualBus: one sender, one reader draining concurrently; reports
// frames sent and frames delivered per second (the rest were dropped because
// the reader fell behind, which the bus counts instead of blocking).
func BenchmarkVirtualBus(b *testing.B) {
	tx := NewVirtualBus(b.Name())
	rx := NewVirtualBus(b.Name(), WithQueue(4096))
	defer tx.Close()
	f := Frame{ID: 258, Data: []byte{0, 0, 0x48, 0x41, 1}}
	done := make(chan int)
	go func() {
		n := 0
		for range rx.C() {
			n++
		}
		done <- n
	}()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		_ = tx.Send(f)
	}
	rx.Close()
	delivered := <-done
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "sent/s")
	b.ReportMetric(float64(delivered)/b.Elapsed().Seconds(), "delivered/s")
}

// BenchmarkRunVirtual: frames sent on the virtual bus, read, queued, decoded
// and pushed to a sink by Connector.Run; one op is one frame. The sender
// keeps at most 512 frames in flight, so no queue overflows and every frame
// is delivered: frames/s is the end-to-end rate, allocs/op the allocations
// per frame on both sides (virtual bus copy, push slice).
func BenchmarkRunVirtual(b *testing.B) {
	ch := "bench-" + b.Name()
	c := newConn(b, strings.Replace(benchCfg, `"channel":"b"`, `"interface":"virtual","channel":"`+ch+`"`, 1))
	s := sinktest.NewCounter()
	sinktest.Run(b, c, s)
	tx := NewVirtualBus(ch)
	defer tx.Close()
	for c.opens.Load() == 0 {
		runtime.Gosched()
	}
	base := s.Pushed() // the start-up announcement
	frames := []Frame{
		{ID: 418119424, Extended: true, Data: []byte{0, 0, 0xbb, 0xbb, 0xd2, 0x04, 0, 0}},
		{ID: 418119424, Extended: true, Data: []byte{0, 0, 0xbb, 0xbc, 0x40, 0xe2, 0x01, 0}},
		{ID: 258, Data: []byte{0, 0, 0x48, 0x41, 1}},
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if i-(s.Pushed()-base) > 512 {
			<-s.WhenPushed(base + i - 256) // wait for half the window, not per frame
		}
		if err := tx.Send(frames[i%len(frames)]); err != nil {
			b.Fatal(err)
		}
	}
	<-s.WhenPushed(base + b.N)
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "frames/s")
	if st := c.Stats(); st.Dropped != 0 {
		b.Errorf("dropped %d", st.Dropped)
	}
}
