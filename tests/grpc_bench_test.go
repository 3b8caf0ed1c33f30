package tests

import (
	"context"
	"fmt"
	"net"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/industryos/gateway/protocols/grpcapi/pb"
	"github.com/industryos/gateway/protocols/kit/testpeer"
)

// BenchmarkGRPCToPlatform measures messages/s of a gRPC connector process
// (a Go client in this process) through the whole gateway: the gRPC server,
// device actors, the Badger journal (each message answered after its
// commit), the uplink, to the platform mosquitto's PUBACK. One stream sends
// telemetry messages of 10 values, round robin over 100 devices, reading
// the answers as they come; the clock runs from the first message until
// every message is answered and the journal is acknowledged past the last.
//
//	go test -run '^$' -bench GRPCToPlatform -benchtime 100000x ./tests/
func BenchmarkGRPCToPlatform(b *testing.B) {
	const devices, values = 100, 10
	platform := testpeer.StartMosquitto(b)
	testpeer.AnswerSessionLimits(b, platform.Addr(), testpeer.PlatformSessionLimits)
	grpcPort := testpeer.FreePort(b)
	dir := b.TempDir()
	path := writeGRPCConfig(b, dir, platform.Addr(), grpcPort, "bench-key", `{"type": "badger", "path": "`+filepath.Join(dir, "journal")+`"}`)
	g := startGateway(b, path, nil)

	conn, err := grpc.NewClient(net.JoinHostPort("127.0.0.1", strconv.Itoa(grpcPort)), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var st pb.TBGatewayProtoService_StreamClient
	testpeer.Eventually(b, 30*time.Second, "registration", func() error {
		s, err := pb.NewTBGatewayProtoServiceClient(conn).Stream(ctx)
		if err == nil {
			err = s.Send(&pb.FromConnectorMessage{RegisterConnectorMsg: &pb.RegisterConnectorMsg{ConnectorKey: "bench-key"}})
		}
		var m *pb.FromServiceMessage
		if err == nil {
			m, err = s.Recv()
		}
		if err == nil && m.GetResponse().GetStatus() != pb.ResponseStatus_SUCCESS {
			err = fmt.Errorf("registration answered %v", m.GetResponse().GetStatus())
		}
		if err == nil {
			st = s
		}
		return err
	})
	msgs := make([]*pb.FromConnectorMessage, devices)
	for d := range devices {
		kvs := make([]*pb.KeyValueProto, values)
		for v := range values {
			kvs[v] = &pb.KeyValueProto{Key: "v" + strconv.Itoa(v), Type: pb.KeyValueType_DOUBLE_V, DoubleV: float64(d*values + v)}
		}
		msgs[d] = telemetryMsg(fmt.Sprintf("grpc-%03d", d), 0, kvs...)
	}
	answered := make(chan error, 1)
	go func() {
		for range b.N {
			m, err := st.Recv()
			if err == nil && m.GetResponse().GetStatus() != pb.ResponseStatus_SUCCESS {
				err = fmt.Errorf("answer %v", m)
			}
			if err != nil {
				answered <- err
				return
			}
		}
		answered <- nil
	}()

	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	for i := range b.N {
		if err := st.Send(msgs[i%devices]); err != nil {
			b.Fatal(err)
		}
	}
	if err := <-answered; err != nil {
		b.Fatal(err)
	}
	j := g.Journal()
	deadline := time.Now().Add(5 * time.Minute)
	for j.Cursor() < j.LastSeq() {
		if time.Now().After(deadline) {
			b.Fatalf("acknowledged up to %d of %d", j.Cursor(), j.LastSeq())
		}
		time.Sleep(time.Millisecond)
	}
	el := time.Since(start)
	b.StopTimer()
	b.ReportMetric(float64(b.N)/el.Seconds(), "msgs/s")
	b.ReportMetric(float64(b.N*values)/el.Seconds(), "values/s")
}
