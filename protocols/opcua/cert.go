package opcua

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/industryos/gateway/persistence/atomicfile"
)

// ErrCertificate is wrapped by client certificate load and generation errors.
var ErrCertificate = errors.New("client certificate")

// ClientCert is an application instance certificate and its key.
type ClientCert struct {
	DER       []byte
	Key       *rsa.PrivateKey
	CertFile  string
	KeyFile   string
	Generated bool // created by this call rather than loaded
}

// LoadClientCert reads a certificate (PEM or DER) and an RSA key (PEM
// PKCS#1/PKCS#8 or DER), the files of a certificate identity.
func LoadClientCert(certFile, keyFile string) (*ClientCert, error) {
	der, err := readCert(certFile)
	if err != nil {
		return nil, err
	}
	key, err := readKey(keyFile)
	if err != nil {
		return nil, err
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("%w %s: %v", ErrCertificate, certFile, err)
	}
	if pub, ok := c.PublicKey.(*rsa.PublicKey); !ok || !pub.Equal(&key.PublicKey) {
		return nil, fmt.Errorf("%w %s: does not belong to private key %s", ErrCertificate, certFile, keyFile)
	}
	return &ClientCert{DER: der, Key: key, CertFile: certFile, KeyFile: keyFile}, nil
}

func readCert(file string) ([]byte, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrCertificate, err)
	}
	if blk, _ := pem.Decode(b); blk != nil {
		if blk.Type != "CERTIFICATE" {
			return nil, fmt.Errorf("%w %s: PEM block is %q, want CERTIFICATE", ErrCertificate, file, blk.Type)
		}
		return blk.Bytes, nil
	}
	return b, nil
}

func readKey(file string) (*rsa.PrivateKey, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrCertificate, err)
	}
	der := b
	if blk, _ := pem.Decode(b); blk != nil {
		der = blk.Bytes
	}
	if k, err := x509.ParsePKCS1PrivateKey(der); err == nil {
		return k, nil
	}
	k, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return nil, fmt.Errorf("%w %s: not an RSA private key (PKCS#1 or PKCS#8, PEM or DER)", ErrCertificate, file)
	}
	rk, ok := k.(*rsa.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("%w %s: key is %T, OPC-UA security policies need RSA", ErrCertificate, file, k)
	}
	return rk, nil
}

// certBase names the generated files after the application URI, so two
// connectors with different URIs in one directory never share a cert.
func certBase(appURI string) string {
	sum := sha256.Sum256([]byte(appURI))
	return "opcua-client-" + hex.EncodeToString(sum[:4])
}

// EnsureClientCert returns the generated certificate kept in dir for
// appURI, creating it on first use: a self-signed RSA-2048 certificate whose
// SAN carries the ApplicationURI (servers check it against the session's
// ApplicationURI) and the host name. Reusing it across restarts matters:
// servers trust a client certificate once, by its thumbprint.
func EnsureClientCert(dir, appURI string) (*ClientCert, error) {
	base := filepath.Join(dir, certBase(appURI))
	certFile, keyFile := base+".crt.pem", base+".key.pem"
	if c, err := LoadClientCert(certFile, keyFile); err == nil {
		if x, perr := x509.ParseCertificate(c.DER); perr == nil && hasURI(x, appURI) && time.Now().Before(x.NotAfter) {
			return c, nil
		}
	} else if _, statErr := os.Stat(certFile); statErr == nil {
		// A present but unreadable pair is a problem to report, not to
		// overwrite silently: the operator may have put it there.
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("%w: create directory: %v", ErrCertificate, err)
	}
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, fmt.Errorf("%w: generate RSA key: %v", ErrCertificate, err)
	}
	der, err := selfSigned(key, appURI)
	if err != nil {
		return nil, err
	}
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)})
	if err := atomicfile.Write(keyFile, keyPEM, 0o600); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrCertificate, err)
	}
	if err := atomicfile.Write(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrCertificate, err)
	}
	return &ClientCert{DER: der, Key: key, CertFile: certFile, KeyFile: keyFile, Generated: true}, nil
}

func hasURI(c *x509.Certificate, appURI string) bool {
	for _, u := range c.URIs {
		if u.String() == appURI {
			return true
		}
	}
	return false
}

func selfSigned(key *rsa.PrivateKey, appURI string) ([]byte, error) {
	u, err := url.Parse(appURI)
	if err != nil || u.Scheme == "" {
		return nil, fmt.Errorf("%w: application uri %q is not a URI", ErrCertificate, appURI)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, fmt.Errorf("%w: serial: %v", ErrCertificate, err)
	}
	host, _ := os.Hostname()
	dns := []string{"localhost"}
	if host != "" && host != "localhost" {
		dns = append(dns, host)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject: pkix.Name{
			CommonName:   "IndustryOS gateway OPC-UA client",
			Organization: []string{"IndustryOS"},
		},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.AddDate(10, 0, 0),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageContentCommitment | x509.KeyUsageKeyEncipherment | x509.KeyUsageDataEncipherment | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth, x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		URIs:                  []*url.URL{u},
		DNSNames:              dns,
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("%w: create certificate: %v", ErrCertificate, err)
	}
	return der, nil
}

// trimScheme is the URL without "opc.tcp://" for log fields.
func trimScheme(u string) string { return strings.TrimPrefix(u, "opc.tcp://") }
