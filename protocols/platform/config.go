package platform

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/rs/zerolog"
)

// Security types (COMPAT §2.2).
const (
	SecurityAccessToken      = "accessToken"
	SecurityTLSAccessToken   = "tlsAccessToken"
	SecurityUsernamePassword = "usernamePassword"
	SecurityX509Certificate  = "x509Certificate"
)

// Defaults applied by New for zero fields.
const (
	DefaultPort                 = 1883
	DefaultTLSPort              = 8883
	DefaultKeepAlive            = 120 * time.Second
	DefaultReconnectMin         = time.Second
	DefaultReconnectMax         = 60 * time.Second
	DefaultSessionLimitsTimeout = 2 * time.Second
	DefaultMaxPayload           = 8196
	DefaultConnectTimeout       = 10 * time.Second
	DefaultPublishTimeout       = 10 * time.Second
	DefaultSessionExpiry        = time.Hour
)

// Security holds the gateway device's credentials.
type Security struct {
	// Type is one of the Security* constants. When empty it is inferred
	// from the fields present, as upstream does.
	Type        string
	AccessToken string
	Username    string
	Password    string
	// CACert, Cert and PrivateKey are PEM file paths.
	CACert     string
	Cert       string
	PrivateKey string
	// Insecure disables server certificate verification.
	Insecure bool
}

// Config configures the platform connection.
type Config struct {
	Host string
	Port int // default 1883, or 8883 with TLS
	// ClientID must be stable for the broker to keep our session across
	// reconnects and restarts; by default it is derived from the host and
	// the identity (hashed, so it reveals no secret).
	ClientID  string
	QoS       byte          // 0 or 1, for data and the gateway's own topics
	KeepAlive time.Duration // default 120s
	Security  Security

	ReconnectMin time.Duration // first reconnect delay, default 1s
	ReconnectMax time.Duration // backoff cap, default 60s
	// SessionLimitsTimeout bounds the wait for the getSessionLimits answer
	// after each connect. Platforms before 3.8 never answer, so a long
	// wait would stall every start.
	SessionLimitsTimeout time.Duration
	// MaxPayload is the payload limit until the platform announces its own.
	MaxPayload     int
	ConnectTimeout time.Duration // per attempt, default 10s
	// PublishTimeout bounds the wait for a PUBACK, default 10s.
	PublishTimeout time.Duration
	// SessionExpiry is asked of the broker so in-flight QoS 1 messages
	// survive a reconnect when it keeps the session. Default 1h.
	SessionExpiry time.Duration
	// Provisioning, when set and Security is empty, obtains the credentials
	// from the platform (or from the file of an earlier provisioning)
	// before the first connect. Configured credentials win, as upstream.
	Provisioning *Provisioning
}

// provisioning reports whether the credentials must come from provisioning.
func (c Config) provisioning() bool {
	return c.Provisioning != nil && c.Security.effectiveType() == ""
}

// provisionTLS is the provisioning connection's TLS: on with the
// provisioning CA file or on the TLS port. Unlike upstream, which skips
// verification there, the server certificate is verified.
func (c Config) provisionTLS() (*tls.Config, error) {
	pc := Config{Host: c.Host, Port: c.Port, Security: Security{CACert: c.Provisioning.CACert}}
	return pc.tlsConfig()
}

func (s Security) effectiveType() string {
	switch {
	case s.Type != "":
		return s.Type
	case s.AccessToken != "":
		return SecurityAccessToken
	case s.Username != "":
		return SecurityUsernamePassword
	case s.Cert != "" || s.PrivateKey != "":
		return SecurityX509Certificate
	}
	return ""
}

// TLSEnabled reports whether the connection uses TLS: with a CA file, a TLS
// security type, or on the standard TLS port.
func (c Config) TLSEnabled() bool {
	t := c.Security.effectiveType()
	return c.Security.CACert != "" || t == SecurityTLSAccessToken || t == SecurityX509Certificate ||
		c.Port == DefaultTLSPort
}

