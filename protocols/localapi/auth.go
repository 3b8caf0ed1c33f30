package localapi

import (
	"crypto/sha256"
	"crypto/subtle"
	"crypto/x509"
	"encoding/hex"
	"errors"
)

// ErrUnknownCredentials is a device the localApi section does not list.
var ErrUnknownCredentials = errors.New("unknown credentials")

// authenticator maps credentials to configured devices.
type authenticator struct {
	tokens map[string]*Device
	prints map[string]*Device
	basic  []*Device
}

func newAuthenticator(devices []*Device) *authenticator {
	a := &authenticator{tokens: map[string]*Device{}, prints: map[string]*Device{}}
	for _, d := range devices {
		switch {
		case d.AccessToken != "":
			a.tokens[d.AccessToken] = d
		case d.Fingerprint != "":
			a.prints[d.Fingerprint] = d
		default:
			a.basic = append(a.basic, d)
		}
	}
	return a
}

// token finds the device of an access token (HTTP, CoAP).
func (a *authenticator) token(tok string) (*Device, error) {
	if d := a.tokens[tok]; d != nil {
		return d, nil
	}
	return nil, ErrUnknownCredentials
}

// mqtt authenticates an MQTT CONNECT as the platform does: an X.509 client
// certificate by its fingerprint first, then basic credentials (clientId,
// username, password), then the username as an access token.
func (a *authenticator) mqtt(clientID, username string, password []byte, peer *x509.Certificate) (*Device, error) {
	if peer != nil {
		sum := sha256.Sum256(peer.Raw)
		if d := a.prints[hex.EncodeToString(sum[:])]; d != nil {
			return d, nil
		}
	}
	for _, d := range a.basic {
		if d.ClientID != "" && d.ClientID != clientID {
			continue
		}
		if d.Username != "" && d.Username != username {
			continue
		}
		if d.Password != "" && subtle.ConstantTimeCompare([]byte(d.Password), password) != 1 {
			continue
		}
		return d, nil
	}
	if username != "" {
		if d := a.tokens[username]; d != nil {
			return d, nil
		}
	}
	return nil, ErrUnknownCredentials
}
