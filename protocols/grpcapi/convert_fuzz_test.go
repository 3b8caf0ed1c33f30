package grpcapi

import (
	"context"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/industryos/gateway/protocols/grpcapi/pb"
	"github.com/industryos/gateway/protocols/kit/sinktest"
)

// FuzzHandle feeds arbitrary wire bytes, decoded as a connector's message,
// to the converter into gateway data (session.handle, with datapoints and
// value): it must not panic, must settle its answer, and must neither
// invent values nor drop a bad one silently (every value sent is pushed
// or counted as malformed).
func FuzzHandle(f *testing.F) {
	seed := []*pb.FromConnectorMessage{
		{GatewayTelemetryMsg: &pb.GatewayTelemetryMsg{Msg: []*pb.TelemetryMsg{{DeviceName: "d",
			Msg: &pb.PostTelemetryMsg{TsKvList: []*pb.TsKvListProto{{Ts: 1700000000000, Kv: []*pb.KeyValueProto{
				{Key: "a", Type: pb.KeyValueType_LONG_V, LongV: 1},
				{Key: "b", Type: pb.KeyValueType_JSON_V, JsonV: `{"x":[1,2]}`},
				{Key: "c", Type: pb.KeyValueType_JSON_V, JsonV: `{`}}}}}}}}},
		{GatewayAttributesMsg: &pb.GatewayAttributesMsg{Msg: []*pb.AttributesMsg{{DeviceName: "d",
			Msg: &pb.PostAttributeMsg{Kv: []*pb.KeyValueProto{{Key: "s", Type: pb.KeyValueType_STRING_V, StringV: "x"}}}}}}},
		{ConnectMsg: &pb.ConnectMsg{DeviceName: "d", DeviceType: "t"}},
		{DisconnectMsg: &pb.DisconnectMsg{DeviceName: "d"}},
		{GatewayRpcResponseMsg: &pb.GatewayRpcResponseMsg{DeviceName: "d", Id: 1, Data: "{}"}},
		{ConnectorGetConnectedDevicesMsg: &pb.ConnectorGetConnectedDevicesMsg{}},
		{GatewayClaimMsg: &pb.GatewayClaimMsg{}},
	}
	for _, m := range seed {
		b, err := proto.Marshal(m)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var m pb.FromConnectorMessage
		if proto.Unmarshal(data, &m) != nil {
			return
		}
		ctx, cancel := context.WithCancelCause(context.Background())
		defer cancel(nil)
		s := newSession(ctx, cancel, "k")
		rec := sinktest.New()
		a, _ := s.handle(&m, rec)
		if a != nil {
			select {
			case <-a.done:
			default:
				t.Fatal("answer not settled though the sink committed at once")
			}
		}
		sent := 0
		for _, tm := range m.GetGatewayTelemetryMsg().GetMsg() {
			for _, l := range tm.GetMsg().GetTsKvList() {
				sent += len(l.GetKv())
			}
		}
		for _, am := range m.GetGatewayAttributesMsg().GetMsg() {
			sent += len(am.GetMsg().GetKv())
		}
		pushed := 0
		for _, p := range rec.Pushes() {
			pushed += len(p.Reading.Telemetry) + len(p.Reading.Attributes)
		}
		if pushed > sent {
			t.Fatalf("%d values pushed from %d sent", pushed, sent)
		}
		if pushed < sent && len(rec.MalformedReports()) == 0 {
			t.Fatalf("%d of %d values dropped without a malformed count", sent-pushed, sent)
		}
	})
}