func (c Config) withDefaults() Config {
	c.Security.Type = c.Security.effectiveType()
	if c.Port == 0 {
		c.Port = DefaultPort
		if c.TLSEnabled() {
			c.Port = DefaultTLSPort
		}
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&c.KeepAlive, DefaultKeepAlive)
	def(&c.ReconnectMin, DefaultReconnectMin)
	def(&c.ReconnectMax, DefaultReconnectMax)
	def(&c.SessionLimitsTimeout, DefaultSessionLimitsTimeout)
	def(&c.ConnectTimeout, DefaultConnectTimeout)
	def(&c.PublishTimeout, DefaultPublishTimeout)
	def(&c.SessionExpiry, DefaultSessionExpiry)
	if c.ReconnectMax < c.ReconnectMin {
		c.ReconnectMax = c.ReconnectMin
	}
	if c.MaxPayload <= 0 {
		c.MaxPayload = DefaultMaxPayload
	}
	if c.ClientID == "" {
		c.ClientID = c.defaultClientID()
	}
	return c
}

func (c Config) defaultClientID() string {
	h := sha256.New()
	host, _ := os.Hostname()
	s := c.Security
	for _, part := range []string{host, c.Host, strconv.Itoa(c.Port), s.Type, s.AccessToken, s.Username, s.Cert} {
		h.Write([]byte(part))
		h.Write([]byte{0})
	}
	return "tbgw-" + hex.EncodeToString(h.Sum(nil)[:10])
}

// Validate checks the configuration after defaults are applied.
func (c Config) Validate() error {
	explicitID := c.ClientID
	c = c.withDefaults()
	var errs []error
	if c.Host == "" {
		errs = append(errs, errors.New("host is required"))
	}
	if c.Port < 1 || c.Port > 65535 {
		errs = append(errs, fmt.Errorf("port %d out of range", c.Port))
	}
	if c.QoS > 1 {
		errs = append(errs, fmt.Errorf("qos %d not supported (0 or 1)", c.QoS))
	}
	if c.KeepAlive > 65535*time.Second {
		errs = append(errs, fmt.Errorf("keep alive %s too long", c.KeepAlive))
	}
	s := c.Security
	switch s.Type {
	case SecurityAccessToken, SecurityTLSAccessToken:
		if s.AccessToken == "" {
			errs = append(errs, fmt.Errorf("security %s: accessToken is required", s.Type))
		}
	case SecurityUsernamePassword:
		// The platform's MQTT basic credentials may be a client id alone.
		if s.Username == "" && explicitID == "" {
			errs = append(errs, errors.New("security usernamePassword: username or clientId is required"))
		}
	case SecurityX509Certificate:
		if s.Cert == "" || s.PrivateKey == "" {
			errs = append(errs, errors.New("security x509Certificate: cert and privateKey are required"))
		}
	case "":
		if c.Provisioning == nil {
			errs = append(errs, errors.New("security: no credentials configured"))
		} else if err := c.Provisioning.Validate(); err != nil {
			errs = append(errs, err)
		}
	default:
		errs = append(errs, fmt.Errorf("security: unknown type %q", s.Type))
	}
	if (s.Cert == "") != (s.PrivateKey == "") {
		errs = append(errs, errors.New("security: cert and privateKey go together"))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("platform config: %w", err)
	}
	return nil
}

