package config

import (
	"crypto/tls"
	"crypto/x509"
	"os"
	"path/filepath"

	"github.com/industryos/gateway/protocols/kit/spec"
	"github.com/industryos/gateway/protocols/platform"
)

// Provisioning is thingsboard.provisioning: how a gateway without
// credentials obtains them from the platform (COMPAT §2.1).
type Provisioning struct {
	Type        string // ACCESS_TOKEN | MQTT_BASIC | X509_CERTIFICATE
	Key         string // provisionDeviceKey
	Secret      string // provisionDeviceSecret
	DeviceName  string
	AccessToken string // proposed credentials; generated when empty
	ClientID    string
	Username    string
	Password    string
	CACert      string // file path
	// CredentialsFile is where the received credentials are kept: upstream's
	// .credentials next to the main config file.
	CredentialsFile string
	// FromEnv is set when TB_GW_PROVISIONING_DEVICE_KEY/SECRET supplied it;
	// as upstream, it then wins over a security section.
	FromEnv bool
}

// provisioningEnv maps upstream's provisioning variables to section keys.
var provisioningEnv = []struct{ env, key string }{
	{"TB_GW_PROVISIONING_DEVICE_KEY", "provisionDeviceKey"},
	{"TB_GW_PROVISIONING_DEVICE_SECRET", "provisionDeviceSecret"},
	{"TB_GW_PROVISIONING_DEVICE_NAME", "deviceName"},
	{"TB_GW_PROVISIONING_DEVICE_ACCESS_TOKEN", "access_token"},
	{"TB_GW_PROVISIONING_DEVICE_USERNAME", "username"},
	{"TB_GW_PROVISIONING_DEVICE_PASSWORD", "password"},
	{"TB_GW_PROVISIONING_DEVICE_CLIENT_ID", "client_id"},
	{"TB_GW_PROVISIONING_DEVICE_CA_CERT_FILENAME", "caCert"},
}

// applyProvisioningEnv writes the provisioning variables into the raw
// thingsboard section (only when both key and secret are set, as upstream)
// and reports whether it did.
func applyProvisioningEnv(o *spec.Obj, getenv func(string) string) bool {
	if getenv == nil || getenv("TB_GW_PROVISIONING_DEVICE_KEY") == "" || getenv("TB_GW_PROVISIONING_DEVICE_SECRET") == "" {
		return false
	}
	m := o.Raw()
	pm, _ := m["provisioning"].(map[string]any)
	if pm == nil {
		pm = map[string]any{}
		m["provisioning"] = pm
	}
	for _, e := range provisioningEnv {
		if v := getenv(e.env); v != "" {
			pm[e.key] = v
		}
	}
	switch {
	case getenv("TB_GW_PROVISIONING_DEVICE_ACCESS_TOKEN") != "":
		pm["type"] = platform.ProvisionAccessToken
	case getenv("TB_GW_PROVISIONING_DEVICE_USERNAME") != "" || getenv("TB_GW_PROVISIONING_DEVICE_PASSWORD") != "" ||
		getenv("TB_GW_PROVISIONING_DEVICE_CLIENT_ID") != "":
		pm["type"] = platform.ProvisionMQTTBasic
	case getenv("TB_GW_PROVISIONING_DEVICE_CA_CERT_FILENAME") != "":
		pm["type"] = platform.ProvisionX509
	}
	return true
}

// parseProvisioning reads thingsboard.provisioning; nil when absent. dir is
// the config directory, where the credentials are kept.
func parseProvisioning(o *spec.Obj, dir string, fromEnv bool) *Provisioning {
	po := o.Obj("provisioning")
	if po == nil {
		return nil
	}
	p := &Provisioning{FromEnv: fromEnv, CredentialsFile: filepath.Join(dir, platform.CredentialsFileName)}
	p.Type = po.Enum("type", platform.ProvisionAccessToken, platform.ProvisionTypes...)
	p.Key = po.RequiredStr("provisionDeviceKey")
	p.Secret = po.RequiredStr("provisionDeviceSecret")
	p.DeviceName = po.Str("deviceName", "")
	p.AccessToken = po.Str("access_token", "")
	p.ClientID = po.Str("client_id", "")
	p.Username = po.Str("username", "")
	p.Password = po.Str("password", "")
	p.CACert = po.Str("caCert", "")
	if p.CACert != "" {
		checkPEMCerts(po, "caCert", p.CACert)
	}
	po.Done()
	return p
}

// checkStoredCredentials makes `check` refuse what `run` could not use: a
// credentials file from an earlier provisioning that is damaged, or whose
// X.509 files are gone.
func checkStoredCredentials(o *spec.Obj, p *Provisioning) {
	c, ok, err := platform.LoadCredentials(p.CredentialsFile)
	if err != nil {
		o.Errorf("provisioning", "%v", err)
		return
	}
	if !ok || c.Security.Type != platform.SecurityX509Certificate {
		return
	}
	for _, f := range []string{c.Security.Cert, c.Security.PrivateKey} {
		if _, err := os.Stat(f); err != nil {
			o.Errorf("provisioning", "provisioned credentials %s need %s: %v (delete the credentials file to provision again)",
				p.CredentialsFile, f, unwrapPath(err))
		}
	}
}

// checkPEMCerts reports a file that cannot be read or holds no PEM
// certificate, which the platform connection would only find at run time.
func checkPEMCerts(o *spec.Obj, key, path string) {
	raw, err := os.ReadFile(path)
	if err != nil {
		o.Errorf(key, "cannot read %q: %v", path, unwrapPath(err))
		return
	}
	if !x509.NewCertPool().AppendCertsFromPEM(raw) {
		o.Errorf(key, "%q holds no PEM certificate", path)
	}
}

// checkSecurityFiles loads the security section's files the way the
// platform connection will, so a file that exists but is no certificate or
// key, or a certificate that does not match its key, fails `check` instead
// of every connection attempt.
func checkSecurityFiles(so *spec.Obj, s Security) {
	if s.CACert != "" {
		checkPEMCerts(so, "caCert", s.CACert)
	}
	readable := true
	for _, f := range []struct{ key, path string }{{"cert", s.Cert}, {"privateKey", s.PrivateKey}} {
		if f.path == "" {
			continue
		}
		if _, err := os.Stat(f.path); err != nil {
			so.Errorf(f.key, "cannot read %q: %v", f.path, unwrapPath(err))
			readable = false
		}
	}
	if (s.Cert == "") != (s.PrivateKey == "") && s.Type != "x509Certificate" {
		// The x509 type reports the missing one already; any other type
		// would still have the connection load the pair.
		so.Errorf("", "cert and privateKey go together: set both or neither")
		return
	}
	if readable && s.Cert != "" {
		if _, err := tls.LoadX509KeyPair(s.Cert, s.PrivateKey); err != nil {
			so.Errorf("cert", "%q with privateKey %q: %v", s.Cert, s.PrivateKey, err)
		}
	}
}
