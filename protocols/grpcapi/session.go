package grpcapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc/peer"

	"github.com/industryos/gateway/protocols"
	"github.com/industryos/gateway/protocols/grpcapi/pb"
)

// Queue sizes of one process's stream. acks bounds the messages whose
// answer waits for the journal: when full, reading from the process stops,
// which is the back-pressure a flood meets (HTTP/2 flow control passes it on).
const (
	outQueue = 256
	ackQueue = 1024
)

// defaultProfile is the device type of a device the process never connected.
const defaultProfile = "default"

// session is one registered connector process.
type session struct {
	ctx    context.Context
	cancel context.CancelCauseFunc
	key    string
	out    chan *pb.FromServiceMessage // to the writer; nil ends the stream
	acks   chan *ack                   // answers, in the order of the messages

	mu      sync.Mutex
	devices map[string]string // device → profile, of the devices it named
	rpcs    map[rpcKey]chan string
	nextID  int32
}

type rpcKey struct {
	device string
	id     int32
}

// ack is the answer to one message, sent once everything the message
// handed to the sink is committed (or refused).
type ack struct {
	pending atomic.Int32
	failed  atomic.Bool
	done    chan struct{}
	msg     *pb.FromServiceMessage // sent instead of a status when set
}

func newAck() *ack {
	a := &ack{done: make(chan struct{})}
	a.pending.Store(1) // held by the handler until it has pushed everything
	return a
}

func (a *ack) release(err error) {
	if err != nil {
		a.failed.Store(true)
	}
	if a.pending.Add(-1) == 0 {
		close(a.done)
	}
}

func newSession(ctx context.Context, cancel context.CancelCauseFunc, key string) *session {
	return &session{ctx: ctx, cancel: cancel, key: key,
		out: make(chan *pb.FromServiceMessage, outQueue), acks: make(chan *ack, ackQueue),
		devices: map[string]string{}, rpcs: map[rpcKey]chan string{}}
}

func peerAddr(ctx context.Context) string {
	if p, ok := peerFrom(ctx); ok {
		return p
	}
	return "?"
}

func peerFrom(ctx context.Context) (string, bool) {
	p, ok := peer.FromContext(ctx)
	if !ok || p.Addr == nil {
		return "", false
	}
	return p.Addr.String(), true
}

func statusMsg(s pb.ResponseStatus) *pb.FromServiceMessage {
	return &pb.FromServiceMessage{Response: &pb.Response{Status: s}}
}

// send queues a message for the process; false when the stream is gone.
func (s *session) send(ctx context.Context, m *pb.FromServiceMessage) error {
	select {
	case s.out <- m:
		return nil
	case <-s.ctx.Done():
		return fmt.Errorf("%w: %v", ErrNoProcess, context.Cause(s.ctx))
	case <-ctx.Done():
		return ctx.Err()
	}
}

// serve runs the registered process's stream until it ends. Everything the
// process sent and the gateway accepted stays accepted; its devices are
// disconnected, as a crashed connector's are.
func (src *source) serve(s *session, stream pb.TBGatewayProtoService_StreamServer, sl *slot) error {
	sink := src.sink
	log := src.c.hub.log.With().Str("connector", sl.name).Str("peer", peerAddr(s.ctx)).Logger()
	writerDone := make(chan error, 1)
	go func() { writerDone <- s.write(stream) }()
	acksDone := make(chan struct{})
	go func() { defer close(acksDone); s.answer() }()

	ok := statusMsg(pb.ResponseStatus_SUCCESS)
	ok.ConnectorConfigurationMsg = &pb.ConnectorConfigurationMsg{ConnectorName: sl.name, ConnectorId: sl.name, Configuration: sl.config}
	a := newAck()
	a.msg = ok
	a.release(nil)
	s.acks <- a
	sink.Link(true, nil)
	log.Info().Msg("grpc connector registered")

	err := s.read(stream, sink)
	clean := err == nil
	if clean {
		// Answer what was read (the unregistration too) before ending.
		close(s.acks)
		<-acksDone
		select {
		case s.out <- nil:
		case <-s.ctx.Done():
		}
		err = <-writerDone
	}
	s.cancel(errors.New("stream ended"))
	if !clean {
		<-writerDone
	}
	s.mu.Lock()
	devices := make([]string, 0, len(s.devices))
	for d := range s.devices {
		devices = append(devices, d)
	}
	s.mu.Unlock()
	sort.Strings(devices)
	for _, d := range devices {
		sink.Disconnect(d)
	}
	if clean {
		sink.Link(false, errors.New("connector process unregistered"))
		log.Info().Int("devices", len(devices)).Msg("grpc connector unregistered")
		return err
	}
	sink.Link(false, fmt.Errorf("connector process lost: %w", err))
	log.Warn().Err(err).Int("devices", len(devices)).Msg("grpc connector process lost; its devices are disconnected")
	return err
}