// tlsConfig loads the certificates; nil when TLS is off.
func (c Config) tlsConfig() (*tls.Config, error) {
	if !c.TLSEnabled() {
		return nil, nil
	}
	s := c.Security
	tc := &tls.Config{
		MinVersion:         tls.VersionTLS12,
		ServerName:         c.Host,
		InsecureSkipVerify: s.Insecure, //nolint:gosec // explicit operator choice
	}
	if s.CACert != "" {
		pem, err := os.ReadFile(s.CACert)
		if err != nil {
			return nil, fmt.Errorf("platform config: caCert: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("platform config: caCert %s: no PEM certificate found", s.CACert)
		}
		tc.RootCAs = pool
	}
	if s.Cert != "" {
		cert, err := tls.LoadX509KeyPair(s.Cert, s.PrivateKey)
		if err != nil {
			return nil, fmt.Errorf("platform config: client certificate: %w", err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return tc, nil
}

func (c Config) serverURL() *url.URL {
	scheme := "mqtt"
	if c.TLSEnabled() {
		scheme = "mqtts"
	}
	return &url.URL{Scheme: scheme, Host: net.JoinHostPort(c.Host, strconv.Itoa(c.Port))}
}

// credentials returns the MQTT username and password for the security type.
// ThingsBoard authenticates tokens as the username with no password.
func (c Config) credentials() (string, []byte) {
	s := c.Security
	switch s.Type {
	case SecurityAccessToken, SecurityTLSAccessToken:
		return s.AccessToken, nil
	case SecurityUsernamePassword:
		return s.Username, []byte(s.Password)
	}
	return "", nil
}

const redacted = "<redacted>"

func mask(secret string) string {
	if secret == "" {
		return ""
	}
	return redacted
}

// String describes the security settings with the secrets masked.
func (s Security) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "type=%s", s.effectiveType())
	if s.AccessToken != "" {
		fmt.Fprintf(&b, " accessToken=%s", redacted)
	}
	if s.Username != "" {
		fmt.Fprintf(&b, " username=%s", s.Username)
	}
	if s.Password != "" {
		fmt.Fprintf(&b, " password=%s", redacted)
	}
	for _, f := range [][2]string{{"caCert", s.CACert}, {"cert", s.Cert}, {"privateKey", s.PrivateKey}} {
		if f[1] != "" {
			fmt.Fprintf(&b, " %s=%s", f[0], f[1])
		}
	}
	if s.Insecure {
		b.WriteString(" insecure")
	}
	return b.String()
}

// GoString keeps %#v from bypassing String and printing the secrets.
func (s Security) GoString() string { return "platform.Security{" + s.String() + "}" }

// MarshalJSON masks the secrets too: a config dumped as JSON (zerolog's
// Interface, a diagnostics endpoint) must not leak them either. Loaders read
// credentials from their own file format, never from this encoding.
func (s Security) MarshalJSON() ([]byte, error) {
	type plain Security
	p := plain(s)
	p.Type = s.effectiveType()
	p.AccessToken, p.Password = mask(p.AccessToken), mask(p.Password)
	return json.Marshal(p)
}

// MarshalZerologObject logs the settings without secrets.
func (s Security) MarshalZerologObject(e *zerolog.Event) {
	e.Str("type", s.effectiveType()).
		Str("accessToken", mask(s.AccessToken)).
		Str("username", s.Username).
		Str("password", mask(s.Password)).
		Str("caCert", s.CACert).
		Str("cert", s.Cert).
		Str("privateKey", s.PrivateKey).
		Bool("insecure", s.Insecure)
}

// String describes the connection for logs with the secrets masked.
func (c Config) String() string {
	c = c.withDefaults()
	return fmt.Sprintf("%s client_id=%s qos=%d %s", c.serverURL(), c.ClientID, c.QoS, c.Security)
}

// GoString keeps %#v from bypassing String and printing the secrets.
func (c Config) GoString() string { return "platform.Config{" + c.String() + "}" }

// MarshalZerologObject logs the configuration without secrets.
func (c Config) MarshalZerologObject(e *zerolog.Event) {
	c = c.withDefaults()
	e.Str("url", c.serverURL().String()).
		Str("client_id", c.ClientID).
		Uint8("qos", c.QoS).
		Dur("keep_alive", c.KeepAlive).
		Object("security", c.Security)
}
