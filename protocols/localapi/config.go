package localapi

import (
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/industryos/gateway/protocols"
	"github.com/industryos/gateway/protocols/kit/report"
	"github.com/industryos/gateway/protocols/kit/spec"
)

// Section is the main file's key this package reads.
const Section = "localApi"

// Default listen addresses: the platform's own ports, so device firmware
// only needs the host changed, on loopback so nothing is exposed to the
// plant network unless someone asks for it.
const (
	DefaultMQTTAddress = "127.0.0.1:1883"
	DefaultHTTPAddress = "127.0.0.1:8080"
	DefaultCoAPAddress = "127.0.0.1:5683"
	// DefaultMaxBody bounds an HTTP request body (and an MQTT payload).
	DefaultMaxBody = 64 << 10
)

// Transport is one endpoint of the local API.
type Transport struct {
	Enabled bool
	Address string // host:port; port 0 picks a free one
	// Cert and Key, when set, serve TLS (absolute paths).
	Cert, Key string
}

// TLS reports whether the transport serves TLS.
func (t Transport) TLS() bool { return t.Cert != "" }

// Device is one device allowed to use the local API. Exactly one kind of
// credential is set.
type Device struct {
	Name    string
	Profile string
	// AccessToken: the MQTT username, the HTTP and CoAP path token.
	AccessToken string
	// MQTT basic credentials: any of ClientID and Username, Password optional.
	ClientID, Username, Password string
	// Fingerprint is the lower-case hex SHA-256 of the device's X.509 client
	// certificate (DER), presented on the MQTT TLS listener.
	Fingerprint string
	// Report is the device's reportStrategy, else the section's; unset
	// inherits the global one.
	Report protocols.ReportStrategy
}

// Credential names the kind of credential the device uses (for logs: never
// the secret itself).
func (d *Device) Credential() string {
	switch {
	case d.AccessToken != "":
		return "accessToken"
	case d.Fingerprint != "":
		return "x509"
	}
	return "mqttBasic"
}

// Config is the parsed localApi section.
type Config struct {
	MQTT, HTTP, CoAP Transport
	// MaxBody bounds HTTP bodies and MQTT payloads, in bytes.
	MaxBody int
	// Report is the section's reportStrategy (devices may set their own).
	Report  protocols.ReportStrategy
	Devices []*Device
}

// Enabled reports whether any transport is on.
func (c *Config) Enabled() bool { return c.MQTT.Enabled || c.HTTP.Enabled || c.CoAP.Enabled }

// Parse reads the localApi section. dir resolves relative certificate paths
// (the main file's directory). Problems go to o.Problems() with their path.
func Parse(o *spec.Obj, dir string) *Config {
	c := &Config{}
	c.MQTT = parseTransport(o, "mqtt", DefaultMQTTAddress, dir, true)
	c.HTTP = parseTransport(o, "http", DefaultHTTPAddress, dir, true)
	c.CoAP = parseTransport(o, "coap", DefaultCoAPAddress, dir, true) // certificate: DTLS
	c.MaxBody = int(o.IntRange("maxPayloadBytes", DefaultMaxBody, 64, 16<<20))
	c.Report = report.Parse(o)
	if !c.Enabled() {
		o.Warnf("", "no transport enabled (set mqtt.enabled, http.enabled or coap.enabled): the local device API is off")
	}
	c.Devices = parseDevices(o, c)
	o.Done()
	return c
}

func parseTransport(parent *spec.Obj, key, def, dir string, tlsOK bool) Transport {
	t := Transport{Address: def}
	o := parent.Obj(key)
	if o == nil {
		return t
	}
	t.Enabled = o.Bool("enabled", false)
	t.Address = o.Str("address", def)
	checkAddress(o, "address", t.Address)
	if tlsOK {
		t.Cert = abs(dir, o.Str("certificate", ""))
		t.Key = abs(dir, o.Str("privateKey", ""))
		checkKeyPair(o, t.Cert, t.Key)
	}
	o.Done()
	return t
}

func abs(dir, p string) string {
	if p == "" || filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(dir, p)
}

func checkAddress(o *spec.Obj, key, addr string) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		o.Errorf(key, "%q is not host:port (e.g. %q)", addr, DefaultMQTTAddress)
		return
	}
	if p, err := strconv.Atoi(port); err != nil || p < 0 || p > 65535 {
		o.Errorf(key, "%q: port %q is not a number in 0..65535", addr, port)
	}
	if host != "" && net.ParseIP(host) == nil && strings.ContainsAny(host, " /") {
		o.Errorf(key, "%q: %q is not a host name or IP address", addr, host)
	}
}

