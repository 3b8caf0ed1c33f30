// Package email is the automation handler that sends a mail over SMTP.
// Subject and body are templates like every other param ({{value}}).
//
//   - handler: email
//     params:
//     host: smtp.example.com
//     port: 587                    # default 587 (starttls), 465 (tls), 25 (none)
//     tls: starttls                # starttls (default), tls (implicit) or none
//     caFile: certs/smtp-ca.pem    # optional: PEM bundle trusted for the server (relative to automation.yaml)
//     username: alarms@example.com
//     passwordEnv: SMTP_PASSWORD   # or passwordFile: /run/secrets/smtp (never logged)
//     from: alarms@example.com
//     to: [ops@example.com]
//     subject: "{{device}} at {{value}}"
//     body: "{{device}}.{{key}} is {{value}}"
//
// Certificates are verified (against caFile when given, else the system's
// roots). A literal password param is refused: params are stored in the
// durable queue, so they name where the password is (an environment
// variable or a file), read at each attempt. A refused connection or a
// temporary (4xx) answer is retried by the action queue; a permanent (5xx)
// answer, a refused login included, fails the action at once.
package email

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/smtp"
	"net/textproto"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/industryos/gateway/actors/automation/handler"
)

// Name is the handler's name in automation.yaml.
const Name = "email"

func init() { handler.Register(Name, New) }

// Handler sends mails.
type Handler struct{ env handler.Env }

// New builds the handler.
func New(env handler.Env) handler.Handler { return &Handler{env: env} }

var params = []string{"host", "port", "tls", "caFile", "username", "passwordEnv", "passwordFile", "from", "to", "subject", "body"}

// Validate checks the server, the addresses and the templates' presence.
func (h *Handler) Validate(p map[string]any) []error {
	errs := handler.Known(p, append(params[:len(params):len(params)], "password")...)
	if _, ok := p["password"]; ok {
		errs = append(errs, errors.New("params.password: a literal password would be stored with each queued action; use passwordEnv (an environment variable) or passwordFile"))
	}
	for _, k := range []string{"host", "from"} {
		if _, err := handler.String(p, k); err != nil {
			errs = append(errs, err)
		}
	}
	if _, err := recipients(p); err != nil {
		errs = append(errs, err)
	}
	if m, _ := handler.OptString(p, "tls", "starttls"); m != "starttls" && m != "tls" && m != "none" {
		errs = append(errs, fmt.Errorf("params.tls: %q is not starttls, tls or none", m))
	}
	if _, err := port(p); err != nil {
		errs = append(errs, err)
	}
	if _, err := h.roots(p); err != nil {
		errs = append(errs, err)
	}
	if _, hasEnv := p["passwordEnv"]; hasEnv {
		if _, hasFile := p["passwordFile"]; hasFile {
			errs = append(errs, errors.New("params: passwordEnv and passwordFile both given; want one"))
		}
	}
	return errs
}

// roots reads caFile: nil (the system's roots) when not given.
func (h *Handler) roots(p map[string]any) (*x509.CertPool, error) {
	ref, err := handler.OptString(p, "caFile", "")
	if err != nil || ref == "" {
		return nil, err
	}
	path := ref
	if !filepath.IsAbs(path) && h.env.Dir != "" {
		path = filepath.Join(h.env.Dir, path)
	}
	pem, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("params.caFile: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("params.caFile: %s holds no PEM certificate", path)
	}
	return pool, nil
}

// password reads passwordEnv or passwordFile ("" without either).
func (h *Handler) password(p map[string]any) (string, error) {
	if env, _ := handler.OptString(p, "passwordEnv", ""); env != "" {
		return os.Getenv(env), nil
	}
	ref, _ := handler.OptString(p, "passwordFile", "")
	if ref == "" {
		return "", nil
	}
	if !filepath.IsAbs(ref) && h.env.Dir != "" {
		ref = filepath.Join(h.env.Dir, ref)
	}
	b, err := os.ReadFile(ref)
	if err != nil {
		return "", fmt.Errorf("params.passwordFile: %w", err)
	}
	return strings.TrimRight(string(b), "\r\n"), nil
}

// fail wraps an SMTP error with the server and the step; a permanent (5xx)
// reply, such as a refused login, is not worth retrying.
func fail(addr, step string, err error) error {
	err = fmt.Errorf("smtp %s: %s: %w", addr, step, err)
	var te *textproto.Error
	if errors.As(err, &te) && te.Code >= 500 && te.Code < 600 {
		return handler.Permanent(err)
	}
	return err
}

