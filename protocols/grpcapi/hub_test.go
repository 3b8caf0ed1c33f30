package grpcapi

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/industryos/gateway/protocols"
	"github.com/industryos/gateway/protocols/grpcapi/pb"
	"github.com/industryos/gateway/protocols/kit/sinktest"
	"github.com/industryos/gateway/protocols/kit/spec"
	"github.com/industryos/gateway/protocols/kit/testpeer"
)

// start runs a hub on a free loopback port with one "grpc" connector of key.
func start(t testing.TB, key string) (*Connector, *sinktest.Recorder, pb.TBGatewayProtoServiceClient) {
	t.Helper()
	hub := NewHub()
	addr, err := hub.Listen(ServerConfig{KeepAliveTime: 10 * time.Second, KeepAliveTimeout: 5 * time.Second}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(hub.Stop)
	obj := spec.New(&spec.Problems{}, "custom.json", "", map[string]any{"devices": []any{"a"}})
	c, err := newConnector(protocols.ConnectorConfig{Name: "ext", Type: "grpc", Key: key, Config: obj}, hub)
	if err != nil {
		t.Fatal(err)
	}
	rec := sinktest.New()
	sinktest.Run(t, c, rec)
	testpeer.Eventually(t, 5*time.Second, "connector attached", func() error {
		hub.mu.Lock()
		defer hub.mu.Unlock()
		if hub.slots[key] == nil {
			return fmt.Errorf("key %q not attached", key)
		}
		return nil
	})
	conn, err := grpc.NewClient(addr.String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return c, rec, pb.NewTBGatewayProtoServiceClient(conn)
}

func register(t testing.TB, cl pb.TBGatewayProtoServiceClient, key string) (pb.TBGatewayProtoService_StreamClient, *pb.FromServiceMessage, context.CancelFunc) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	st, err := cl.Stream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Send(&pb.FromConnectorMessage{RegisterConnectorMsg: &pb.RegisterConnectorMsg{ConnectorKey: key}}); err != nil {
		t.Fatal(err)
	}
	m, err := st.Recv()
	if err != nil {
		t.Fatal(err)
	}
	return st, m, cancel
}

func TestUnknownKeyRefused(t *testing.T) {
	_, _, cl := start(t, "secret")
	st, m, cancel := register(t, cl, "wrong")
	defer cancel()
	if got := m.GetResponse().GetStatus(); got != pb.ResponseStatus_NOT_FOUND {
		t.Fatalf("status %v, want NOT_FOUND", got)
	}
	if _, err := st.Recv(); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("stream end %v, want PermissionDenied", err)
	}
}

