package grpcapi

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/rs/zerolog"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/status"

	"github.com/industryos/gateway/protocols/grpcapi/pb"
)

// ServerConfig is the main file's grpc section as the Hub needs it.
type ServerConfig struct {
	Host string // listen address; 127.0.0.1 unless set
	Port int    // serverPort
	// KeepAliveTime and KeepAliveTimeout: the server pings an idle
	// connection after Time and drops it when no answer comes in Timeout,
	// so a connector process that vanished without a FIN is noticed.
	KeepAliveTime, KeepAliveTimeout time.Duration
	// PermitWithoutCalls lets clients ping while no stream is open.
	PermitWithoutCalls bool
	// MinPingInterval is the shortest ping interval a client may use
	// (minPingIntervalWithoutDataMs / minTimeBetweenPingsMs, the larger).
	MinPingInterval time.Duration
	// MaxMessageSize bounds one received message (bytes).
	MaxMessageSize int
	// MaxConnectors bounds concurrent streams per connection.
	MaxConnectors int
}

// ErrKeyInUse is returned when two connectors attach with one key.
var ErrKeyInUse = errors.New("grpc connector key already in use")

// ErrNoProcess is returned for a command to a connector whose process is
// not registered.
var ErrNoProcess = errors.New("grpc connector process not registered")

// Hub is the gateway's one gRPC server and the table of connector keys.
type Hub struct {
	pb.UnimplementedTBGatewayProtoServiceServer

	mu    sync.Mutex
	slots map[string]*slot
	srv   *grpc.Server
	addr  net.Addr
	log   zerolog.Logger
}

// Default is the gateway's hub: the runtime listens on it when grpc.enabled
// is set, and every "grpc" connector attaches to it.
var Default = NewHub()

// NewHub returns a hub that is not listening yet.
func NewHub() *Hub { return &Hub{slots: map[string]*slot{}, log: zerolog.Nop()} }

// slot is one configured connector waiting for, or served by, its process.
type slot struct {
	name, config string
	src          *source
	sess         *session // the registered process, nil while none
}

// Listen starts serving on cfg's address and returns the bound address.
func (h *Hub) Listen(cfg ServerConfig, log zerolog.Logger) (net.Addr, error) {
	host := cfg.Host
	if host == "" {
		host = "127.0.0.1"
	}
	lis, err := net.Listen("tcp", net.JoinHostPort(host, strconv.Itoa(cfg.Port)))
	if err != nil {
		return nil, fmt.Errorf("grpc server: %w", err)
	}
	opts := []grpc.ServerOption{
		grpc.KeepaliveParams(keepalive.ServerParameters{Time: cfg.KeepAliveTime, Timeout: cfg.KeepAliveTimeout}),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: cfg.MinPingInterval, PermitWithoutStream: cfg.PermitWithoutCalls}),
	}
	if cfg.MaxMessageSize > 0 {
		opts = append(opts, grpc.MaxRecvMsgSize(cfg.MaxMessageSize))
	}
	if cfg.MaxConnectors > 0 {
		opts = append(opts, grpc.MaxConcurrentStreams(uint32(cfg.MaxConnectors)))
	}
	srv := grpc.NewServer(opts...)
	pb.RegisterTBGatewayProtoServiceServer(srv, h)
	h.mu.Lock()
	if h.srv != nil {
		h.mu.Unlock()
		lis.Close()
		return nil, errors.New("grpc server: already listening")
	}
	h.srv, h.addr, h.log = srv, lis.Addr(), log
	h.mu.Unlock()
	go func() {
		if err := srv.Serve(lis); err != nil {
			log.Error().Err(err).Msg("grpc server stopped")
		}
	}()
	log.Info().Str("addr", lis.Addr().String()).Msg("grpc connector server listening")
	return lis.Addr(), nil
}

// Stop closes the listener and every stream.
func (h *Hub) Stop() {
	h.mu.Lock()
	srv := h.srv
	h.srv, h.addr = nil, nil
	h.mu.Unlock()
	if srv != nil {
		srv.Stop()
	}
}

// Listening reports whether the hub serves.
func (h *Hub) Listening() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.srv != nil
}

// attach makes key available to processes, served by src.
func (h *Hub) attach(key string, src *source) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if s, ok := h.slots[key]; ok && s.src != nil {
		return fmt.Errorf("%w (connectors %q and %q)", ErrKeyInUse, s.name, src.c.name)
	}
	h.slots[key] = &slot{name: src.c.name, config: src.c.config, src: src}
	return nil
}

// detach withdraws key and ends its process's stream.
func (h *Hub) detach(key string, src *source) {
	h.mu.Lock()
	s, ok := h.slots[key]
	if !ok || s.src != src {
		h.mu.Unlock()
		return
	}
	delete(h.slots, key)
	sess := s.sess
	h.mu.Unlock()
	if sess != nil {
		sess.cancel(errors.New("connector stopped"))
	}
}

// claim binds a registering process to key's connector.
func (h *Hub) claim(key string, sess *session) (*slot, pb.ResponseStatus) {
	h.mu.Lock()
	defer h.mu.Unlock()
	s, ok := h.slots[key]
	switch {
	case !ok || s.src == nil:
		return nil, pb.ResponseStatus_NOT_FOUND
	case s.sess != nil:
		return nil, pb.ResponseStatus_FAILURE
	}
	s.sess = sess
	return s, pb.ResponseStatus_SUCCESS
}

// release frees key's connector for the next registration.
func (h *Hub) release(key string, sess *session) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if s, ok := h.slots[key]; ok && s.sess == sess {
		s.sess = nil
	}
}

// current is the process serving key's connector, nil when none.
func (h *Hub) current(key string) *session {
	h.mu.Lock()
	defer h.mu.Unlock()
	if s, ok := h.slots[key]; ok {
		return s.sess
	}
	return nil
}

// Stream serves one connector process: registration first, then its data
// and the commands for it, until either side ends the stream.
func (h *Hub) Stream(stream pb.TBGatewayProtoService_StreamServer) error {
	first, err := stream.Recv()
	if err != nil {
		return err
	}
	reg := first.GetRegisterConnectorMsg()
	if reg == nil {
		return status.Error(codes.FailedPrecondition, "the first message must be registerConnectorMsg")
	}
	ctx, cancel := context.WithCancelCause(stream.Context())
	defer cancel(nil)
	sess := newSession(ctx, cancel, reg.GetConnectorKey())
	s, st := h.claim(reg.GetConnectorKey(), sess)
	if st != pb.ResponseStatus_SUCCESS {
		// Upstream answers with the status; the stream then ends so a
		// client that ignores the answer still learns it was refused.
		_ = stream.Send(&pb.FromServiceMessage{Response: &pb.Response{Status: st}})
		h.log.Warn().Str("peer", peerAddr(ctx)).Str("status", st.String()).Msg("grpc connector registration refused")
		if st == pb.ResponseStatus_NOT_FOUND {
			return status.Error(codes.PermissionDenied, "unknown connector key")
		}
		return status.Error(codes.AlreadyExists, "connector already registered")
	}
	defer h.release(reg.GetConnectorKey(), sess)
	return s.src.serve(sess, stream, s)
}