// write is the stream's only sender.
func (s *session) write(stream pb.TBGatewayProtoService_StreamServer) error {
	for {
		select {
		case m := <-s.out:
			if m == nil {
				return nil
			}
			if err := stream.Send(m); err != nil {
				s.cancel(err)
				return err
			}
		case <-s.ctx.Done():
			return context.Cause(s.ctx)
		}
	}
}

// answer sends each message's answer in order, once it is settled.
func (s *session) answer() {
	for a := range s.acks {
		select {
		case <-a.done:
		case <-s.ctx.Done():
			return
		}
		m := a.msg
		if m == nil {
			m = statusMsg(pb.ResponseStatus_SUCCESS)
			if a.failed.Load() {
				m = statusMsg(pb.ResponseStatus_FAILURE)
			}
		}
		select {
		case s.out <- m:
		case <-s.ctx.Done():
			return
		}
	}
}

// read handles the process's messages until it ends the stream (nil) or
// the stream breaks.
func (s *session) read(stream pb.TBGatewayProtoService_StreamServer, sink protocols.Sink) error {
	for {
		m, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			if c := context.Cause(s.ctx); c != nil {
				return c
			}
			return err
		}
		a, end := s.handle(m, sink)
		if a != nil {
			select {
			case s.acks <- a:
			case <-s.ctx.Done():
				return context.Cause(s.ctx)
			}
		}
		if end {
			return nil
		}
	}
}

// handle applies one message; it returns the answer to queue, if any, and
// whether the process unregistered.
func (s *session) handle(m *pb.FromConnectorMessage, sink protocols.Sink) (*ack, bool) {
	a := newAck()
	switch {
	case m.GetGatewayTelemetryMsg() != nil:
		for _, t := range m.GetGatewayTelemetryMsg().GetMsg() {
			for _, l := range t.GetMsg().GetTsKvList() {
				dps := s.points(sink, t.GetDeviceName(), l.GetKv())
				s.push(sink, a, t.GetDeviceName(), millis(l.GetTs()), protocols.Reading{Telemetry: dps})
			}
		}
	case m.GetGatewayAttributesMsg() != nil:
		for _, at := range m.GetGatewayAttributesMsg().GetMsg() {
			dps := s.points(sink, at.GetDeviceName(), at.GetMsg().GetKv())
			s.push(sink, a, at.GetDeviceName(), time.Time{}, protocols.Reading{Attributes: dps})
		}
	case m.GetConnectMsg() != nil:
		c := m.GetConnectMsg()
		if c.GetDeviceName() == "" {
			sink.Malformed("connectMsg", errors.New("connect without a device name"))
			a.failed.Store(true)
			break
		}
		profile := c.GetDeviceType()
		if profile == "" {
			profile = defaultProfile
		}
		s.mu.Lock()
		s.devices[c.GetDeviceName()] = profile
		s.mu.Unlock()
		sink.Connect(c.GetDeviceName(), profile)
	case m.GetDisconnectMsg() != nil:
		d := m.GetDisconnectMsg().GetDeviceName()
		s.mu.Lock()
		delete(s.devices, d)
		s.mu.Unlock()
		sink.Disconnect(d)
	case m.GetGatewayRpcResponseMsg() != nil:
		r := m.GetGatewayRpcResponseMsg()
		s.mu.Lock()
		ch := s.rpcs[rpcKey{r.GetDeviceName(), r.GetId()}]
		delete(s.rpcs, rpcKey{r.GetDeviceName(), r.GetId()})
		s.mu.Unlock()
		if ch == nil {
			sink.Malformed("gatewayRpcResponseMsg", fmt.Errorf("device %q: no rpc %d is waiting (late or unknown)", r.GetDeviceName(), r.GetId()))
			return nil, false
		}
		ch <- r.GetData()
		return nil, false // upstream does not answer an answer
	case m.GetGatewayAttributeRequestMsg() != nil:
		// Answered by the platform's reply, which may take a while: the
		// request must not hold up the data behind it.
		go s.requestAttributes(sink, m.GetGatewayAttributeRequestMsg())
		return nil, false
	case m.GetConnectorGetConnectedDevicesMsg() != nil:
		resp := &pb.ConnectorGetConnectedDevicesResponseMsg{}
		s.mu.Lock()
		for d, p := range s.devices {
			resp.ConnectorDevices = append(resp.ConnectorDevices, &pb.ConnectorDeviceInfo{DeviceName: d, DeviceType: p})
		}
		s.mu.Unlock()
		sort.Slice(resp.ConnectorDevices, func(i, j int) bool {
			return resp.ConnectorDevices[i].DeviceName < resp.ConnectorDevices[j].DeviceName
		})
		a.msg = &pb.FromServiceMessage{ConnectorGetConnectedDevicesResponseMsg: resp}
	case m.GetUnregisterConnectorMsg() != nil:
		a.release(nil)
		return a, true
	case m.GetGatewayClaimMsg() != nil:
		sink.Malformed("gatewayClaimMsg", errors.New("device claiming is not supported"))
		a.failed.Store(true)
	case m.GetResponse() != nil:
		return nil, false // the process acknowledging a command: nothing to do
	case m.GetRegisterConnectorMsg() != nil:
		sink.Malformed("registerConnectorMsg", errors.New("already registered on this stream"))
		a.failed.Store(true)
	default:
		sink.Malformed("message", errors.New("empty or unknown message"))
		a.failed.Store(true)
	}
	a.release(nil)
	return a, false
}

