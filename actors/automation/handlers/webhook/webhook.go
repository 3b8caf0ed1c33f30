// Package webhook is the automation handler that calls an HTTP endpoint.
// Every attempt of one action carries the same Idempotency-Key header, so a
// receiver can drop the duplicates that at-least-once delivery allows (an
// answer lost after the receiver acted, a restart mid-call).
//
//   - handler: webhook
//     params:
//     url: http://127.0.0.1:8080/alarm
//     method: POST                 # default POST
//     headers: {X-Site: plant-1}
//     body: {device: "{{device}}", temperature: "{{value}}"}   # JSON; a string is sent as it is
//     timeout: 10s                 # per attempt, default 10 s
package webhook

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/industryos/gateway/actors/automation/handler"
)

// Name is the handler's name in automation.yaml.
const Name = "webhook"

// KeyHeader carries the action's idempotency key.
const KeyHeader = "Idempotency-Key"

// DefaultTimeout bounds one attempt.
const DefaultTimeout = 10 * time.Second

func init() { handler.Register(Name, New) }

// Handler calls webhooks.
type Handler struct {
	env    handler.Env
	client *http.Client
}

// New builds the handler.
func New(env handler.Env) handler.Handler {
	return &Handler{env: env, client: &http.Client{}}
}

// Validate checks url, method, headers and timeout.
func (h *Handler) Validate(p map[string]any) []error {
	errs := handler.Known(p, "url", "method", "headers", "body", "timeout")
	if u, err := handler.String(p, "url"); err != nil {
		errs = append(errs, err)
	} else if !strings.Contains(u, "{{") {
		if pu, err := url.Parse(u); err != nil || (pu.Scheme != "http" && pu.Scheme != "https") || pu.Host == "" {
			errs = append(errs, fmt.Errorf("params.url: %q is not an http(s) URL", u))
		}
	}
	if m, err := handler.OptString(p, "method", http.MethodPost); err != nil {
		errs = append(errs, err)
	} else if m != strings.ToUpper(m) || strings.ContainsAny(m, " \t") {
		errs = append(errs, fmt.Errorf("params.method: %q is not an HTTP method", m))
	}
	if hv, ok := p["headers"]; ok {
		if m, ok := hv.(map[string]any); !ok {
			errs = append(errs, fmt.Errorf("params.headers: %v is not a mapping", hv))
		} else {
			for k, v := range m {
				if _, ok := v.(string); !ok {
					errs = append(errs, fmt.Errorf("params.headers.%s: %v is not a string", k, v))
				}
			}
		}
	}
	if _, err := timeout(p); err != nil {
		errs = append(errs, err)
	}
	return errs
}

func timeout(p map[string]any) (time.Duration, error) {
	v, ok := p["timeout"]
	if !ok {
		return DefaultTimeout, nil
	}
	switch x := v.(type) {
	case float64:
		if x > 0 {
			return time.Duration(x * float64(time.Second)), nil
		}
	case string:
		if d, err := time.ParseDuration(x); err == nil && d > 0 {
			return d, nil
		}
	}
	return 0, fmt.Errorf("params.timeout: %v is not a positive duration", v)
}

// Run makes one call. 2xx is done; 408, 429 and 5xx and transport errors
// are retried; another answer is permanent.
func (h *Handler) Run(ctx context.Context, a handler.Action) error {
	u, err := handler.String(a.Params, "url")
	if err != nil {
		return handler.Permanent(err)
	}
	method, _ := handler.OptString(a.Params, "method", http.MethodPost)
	d, err := timeout(a.Params)
	if err != nil {
		return handler.Permanent(err)
	}
	var body io.Reader
	isJSON := false
	switch b := a.Params["body"].(type) {
	case nil:
	case string:
		body = strings.NewReader(b)
	default:
		raw, err := json.Marshal(b)
		if err != nil {
			return handler.Permanent(fmt.Errorf("params.body: %w", err))
		}
		body, isJSON = bytes.NewReader(raw), true
	}
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return handler.Permanent(fmt.Errorf("params.url %q: %w", u, err))
	}
	if isJSON {
		req.Header.Set("Content-Type", "application/json")
	}
	if hs, ok := a.Params["headers"].(map[string]any); ok {
		for k, v := range hs {
			if s, ok := v.(string); ok {
				req.Header.Set(k, s)
			}
		}
	}
	req.Header.Set(KeyHeader, a.Key)
	resp, err := h.client.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, redact(u), err)
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	_ = resp.Body.Close()
	switch c := resp.StatusCode; {
	case c >= 200 && c < 300:
		return nil
	case c == http.StatusRequestTimeout || c == http.StatusTooManyRequests || c >= 500:
		return fmt.Errorf("%s %s: %s", method, redact(u), resp.Status)
	default:
		return handler.Permanent(fmt.Errorf("%s %s: %s", method, redact(u), resp.Status))
	}
}

// redact drops credentials from a URL before it is logged.
func redact(u string) string {
	pu, err := url.Parse(u)
	if err != nil {
		return "(unparsable url)"
	}
	return pu.Redacted()
}

var _ handler.Handler = (*Handler)(nil)
