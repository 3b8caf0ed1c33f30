package observe

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/http/pprof"
	"sort"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/rs/zerolog"
)

// ServerOptions configure the HTTP endpoint.
type ServerOptions struct {
	// Address is host:port; port 0 picks a free port (see Server.Addr).
	Address string
	// Pprof serves /debug/pprof/ (profiles, traces). Off unless asked for:
	// profiles reveal internals and cost CPU while they run.
	Pprof bool
	// Metrics is served on /metrics; nil serves 404 there.
	Metrics *Metrics
	// Ready names what is not ready, with the reason; empty means ready.
	Ready func() map[string]string
	// Automation, when set, is served as JSON on /automation: the state of
	// every forward and task and of the action queue (nil: automation off).
	Automation func() any
	Logger     zerolog.Logger
}

// Server is the running HTTP endpoint.
type Server struct {
	srv *http.Server
	ln  net.Listener
	log zerolog.Logger
}

// Listen binds the address and serves in the background. A bind failure is
// returned, so a taken port is reported at start-up, not lost in a log.
func Listen(o ServerOptions) (*Server, error) {
	ln, err := net.Listen("tcp", o.Address)
	if err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	if o.Metrics != nil {
		mux.Handle("/metrics", promhttp.HandlerFor(o.Metrics.reg, promhttp.HandlerOpts{
			Registry:      o.Metrics.reg, // exports promhttp's own error counter
			ErrorHandling: promhttp.ContinueOnError,
			Timeout:       10 * time.Second,
		}))
	}
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
		// Liveness: the process and this endpoint work. A crash-looping
		// actor is reported but does not fail it: the supervisor keeps
		// retrying, and killing the process would not help.
		body := map[string]any{"status": "ok"}
		if u := o.Metrics.Unhealthy(); len(u) > 0 {
			body["unhealthy_actors"] = u
		}
		writeJSON(w, http.StatusOK, body)
	})
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, r *http.Request) {
		var not map[string]string
		if o.Ready != nil {
			not = o.Ready()
		}
		if len(not) == 0 {
			writeJSON(w, http.StatusOK, map[string]any{"status": "ready"})
			return
		}
		names := make([]string, 0, len(not))
		for k := range not {
			names = append(names, k)
		}
		sort.Strings(names)
		writeJSON(w, http.StatusServiceUnavailable, map[string]any{"status": "not ready", "not_ready": names, "reasons": not})
	})
	mux.HandleFunc("/automation", func(w http.ResponseWriter, r *http.Request) {
		var st any
		if o.Automation != nil {
			st = o.Automation()
		}
		if st == nil {
			writeJSON(w, http.StatusNotFound, map[string]any{"status": "automation off (no automation.yaml)"})
			return
		}
		writeJSON(w, http.StatusOK, st)
	})
	if o.Pprof {
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	s := &Server{
		srv: &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second, IdleTimeout: time.Minute},
		ln:  ln,
		log: o.Logger,
	}
	go func() {
		if err := s.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error().Err(err).Msg("http endpoint stopped")
		}
	}()
	s.log.Info().Str("address", s.Addr()).Bool("pprof", o.Pprof).Msg("http endpoint listening")
	return s, nil
}

// Addr is the bound address (with the real port when 0 was asked for).
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Close stops accepting and waits (within ctx) for requests in progress.
func (s *Server) Close(ctx context.Context) error {
	err := s.srv.Shutdown(ctx)
	if errors.Is(err, context.DeadlineExceeded) {
		return s.srv.Close()
	}
	return err
}

func writeJSON(w http.ResponseWriter, code int, body any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(body)
}