func TestDataRPCAndCrash(t *testing.T) {
	c, rec, cl := start(t, "secret")
	st, m, cancel := register(t, cl, "secret")
	if m.GetResponse().GetStatus() != pb.ResponseStatus_SUCCESS || m.GetConnectorConfigurationMsg().GetConnectorName() != "ext" ||
		m.GetConnectorConfigurationMsg().GetConfiguration() != `{"devices":["a"]}` {
		t.Fatalf("registration answer %v", m)
	}
	// A second process with the same key is refused while the first lives.
	st2, m2, cancel2 := register(t, cl, "secret")
	if m2.GetResponse().GetStatus() != pb.ResponseStatus_FAILURE {
		t.Fatalf("second registration %v, want FAILURE", m2)
	}
	if _, err := st2.Recv(); status.Code(err) != codes.AlreadyExists {
		t.Fatalf("second stream end %v", err)
	}
	cancel2()

	send := func(m *pb.FromConnectorMessage) {
		t.Helper()
		if err := st.Send(m); err != nil {
			t.Fatal(err)
		}
	}
	send(&pb.FromConnectorMessage{ConnectMsg: &pb.ConnectMsg{DeviceName: "pump", DeviceType: "pumps"}})
	send(&pb.FromConnectorMessage{GatewayTelemetryMsg: &pb.GatewayTelemetryMsg{Msg: []*pb.TelemetryMsg{{DeviceName: "pump",
		Msg: &pb.PostTelemetryMsg{TsKvList: []*pb.TsKvListProto{{Ts: 1700000000000, Kv: []*pb.KeyValueProto{
			{Key: "rpm", Type: pb.KeyValueType_LONG_V, LongV: 1500},
			{Key: "on", Type: pb.KeyValueType_BOOLEAN_V, BoolV: true},
			{Key: "bad", Type: pb.KeyValueType_JSON_V, JsonV: "{"},
		}}}}}}}})
	for i := 0; i < 2; i++ {
		r, err := st.Recv()
		if err != nil || r.GetResponse().GetStatus() != pb.ResponseStatus_SUCCESS {
			t.Fatalf("answer %d: %v %v", i, r, err)
		}
	}
	if got := rec.Values("pump", "rpm"); len(got) != 1 || got[0].I != 1500 {
		t.Fatalf("rpm %v", got)
	}
	if len(rec.MalformedReports()) != 1 {
		t.Fatalf("malformed %v, want the bad json_v counted", rec.MalformedReports())
	}
	if !slices.Contains(rec.Connects(), "pump/pumps") {
		t.Fatalf("connects %v", rec.Connects())
	}

	// RPC down to the process and its answer back.
	res := make(chan string, 1)
	go func() {
		r, err := c.Commander("pump", "pumps").RPC(context.Background(), protocols.RPCRequest{ID: 7, Device: "pump", Method: "setSpeed", Params: []byte(`{"rpm":900}`)})
		res <- fmt.Sprint(string(r), " ", err)
	}()
	r, err := st.Recv()
	if err != nil {
		t.Fatal(err)
	}
	req := r.GetGatewayDeviceRpcRequestMsg()
	if req.GetDeviceName() != "pump" || req.GetRpcRequestMsg().GetMethodName() != "setSpeed" || req.GetRpcRequestMsg().GetParams() != `{"rpm":900}` {
		t.Fatalf("rpc request %v", r)
	}
	send(&pb.FromConnectorMessage{GatewayRpcResponseMsg: &pb.GatewayRpcResponseMsg{DeviceName: "pump", Id: req.GetRpcRequestMsg().GetRequestId(), Data: `{"ok":true}`}})
	if got := <-res; got != `{"ok":true} <nil>` {
		t.Fatalf("rpc result %s", got)
	}

	// The process dies: its device is disconnected, the key is free again.
	cancel()
	testpeer.Eventually(t, 5*time.Second, "device disconnected", func() error {
		if !slices.Contains(rec.Disconnects(), "pump") {
			return fmt.Errorf("disconnects %v", rec.Disconnects())
		}
		return nil
	})
	testpeer.Eventually(t, 5*time.Second, "re-registration", func() error {
		_, m, cancel := register(t, cl, "secret")
		defer cancel()
		if m.GetResponse().GetStatus() != pb.ResponseStatus_SUCCESS {
			return fmt.Errorf("status %v", m.GetResponse().GetStatus())
		}
		return nil
	})
}

// TestAttributeRequest: an attribute request is answered with upstream's
// GatewayAttributesResponseMsg (plain key-values, typed), under the
// request's id; the registration answer carries the connector id too.
func TestAttributeRequest(t *testing.T) {
	_, rec, cl := start(t, "secret")
	rec.SetAttributes(map[string]json.RawMessage{"limit": []byte(`42`), "mode": []byte(`"eco"`)})
	st, m, cancel := register(t, cl, "secret")
	defer cancel()
	if m.GetConnectorConfigurationMsg().GetConnectorId() != "ext" {
		t.Fatalf("registration answer %v", m)
	}
	if err := st.Send(&pb.FromConnectorMessage{GatewayAttributeRequestMsg: &pb.GatewayAttributesRequestMsg{
		Id: 9, DeviceName: "pump", Client: false, Keys: []string{"limit", "mode", "absent"}}}); err != nil {
		t.Fatal(err)
	}
	r, err := st.Recv()
	if err != nil {
		t.Fatal(err)
	}
	resp := r.GetGatewayAttributeResponseMsg()
	got := resp.GetResponseMsg().GetSharedAttributeList()
	if resp.GetDeviceName() != "pump" || resp.GetResponseMsg().GetRequestId() != 9 || len(got) != 2 ||
		got[0].GetKey() != "limit" || got[0].GetType() != pb.KeyValueType_LONG_V || got[0].GetLongV() != 42 ||
		got[1].GetKey() != "mode" || got[1].GetStringV() != "eco" || len(resp.GetResponseMsg().GetClientAttributeList()) != 0 {
		t.Fatalf("attribute response %v", r)
	}
}
