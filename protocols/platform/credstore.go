package platform

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"time"

	"github.com/industryos/gateway/persistence/atomicfile"
)

// CredentialsFileName is upstream's name for the provisioned credentials,
// kept next to the main config file, so a gateway provisioned by upstream
// keeps its identity when it is replaced by this one (and back).
const CredentialsFileName = ".credentials"

// LoadCredentials reads a credentials file written by SaveCredentials (or
// by upstream). ok is false when the file does not exist; a file that
// exists but cannot be used is an error naming it.
func LoadCredentials(path string) (c Credentials, ok bool, err error) {
	raw, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return c, false, nil
	}
	if err != nil {
		return c, false, fmt.Errorf("provisioned credentials %s: %w", path, err)
	}
	var r ProvisionResponse
	if err := json.Unmarshal(raw, &r); err != nil {
		return c, false, fmt.Errorf("provisioned credentials %s: not JSON: %w (delete it to provision again)", path, err)
	}
	c, err = r.credentials(filepath.Dir(path))
	if err != nil {
		return c, false, fmt.Errorf("provisioned credentials %s: %w (delete it to provision again)", path, err)
	}
	return c, true, nil
}

// SaveCredentials writes the platform's answer atomically (temp file, fsync,
// rename, directory fsync) with mode 0600: a crash leaves the old file or the
// new one, never half of one, and only the gateway's user can read the secret.
func SaveCredentials(path string, r ProvisionResponse) error {
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	return atomicfile.Write(path, b, 0o600)
}

// generateIdentity creates the key pair and self-signed certificate X.509
// provisioning registers with the platform (upstream: EC P-256, one year),
// writes both as PEM and returns the certificate's PEM.
func generateIdentity(certPath, keyPath, name string) ([]byte, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("x509 provisioning: generate key: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, fmt.Errorf("x509 provisioning: serial: %w", err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: name},
		NotBefore:    now.Add(-24 * time.Hour),
		NotAfter:     now.Add(365 * 24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("x509 provisioning: certificate: %w", err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("x509 provisioning: key: %w", err)
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	if err := atomicfile.Write(keyPath, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		return nil, fmt.Errorf("x509 provisioning: %w", err)
	}
	if err := atomicfile.Write(certPath, certPEM, 0o644); err != nil {
		return nil, fmt.Errorf("x509 provisioning: %w", err)
	}
	return certPEM, nil
}
