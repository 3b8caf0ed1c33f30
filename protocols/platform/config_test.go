package platform

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/rs/zerolog"
)

func TestConfigDefaults(t *testing.T) {
	c := Config{Host: "tb", Security: Security{AccessToken: "tok"}}.withDefaults()
	if c.Port != 1883 || c.Security.Type != SecurityAccessToken || c.MaxPayload != 8196 ||
		c.ReconnectMin != DefaultReconnectMin || c.ReconnectMax != DefaultReconnectMax ||
		c.SessionLimitsTimeout != 2*DefaultReconnectMin || c.KeepAlive != DefaultKeepAlive {
		t.Errorf("defaults: %+v", c)
	}
	if c.TLSEnabled() || c.serverURL().String() != "mqtt://tb:1883" {
		t.Errorf("url %s", c.serverURL())
	}
	again := Config{Host: "tb", Security: Security{AccessToken: "tok"}}.withDefaults()
	if c.ClientID == "" || c.ClientID != again.ClientID {
		t.Errorf("client id not stable: %q %q", c.ClientID, again.ClientID)
	}
	other := Config{Host: "tb", Security: Security{AccessToken: "tok2"}}.withDefaults()
	if other.ClientID == c.ClientID || strings.Contains(c.ClientID, "tok") {
		t.Errorf("client id %q / %q", c.ClientID, other.ClientID)
	}
	if u, p := c.credentials(); u != "tok" || p != nil {
		t.Errorf("credentials %q %q", u, p)
	}
	up := Config{Host: "tb", Security: Security{Username: "u", Password: "p"}}.withDefaults()
	if u, p := up.credentials(); up.Security.Type != SecurityUsernamePassword || u != "u" || string(p) != "p" {
		t.Errorf("username/password: %s %q %q", up.Security.Type, u, p)
	}
}

func TestConfigTLSEnabled(t *testing.T) {
	cases := []struct {
		c    Config
		tls  bool
		port int
	}{
		{Config{Security: Security{AccessToken: "t"}}, false, 1883},
		{Config{Security: Security{Type: SecurityTLSAccessToken, AccessToken: "t"}}, true, 8883},
		{Config{Security: Security{AccessToken: "t", CACert: "ca.pem"}}, true, 8883},
		{Config{Port: 8883, Security: Security{AccessToken: "t"}}, true, 8883},
		{Config{Port: 1884, Security: Security{Cert: "c", PrivateKey: "k"}}, true, 1884},
	}
	for i, c := range cases {
		d := c.c.withDefaults()
		if d.TLSEnabled() != c.tls || d.Port != c.port {
			t.Errorf("case %d: tls=%v port=%d", i, d.TLSEnabled(), d.Port)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	ok := Config{Host: "h", Security: Security{AccessToken: "t"}}
	if err := ok.Validate(); err != nil {
		t.Fatal(err)
	}
	bad := []Config{
		{Security: Security{AccessToken: "t"}},
		{Host: "h", Port: 70000, Security: Security{AccessToken: "t"}},
		{Host: "h", QoS: 2, Security: Security{AccessToken: "t"}},
		{Host: "h"},
		{Host: "h", Security: Security{Type: "magic", AccessToken: "t"}},
		{Host: "h", Security: Security{Type: SecurityAccessToken}},
		{Host: "h", Security: Security{Type: SecurityX509Certificate, Cert: "c"}},
		{Host: "h", Security: Security{Type: SecurityUsernamePassword}},
	}
	for i, c := range bad {
		if err := c.Validate(); err == nil {
			t.Errorf("case %d: %v accepted", i, c)
		}
	}
	if _, err := New(bad[0], Options{}); err == nil {
		t.Error("New accepted an invalid config")
	}
	if _, err := New(Config{Host: "h", Security: Security{AccessToken: "t", CACert: "/nonexistent.pem"}}, Options{}); err == nil {
		t.Error("New accepted a missing CA file")
	}
}

func TestConfigNeverPrintsSecrets(t *testing.T) {
	const token, password = "SECRET-TOKEN-123", "SECRET-PASSWORD-456"
	cfgs := []Config{
		{Host: "h", Security: Security{AccessToken: token}},
		{Host: "h", Security: Security{Type: SecurityUsernamePassword, Username: "user", Password: password, AccessToken: token}},
	}
	for _, c := range cfgs {
		for _, v := range []any{c, &c, c.Security, &c.Security, c.withDefaults()} {
			var out []string
			for _, f := range []string{"%v", "%+v", "%#v", "%s"} {
				out = append(out, fmt.Sprintf(f, v))
			}
			js, err := json.Marshal(v)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, string(js))
			var buf bytes.Buffer
			l := zerolog.New(&buf)
			l.Info().Interface("iface", v).Msg("x")
			if o, ok := v.(zerolog.LogObjectMarshaler); ok {
				l.Info().Object("obj", o).Msg("x")
			}
			out = append(out, buf.String())
			for _, s := range out {
				if strings.Contains(s, token) || strings.Contains(s, password) {
					t.Errorf("secret leaked: %s", s)
				}
			}
		}
		if s := c.String(); !strings.Contains(s, "<redacted>") || !strings.Contains(s, "mqtt://h:1883") {
			t.Errorf("String() = %s", s)
		}
	}
}
