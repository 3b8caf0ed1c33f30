package localapi

import (
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"encoding/pem"
	"os"
	"os/exec"
	"strings"
	"testing"

	paho3 "github.com/eclipse/paho.mqtt.golang"

	"github.com/industryos/gateway/protocols/kit/testpeer"
)

func fingerprint(t *testing.T, certFile string) string {
	t.Helper()
	raw, err := os.ReadFile(certFile)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := pem.Decode(raw)
	sum := sha256.Sum256(b.Bytes)
	return strings.ToUpper(hex.EncodeToString(sum[:])) // as tools print it; case does not matter
}

func connectTLS(t *testing.T, addr string, cfg *tls.Config, user string) (paho3.Client, error) {
	t.Helper()
	o := paho3.NewClientOptions().AddBroker("ssl://" + addr).SetClientID("x509").SetUsername(user).
		SetProtocolVersion(4).SetAutoReconnect(false).SetTLSConfig(cfg)
	c := paho3.NewClient(o)
	tok := c.Connect()
	if !tok.WaitTimeout(wait) {
		t.Fatal("connect timed out")
	}
	if err := tok.Error(); err != nil {
		return nil, err
	}
	t.Cleanup(func() { c.Disconnect(0) })
	return c, nil
}

// TestTLSAndX509: MQTT over TLS authenticates a device by its client
// certificate's fingerprint and refuses an unknown certificate; HTTPS
// serves the same API (curl verifying the server against its CA).
func TestTLSAndX509(t *testing.T) {
	files := testpeer.GenerateTLS(t, "127.0.0.1")
	other := testpeer.GenerateTLS(t, "127.0.0.1")
	tlsKeys := map[string]any{"enabled": true, "address": "127.0.0.1:0", "certificate": files.ServerCert, "privateKey": files.ServerKey}
	httpKeys := map[string]any{"enabled": true, "address": "127.0.0.1:0", "certificate": files.ServerCert, "privateKey": files.ServerKey}
	c, rec := startAPI(t, map[string]any{"mqtt": tlsKeys, "http": httpKeys, "devices": []any{
		map[string]any{"name": "Meter X", "profile": "meter", "certificateFingerprint": fingerprint(t, files.ClientCert)},
		map[string]any{"name": "Sensor A", "accessToken": "TOKEN_A"},
	}})
	client := func(f testpeer.TLSFiles) *tls.Config {
		cert, err := tls.LoadX509KeyPair(f.ClientCert, f.ClientKey)
		if err != nil {
			t.Fatal(err)
		}
		return &tls.Config{RootCAs: files.CAPool, Certificates: []tls.Certificate{cert}, ServerName: "127.0.0.1"}
	}
	dev, err := connectTLS(t, c.Addr("mqtt"), client(files), "")
	if err != nil {
		t.Fatalf("known certificate: %v", err)
	}
	if tok := dev.Publish("v1/devices/me/telemetry", 1, false, `{"kwh":12}`); !tok.WaitTimeout(wait) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	waitValues(t, rec, "Meter X", "kwh", "12")
	if _, err := connectTLS(t, c.Addr("mqtt"), client(other), ""); err == nil {
		t.Error("unknown certificate accepted")
	}
	rec.Wait(t, wait, "the refusal", func() bool { return len(rec.RefusedReports()) == 1 })

	curl := testpeer.NeedProgram(t, "curl", "curl")
	out, err := exec.Command(curl, "-sS", "--cacert", files.CACert, "-w", "%{http_code}", "-X", "POST", "-d", `{"t":1}`,
		"https://"+c.Addr("http")+"/api/v1/TOKEN_A/telemetry").CombinedOutput()
	if err != nil || string(out) != "200" {
		t.Fatalf("https: %v %s", err, out)
	}
	waitValues(t, rec, "Sensor A", "t", "1")
}
