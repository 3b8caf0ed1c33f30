package grpcapi

import (
	"testing"

	"github.com/industryos/gateway/protocols/grpcapi/pb"
)

// BenchmarkTelemetry: one client streams telemetry messages (one device,
// three values each) and reads every answer; the sink commits at once, so
// this is the protocol's cost without the journal.
func BenchmarkTelemetry(b *testing.B) {
	_, _, cl := start(b, "bench")
	st, m, cancel := register(b, cl, "bench")
	defer cancel()
	if m.GetResponse().GetStatus() != pb.ResponseStatus_SUCCESS {
		b.Fatal(m)
	}
	msg := &pb.FromConnectorMessage{GatewayTelemetryMsg: &pb.GatewayTelemetryMsg{Msg: []*pb.TelemetryMsg{{DeviceName: "d",
		Msg: &pb.PostTelemetryMsg{TsKvList: []*pb.TsKvListProto{{Kv: []*pb.KeyValueProto{
			{Key: "a", Type: pb.KeyValueType_LONG_V, LongV: 1},
			{Key: "b", Type: pb.KeyValueType_DOUBLE_V, DoubleV: 2.5},
			{Key: "c", Type: pb.KeyValueType_STRING_V, StringV: "x"}}}}}}}}}
	done := make(chan error, 1)
	go func() {
		for i := 0; i < b.N; i++ {
			if _, err := st.Recv(); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := st.Send(msg); err != nil {
			b.Fatal(err)
		}
	}
	if err := <-done; err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
}