func recipients(p map[string]any) ([]string, error) {
	switch v := p["to"].(type) {
	case string:
		if v != "" {
			return []string{v}, nil
		}
	case []any:
		var out []string
		for _, e := range v {
			s, ok := e.(string)
			if !ok || s == "" {
				return nil, fmt.Errorf("params.to: %v is not an address", e)
			}
			out = append(out, s)
		}
		if len(out) > 0 {
			return out, nil
		}
	}
	return nil, errors.New("params.to: want an address or a list of addresses")
}

func port(p map[string]any) (int, error) {
	mode, _ := handler.OptString(p, "tls", "starttls")
	v, ok := p["port"]
	if !ok {
		return map[string]int{"starttls": 587, "tls": 465, "none": 25}[mode], nil
	}
	f, ok := v.(float64)
	if !ok || f < 1 || f > 65535 || f != float64(int(f)) {
		return 0, fmt.Errorf("params.port: %v is not a port", v)
	}
	return int(f), nil
}

// Run sends one mail.
func (h *Handler) Run(ctx context.Context, a handler.Action) error {
	if errs := h.Validate(a.Params); len(errs) > 0 {
		return handler.Permanent(errors.Join(errs...))
	}
	host, _ := handler.String(a.Params, "host")
	from, _ := handler.String(a.Params, "from")
	to, _ := recipients(a.Params)
	mode, _ := handler.OptString(a.Params, "tls", "starttls")
	prt, _ := port(a.Params)
	user, _ := handler.OptString(a.Params, "username", "")
	pass, err := h.password(a.Params)
	if err != nil {
		return err
	}
	roots, err := h.roots(a.Params)
	if err != nil {
		return err
	}
	subject := fmt.Sprint(orEmpty(a.Params["subject"]))
	body := fmt.Sprint(orEmpty(a.Params["body"]))

	addr := net.JoinHostPort(host, strconv.Itoa(prt))
	d := net.Dialer{Timeout: 15 * time.Second}
	var conn net.Conn
	tcfg := &tls.Config{ServerName: host, MinVersion: tls.VersionTLS12, RootCAs: roots}
	if mode == "tls" {
		conn, err = (&tls.Dialer{NetDialer: &d, Config: tcfg}).DialContext(ctx, "tcp", addr)
	} else {
		conn, err = d.DialContext(ctx, "tcp", addr)
	}
	if err != nil {
		return fmt.Errorf("smtp %s: %w", addr, err)
	}
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	c, err := smtp.NewClient(conn, host)
	if err != nil {
		conn.Close()
		return fail(addr, "greeting", err)
	}
	defer c.Close()
	if mode == "starttls" {
		if err := c.StartTLS(tcfg); err != nil {
			return fail(addr, "STARTTLS", err)
		}
	}
	if user != "" {
		// PlainAuth refuses to send the password over plain text except to
		// localhost; the password appears in no error or log.
		if err := c.Auth(smtp.PlainAuth("", user, pass, host)); err != nil {
			return fail(addr, "login as "+user, err)
		}
	}
	msg := "From: " + from + "\r\nTo: " + strings.Join(to, ", ") + "\r\nSubject: " + oneLine(subject) +
		"\r\nMessage-ID: <" + a.Key + "@iotgw>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n" +
		strings.ReplaceAll(body, "\n", "\r\n") + "\r\n"
	if err := c.Mail(from); err != nil {
		return fail(addr, "MAIL FROM", err)
	}
	for _, r := range to {
		if err := c.Rcpt(r); err != nil {
			return fail(addr, "RCPT TO "+r, err)
		}
	}
	w, err := c.Data()
	if err != nil {
		return fail(addr, "DATA", err)
	}
	if _, err := w.Write([]byte(msg)); err != nil {
		return fmt.Errorf("smtp %s: DATA: %w", addr, err)
	}
	if err := w.Close(); err != nil {
		return fail(addr, "DATA", err)
	}
	return c.Quit()
}

func orEmpty(v any) any {
	if v == nil {
		return ""
	}
	return v
}

func oneLine(s string) string { return strings.NewReplacer("\r", " ", "\n", " ").Replace(s) }

var _ handler.Handler = (*Handler)(nil)