func checkKeyPair(o *spec.Obj, cert, key string) {
	if (cert == "") != (key == "") {
		o.Errorf("", "certificate and privateKey go together: set both or neither")
		return
	}
	if cert == "" {
		return
	}
	readable := true
	for _, f := range []struct{ key, path string }{{"certificate", cert}, {"privateKey", key}} {
		if _, err := os.Stat(f.path); err != nil {
			o.Errorf(f.key, "cannot read %q: %v", f.path, unwrapPath(err))
			readable = false
		}
	}
	if readable {
		if _, err := tls.LoadX509KeyPair(cert, key); err != nil {
			o.Errorf("certificate", "%q with privateKey %q: %v", cert, key, err)
		}
	}
}

func unwrapPath(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// parseDevices reads devices[]. Credentials must be unambiguous: a secret
// that names two devices is an error (quoted by path, never by value).
func parseDevices(o *spec.Obj, c *Config) []*Device {
	var out []*Device
	names := map[string]string{}
	tokens := map[string]string{}
	basics := map[string]string{}
	prints := map[string]string{}
	for _, do := range o.List("devices") {
		d := &Device{}
		d.Name = do.RequiredStr("name")
		d.Profile = do.Str("profile", "default")
		d.AccessToken = do.Str("accessToken", "")
		d.ClientID = do.Str("clientId", "")
		d.Username = do.Str("username", "")
		d.Password = do.Str("password", "")
		fp := do.Str("certificateFingerprint", "")
		d.Report = report.Parse(do).Or(c.Report)
		do.Done()
		if d.Name != "" {
			if prev, dup := names[d.Name]; dup {
				do.Errorf("name", "duplicate device name %q (also at %s)", d.Name, prev)
			}
			names[d.Name] = do.Path()
		}
		kinds := 0
		if d.AccessToken != "" {
			kinds++
			if prev, dup := tokens[d.AccessToken]; dup {
				do.Errorf("accessToken", "the same access token is used by %s", prev)
			}
			tokens[d.AccessToken] = do.Path()
			if strings.ContainsAny(d.AccessToken, "/?#") {
				do.Errorf("accessToken", "must not contain '/', '?' or '#' (it is part of the HTTP path)")
			}
		}
		if d.ClientID != "" || d.Username != "" || d.Password != "" {
			kinds++
			if d.ClientID == "" && d.Username == "" {
				do.Errorf("username", "is required with password (or set clientId)")
			}
			k := d.ClientID + "\x00" + d.Username
			if prev, dup := basics[k]; dup {
				do.Errorf("username", "the same clientId and username are used by %s", prev)
			}
			basics[k] = do.Path()
			if !c.MQTT.Enabled {
				do.Warnf("username", "MQTT basic credentials need mqtt.enabled")
			}
		}
		if fp != "" {
			kinds++
			norm := strings.ToLower(strings.ReplaceAll(fp, ":", ""))
			if b, err := hex.DecodeString(norm); err != nil || len(b) != 32 {
				do.Errorf("certificateFingerprint", "%q is not a SHA-256 fingerprint (64 hex digits, colons allowed)", fp)
			} else {
				d.Fingerprint = norm
				if prev, dup := prints[norm]; dup {
					do.Errorf("certificateFingerprint", "the same fingerprint is used by %s", prev)
				}
				prints[norm] = do.Path()
			}
			if !c.MQTT.Enabled || !c.MQTT.TLS() {
				do.Errorf("certificateFingerprint", "X.509 devices need mqtt.enabled with mqtt.certificate and mqtt.privateKey (TLS)")
			}
		}
		switch kinds {
		case 0:
			do.Errorf("", "no credentials: set accessToken, username/password (or clientId) or certificateFingerprint")
			continue
		case 1:
		default:
			do.Errorf("", "set one kind of credentials: accessToken, username/password (clientId) or certificateFingerprint")
			continue
		}
		if d.Name == "" {
			continue
		}
		out = append(out, d)
	}
	if len(out) == 0 && c.Enabled() && !o.Problems().HasErrors() {
		o.Warnf("devices", "no devices: every connection will be refused")
	}
	return out
}

// String is the device for logs: its name and kind of credential.
func (d *Device) String() string { return fmt.Sprintf("%q (%s)", d.Name, d.Credential()) }