// points converts one device's values, counting the bad ones.
func (s *session) points(sink protocols.Sink, device string, kvs []*pb.KeyValueProto) []protocols.Datapoint {
	dps, errs := datapoints(kvs)
	for _, err := range errs {
		sink.Malformed("device "+device, err)
	}
	return dps
}

// push hands one device's data to the sink under a's answer.
func (s *session) push(sink protocols.Sink, a *ack, device string, ts time.Time, r protocols.Reading) {
	if len(r.Telemetry) == 0 && len(r.Attributes) == 0 {
		return
	}
	if device == "" {
		sink.Malformed("device name", errors.New("data without a device name"))
		a.failed.Store(true)
		return
	}
	s.mu.Lock()
	profile, ok := s.devices[device]
	if !ok {
		profile = defaultProfile
		s.devices[device] = profile
	}
	s.mu.Unlock()
	a.pending.Add(1)
	err := sink.Push(s.ctx, protocols.Push{Device: device, Profile: profile, Ts: ts, Reading: r, Done: a.release})
	if err != nil {
		a.release(err) // Done is never called for refused data
	}
}

func (s *session) requestAttributes(sink protocols.Sink, r *pb.GatewayAttributesRequestMsg) {
	ctx, cancel := context.WithTimeout(s.ctx, 30*time.Second)
	defer cancel()
	resp := &pb.GatewayAttributesResponseMsg{RequestId: r.GetId()}
	values, err := sink.RequestAttributes(ctx, r.GetDeviceName(), r.GetClient(), r.GetKeys())
	if err != nil {
		resp.Error = err.Error()
	}
	keys := make([]string, 0, len(values))
	for k := range values {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		kv := wireValue(k, values[k])
		if r.GetClient() {
			resp.ClientAttributeList = append(resp.ClientAttributeList, kv)
		} else {
			resp.SharedAttributeList = append(resp.SharedAttributeList, kv)
		}
	}
	_ = s.send(ctx, &pb.FromServiceMessage{GatewayAttributeResponseMsg: &pb.GatewayAttributeResponseMsg{DeviceName: r.GetDeviceName(), ResponseMsg: resp}})
}

// rpc sends a device RPC to the process and waits for its answer.
func (s *session) rpc(ctx context.Context, device string, req protocols.RPCRequest) (protocols.RPCResult, error) {
	ch := make(chan string, 1)
	s.mu.Lock()
	// The platform's id when it fits the wire's int32, as upstream passes
	// it on; otherwise one of ours.
	id := int32(req.ID)
	if req.ID <= 0 || req.ID > math.MaxInt32 {
		s.nextID++
		id = -s.nextID
	}
	k := rpcKey{device, id}
	if _, busy := s.rpcs[k]; busy {
		s.mu.Unlock()
		return nil, fmt.Errorf("rpc id %d already waiting", id)
	}
	s.rpcs[k] = ch
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.rpcs, k)
		s.mu.Unlock()
	}()
	params := string(req.Params)
	if p, ok := protocols.JSONString(req.Params); ok {
		params = p
	}
	msg := &pb.FromServiceMessage{GatewayDeviceRpcRequestMsg: &pb.GatewayDeviceRpcRequestMsg{
		DeviceName: device, RpcRequestMsg: &pb.ToDeviceRpcRequestMsg{RequestId: id, MethodName: req.Method, Params: params}}}
	if err := s.send(ctx, msg); err != nil {
		return nil, err
	}
	select {
	case data := <-ch:
		return rpcResult(data), nil
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-s.ctx.Done():
		return nil, fmt.Errorf("%w: %v", ErrNoProcess, context.Cause(s.ctx))
	}
}

// rpcResult keeps an answer that is JSON and quotes one that is not, so
// the platform always gets valid JSON.
func rpcResult(data string) protocols.RPCResult {
	if data == "" {
		return protocols.RPCResult(`{"success":true}`)
	}
	if json.Valid([]byte(data)) {
		return protocols.RPCResult(data)
	}
	b, _ := json.Marshal(data)
	return protocols.RPCResult(b)
}

func (s *session) updateAttributes(ctx context.Context, device string, values map[string]json.RawMessage) error {
	keys := make([]string, 0, len(values))
	for k := range values {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	now := time.Now().UnixMilli()
	n := &pb.AttributeUpdateNotificationMsg{}
	for _, k := range keys {
		n.SharedUpdated = append(n.SharedUpdated, &pb.TsKvProto{Ts: now, Kv: wireValue(k, values[k])})
	}
	return s.send(ctx, &pb.FromServiceMessage{GatewayAttributeUpdateNotificationMsg: &pb.GatewayAttributeUpdateNotificationMsg{DeviceName: device, NotificationMsg: n}})
}
