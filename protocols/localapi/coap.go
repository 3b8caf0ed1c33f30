package localapi

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	piondtls "github.com/pion/dtls/v3"
	"github.com/plgd-dev/go-coap/v3/dtls"
	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/mux"
	coapNet "github.com/plgd-dev/go-coap/v3/net"
	"github.com/plgd-dev/go-coap/v3/options"
	"github.com/plgd-dev/go-coap/v3/udp"
	udpClient "github.com/plgd-dev/go-coap/v3/udp/client"

	"github.com/industryos/gateway/protocols"
)

// coapServer is the CoAP transport (UDP): the HTTP resources under
// coap://host/api/v1/{token}/..., answered after the commit. A confirmable
// request's piggybacked response (its ACK) is sent when the handler
// returns, so a device's retransmissions stop only once its data is kept.
type coapServer struct {
	stop func()
	addr string
	c    *Connector
	sink protocols.Sink
	ctx  context.Context

	// observations: remote address, token and resource → its removal, for
	// a deregistration (GET with Observe 1).
	observations sync.Map
}

// registration is a CoAP observation's entry in coapServer.observations.
type registration struct{ remove func() }

// coapIdle closes a CoAP session (and its observations) after this long
// without a message from the device; go-coap's default (16 s) would end
// an observation long before a device's next request. A device observing
// longer re-registers, as RFC 7641 has clients do when Max-Age runs out.
const coapIdle = 5 * time.Minute

// notifyTimeout bounds the wait for the ACK of a confirmable notification.
const notifyTimeout = 30 * time.Second

func startCoAP(ctx context.Context, c *Connector, sink protocols.Sink) (*coapServer, error) {
	s := &coapServer{c: c, sink: sink, ctx: ctx}
	r := mux.NewRouter()
	r.DefaultHandleFunc(s.serve)
	maxMsg := uint32(c.cfg.MaxBody + 1024)
	idle := func(cc *udpClient.Conn) { _ = cc.Close() }
	var serve func() error
	if c.cfg.CoAP.TLS() {
		cert, err := tls.LoadX509KeyPair(c.cfg.CoAP.Cert, c.cfg.CoAP.Key)
		if err != nil {
			return nil, fmt.Errorf("load certificate: %w", err)
		}
		// Devices authenticate by their access token in the path, as over
		// plain CoAP; DTLS keeps the token and the data private.
		l, err := coapNet.NewDTLSListener("udp", c.cfg.CoAP.Address, &piondtls.Config{Certificates: []tls.Certificate{cert},
			ExtendedMasterSecret: piondtls.RequestExtendedMasterSecret})
		if err != nil {
			return nil, err
		}
		srv := dtls.NewServer(options.WithMux(r), options.WithMaxMessageSize(maxMsg), options.WithErrors(func(error) {}),
			options.WithInactivityMonitor(coapIdle, idle))
		s.addr, s.stop, serve = l.Addr().String(), srv.Stop, func() error { return srv.Serve(l) }
	} else {
		l, err := coapNet.NewListenUDP("udp", c.cfg.CoAP.Address)
		if err != nil {
			return nil, err
		}
		srv := udp.NewServer(options.WithMux(r), options.WithMaxMessageSize(maxMsg), options.WithErrors(func(error) {}),
			options.WithInactivityMonitor(coapIdle, idle))
		s.addr, s.stop, serve = l.LocalAddr().String(), srv.Stop, func() error { return srv.Serve(l) }
	}
	go func() {
		if err := serve(); err != nil && ctx.Err() == nil {
			sink.Link(false, fmt.Errorf("local api: coap: %w", err))
		}
	}()
	return s, nil
}

func (s *coapServer) close() { s.stop() }

