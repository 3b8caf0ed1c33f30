package localapi

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/industryos/gateway/protocols"
)

// HTTP long-poll bounds for GET /rpc?timeout= (milliseconds), as the
// platform: a missing timeout waits the default.
const (
	defaultPollTimeout = 20 * time.Second
	maxPollTimeout     = 10 * time.Minute
)

// startHTTP binds the HTTP transport and serves it until shutdown.
func startHTTP(ctx context.Context, c *Connector, sink protocols.Sink) (*http.Server, string, error) {
	l, err := net.Listen("tcp", c.cfg.HTTP.Address)
	if err != nil {
		return nil, "", err
	}
	if c.cfg.HTTP.TLS() {
		cert, err := tls.LoadX509KeyPair(c.cfg.HTTP.Cert, c.cfg.HTTP.Key)
		if err != nil {
			l.Close()
			return nil, "", fmt.Errorf("load certificate: %w", err)
		}
		l = tls.NewListener(l, &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12})
	}
	h := &httpAPI{c: c, sink: sink, ctx: ctx}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /api/v1/{token}/telemetry", h.device(h.data(kindTelemetry)))
	mux.HandleFunc("POST /api/v1/{token}/attributes", h.device(h.data(kindAttributes)))
	mux.HandleFunc("GET /api/v1/{token}/attributes", h.device(h.getAttributes))
	mux.HandleFunc("GET /api/v1/{token}/attributes/updates", h.device(h.pollUpdates))
	mux.HandleFunc("GET /api/v1/{token}/rpc", h.device(h.pollRPC))
	mux.HandleFunc("POST /api/v1/{token}/rpc/{id}", h.device(h.replyRPC))
	mux.HandleFunc("POST /api/v1/{token}/rpc", h.device(h.callRPC))
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		jsonError(w, http.StatusNotFound, "not a device API resource: "+r.Method+" "+r.URL.Path)
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute,
		BaseContext: func(net.Listener) context.Context { return ctx }}
	go func() {
		if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			sink.Link(false, fmt.Errorf("local api: http: %w", err))
		}
	}()
	return srv, l.Addr().String(), nil
}

type httpAPI struct {
	c    *Connector
	sink protocols.Sink
	ctx  context.Context
}

type deviceHandler func(w http.ResponseWriter, r *http.Request, st *devState, body []byte)

// device authenticates the path's token and reads the bounded body.
func (h *httpAPI) device(fn deviceHandler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		d, err := h.c.auth.token(r.PathValue("token"))
		if err != nil {
			h.sink.Refused("http "+r.RemoteAddr, fmt.Errorf("http %s from %s: %w", r.Method, r.RemoteAddr, err))
			jsonError(w, http.StatusUnauthorized, "unknown access token")
			return
		}
		var body []byte
		if r.Method == http.MethodPost {
			body, err = io.ReadAll(http.MaxBytesReader(w, r.Body, int64(h.c.cfg.MaxBody)))
			var tooBig *http.MaxBytesError
			if errors.As(err, &tooBig) {
				h.sink.Malformed("http "+d.Name+" body", fmt.Errorf("body over %d bytes", tooBig.Limit))
				jsonError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("body larger than %d bytes", tooBig.Limit))
				return
			}
			if err != nil {
				jsonError(w, http.StatusBadRequest, "cannot read body: "+err.Error())
				return
			}
		}
		fn(w, r, h.c.hub.state(d), body)
	}
}

// data takes a device's telemetry or attributes: 200 only once every
// value is committed to the journal.
func (h *httpAPI) data(kind string) deviceHandler {
	return func(w http.ResponseWriter, r *http.Request, st *devState, body []byte) {
		pushes, err := devicePushes(st.dev, kind, body)
		if err != nil {
			h.sink.Malformed("http "+st.dev.Name+" "+kind, err)
			jsonError(w, http.StatusBadRequest, err.Error())
			return
		}
		if err := commitAll(r.Context(), h.sink, pushes); err != nil {
			if r.Context().Err() == nil { // else the client is gone
				jsonError(w, http.StatusServiceUnavailable, err.Error())
			}
			return
		}
		w.WriteHeader(http.StatusOK)
	}
}

func (h *httpAPI) getAttributes(w http.ResponseWriter, r *http.Request, st *devState, _ []byte) {
	q := r.URL.Query()
	ctx, cancel := context.WithTimeout(r.Context(), attributeTimeout)
	defer cancel()
	req := attributeRequest{ClientKeys: q.Get("clientKeys"), SharedKeys: q.Get("sharedKeys")}
	if err := req.check(); err != nil {
		h.sink.Malformed("http "+st.dev.Name+" attribute request", err)
		jsonError(w, http.StatusBadRequest, err.Error())
		return
	}
	resp := requestAttributes(ctx, h.sink, st.dev.Name, req)
	writeJSON(w, http.StatusOK, resp)
}

// pollTimeout reads ?timeout= (ms); false when it answered a bad one.
func pollTimeout(w http.ResponseWriter, r *http.Request) (time.Duration, bool) {
	v := r.URL.Query().Get("timeout")
	if v == "" {
		return defaultPollTimeout, true
	}
	ms, err := strconv.ParseInt(v, 10, 64)
	if err != nil || ms < 0 {
		jsonError(w, http.StatusBadRequest, fmt.Sprintf("timeout %q is not milliseconds", v))
		return 0, false
	}
	return min(time.Duration(ms)*time.Millisecond, maxPollTimeout), true
}

// pollUpdates is the long poll for shared-attribute updates: 200 with the
// update, or 408 when none came within the timeout.
func (h *httpAPI) pollUpdates(w http.ResponseWriter, r *http.Request, st *devState, _ []byte) {
	longPoll(w, r, st.pollUpdate)
}

// pollRPC is the long poll for server-side RPC: 200 with the request, or
// 408 when none came within the timeout.
func (h *httpAPI) pollRPC(w http.ResponseWriter, r *http.Request, st *devState, _ []byte) {
	longPoll(w, r, func(ctx context.Context) ([]byte, bool) {
		p, ok := st.poll(ctx)
		if !ok {
			return nil, false
		}
		return rpcRequestPayload(p.req), true
	})
}

// longPoll waits (?timeout= ms) for what next returns: 200 with it as
// JSON, or 408.
func longPoll(w http.ResponseWriter, r *http.Request, next func(context.Context) ([]byte, bool)) {
	timeout, ok := pollTimeout(w, r)
	if !ok {
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), timeout)
	defer cancel()
	b, ok := next(ctx)
	if !ok {
		w.WriteHeader(http.StatusRequestTimeout)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(b)
}

func (h *httpAPI) replyRPC(w http.ResponseWriter, r *http.Request, st *devState, body []byte) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil {
		jsonError(w, http.StatusBadRequest, fmt.Sprintf("rpc id %q is not a number", r.PathValue("id")))
		return
	}
	if err := st.reply(id, body); err != nil {
		jsonError(w, http.StatusNotFound, err.Error())
		return
	}
	w.WriteHeader(http.StatusOK)
}

func (h *httpAPI) callRPC(w http.ResponseWriter, r *http.Request, st *devState, body []byte) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(clientRPC(body, time.Now()))
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status, b = http.StatusInternalServerError, errorBody(err.Error())
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

func jsonError(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(errorBody(msg))
}