// serve routes /api/v1/{token}/{resource}[/{id}].
func (s *coapServer) serve(w mux.ResponseWriter, r *mux.Message) {
	path, err := r.Path()
	if err != nil {
		coapError(w, codes.BadRequest, "no path")
		return
	}
	parts := strings.Split(strings.Trim(path, "/"), "/")
	if len(parts) < 4 || parts[0] != "api" || parts[1] != "v1" {
		coapError(w, codes.NotFound, "not a device API resource: "+path)
		return
	}
	token, resource := parts[2], strings.Join(parts[3:], "/")
	d, err := s.c.auth.token(token)
	if err != nil {
		s.sink.Refused("coap "+w.Conn().RemoteAddr().String(), fmt.Errorf("coap %s from %s: %w", r.Code(), w.Conn().RemoteAddr(), err))
		coapError(w, codes.Unauthorized, "unknown access token")
		return
	}
	st := s.c.hub.state(d)
	var body []byte
	if r.Body() != nil {
		if body, err = r.ReadBody(); err != nil {
			coapError(w, codes.BadRequest, "cannot read body: "+err.Error())
			return
		}
	}
	if obs, err := r.Observe(); err == nil && r.Code() == codes.GET && (resource == "attributes" || resource == "rpc") {
		what := observeAttributes
		if resource == "rpc" {
			what = observeRPC
		}
		s.observe(w, r, st, what, obs == 0)
		return
	}
	switch code := r.Code(); {
	case code == codes.POST && (resource == kindTelemetry || resource == kindAttributes):
		pushes, err := devicePushes(d, resource, body)
		if err != nil {
			s.sink.Malformed("coap "+d.Name+" "+resource, err)
			coapError(w, codes.BadRequest, err.Error())
			return
		}
		// The piggybacked ACK (2.04) goes only once everything is kept.
		if err := commitAll(s.ctx, s.sink, pushes); err != nil {
			coapError(w, codes.ServiceUnavailable, err.Error())
			return
		}
		_ = w.SetResponse(codes.Changed, message.TextPlain, nil)
	case code == codes.GET && resource == "attributes":
		q := url.Values{}
		if qs, err := r.Queries(); err == nil {
			for _, kv := range qs {
				k, v, _ := strings.Cut(kv, "=")
				q.Add(k, v)
			}
		}
		ctx, cancel := context.WithTimeout(s.ctx, attributeTimeout)
		defer cancel()
		req := attributeRequest{ClientKeys: q.Get("clientKeys"), SharedKeys: q.Get("sharedKeys")}
		if err := req.check(); err != nil {
			s.sink.Malformed("coap "+d.Name+" attribute request", err)
			coapError(w, codes.BadRequest, err.Error())
			return
		}
		resp := requestAttributes(ctx, s.sink, d.Name, req)
		b, _ := json.Marshal(resp)
		coapJSON(w, codes.Content, b)
	case code == codes.POST && strings.HasPrefix(resource, "rpc/"):
		id, err := strconv.ParseInt(strings.TrimPrefix(resource, "rpc/"), 10, 64)
		if err != nil {
			coapError(w, codes.BadRequest, fmt.Sprintf("rpc id %q is not a number", strings.TrimPrefix(resource, "rpc/")))
			return
		}
		if err := st.reply(id, body); err != nil {
			coapError(w, codes.NotFound, err.Error())
			return
		}
		_ = w.SetResponse(codes.Changed, message.AppJSON, nil)
	case code == codes.POST && resource == "rpc":
		coapJSON(w, codes.Content, clientRPC(body, time.Now()))
	default:
		coapError(w, codes.NotFound, fmt.Sprintf("not a device API resource: %s %s", code, path))
	}
}

// observe registers (Observe 0) or ends (Observe 1) an observation of the
// device's shared-attribute updates or server-side RPC. Notifications are
// confirmable: an RPC counts as delivered once the device acknowledged it.
// What waited for the device (no subscription, poll or observation) is
// sent right after the registration.
func (s *coapServer) observe(w mux.ResponseWriter, r *mux.Message, st *devState, what observed, register bool) {
	cc := w.Conn()
	token := append([]byte(nil), r.Token()...)
	key := fmt.Sprintf("%s|%x|%d", cc.RemoteAddr(), token, what)
	if !register {
		if reg, ok := s.observations.LoadAndDelete(key); ok {
			reg.(*registration).remove()
		}
		_ = w.SetResponse(codes.Content, message.AppJSON, nil)
		return
	}
	var seq atomic.Uint32
	seq.Store(1)
	o := &observer{notify: func(payload []byte) error {
		ctx, cancel := context.WithTimeout(cc.Context(), notifyTimeout)
		defer cancel()
		m := cc.AcquireMessage(ctx)
		defer cc.ReleaseMessage(m)
		m.SetCode(codes.Content)
		m.SetToken(token)
		m.SetObserve(seq.Add(1))
		m.SetContentFormat(message.AppJSON)
		m.SetBody(bytes.NewReader(payload))
		if err := cc.WriteMessage(m); err != nil {
			return fmt.Errorf("coap notification to %s of %q: %w", cc.RemoteAddr(), st.dev.Name, err)
		}
		return nil
	}}
	reg := &registration{remove: st.observe(what, o)}
	if old, loaded := s.observations.Swap(key, reg); loaded {
		old.(*registration).remove() // the same token registered again: one observation
	}
	go func() {
		select {
		case <-cc.Context().Done():
		case <-s.ctx.Done():
		}
		s.observations.CompareAndDelete(key, reg)
		reg.remove()
	}()
	_ = w.SetResponse(codes.Content, message.AppJSON, nil)
	w.Message().SetObserve(1)
	go s.c.hub.flush(st, what)
}

func coapJSON(w mux.ResponseWriter, code codes.Code, b []byte) {
	_ = w.SetResponse(code, message.AppJSON, bytes.NewReader(b))
}

func coapError(w mux.ResponseWriter, code codes.Code, msg string) {
	coapJSON(w, code, errorBody(msg))
}
