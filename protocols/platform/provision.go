package platform

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/eclipse/paho.golang/paho"
)

// Device provisioning (COMPAT §1.2 and §2.1): a gateway without credentials
// connects once as the user "provision", asks for credentials on
// /provision/request and gets them on /provision/response.
const (
	TopicProvisionRequest  = "/provision/request"
	TopicProvisionResponse = "/provision/response"
	// ProvisionUsername is the MQTT username of the provisioning connection.
	ProvisionUsername = "provision"
)

// Provisioning credential types, as the platform names them.
const (
	ProvisionAccessToken = "ACCESS_TOKEN"
	ProvisionMQTTBasic   = "MQTT_BASIC"
	ProvisionX509        = "X509_CERTIFICATE"
)

// ProvisionTypes lists the credential types the gateway can ask for.
var ProvisionTypes = []string{ProvisionAccessToken, ProvisionMQTTBasic, ProvisionX509}

// DefaultProvisionTimeout bounds one provisioning exchange, as upstream's 60 s.
const DefaultProvisionTimeout = 60 * time.Second

// ErrProvisionTimeout means the platform did not answer the request in time.
var ErrProvisionTimeout = errors.New("platform: no provisioning response")

// ProvisionRefusedError is a provisioning response other than SUCCESS: the
// platform saw the request and said no (wrong key or secret, device exists).
type ProvisionRefusedError struct {
	Status string
	Msg    string // the platform's errorMsg
}

func (e *ProvisionRefusedError) Error() string {
	msg := e.Msg
	if msg == "" {
		msg = "no error message"
	}
	return fmt.Sprintf("platform refused provisioning (status %s): %s", e.Status, msg)
}

// Provisioning asks the platform for the gateway's credentials when the
// configuration has none (thingsboard.provisioning).
type Provisioning struct {
	// DeviceName is the gateway device's name on the platform; empty: "Gateway <hostname>".
	DeviceName string
	Key        string // provisionDeviceKey
	Secret     string // provisionDeviceSecret
	// Type is one of the Provision* constants; empty means ACCESS_TOKEN.
	Type string
	// AccessToken, ClientID, Username and Password are the credentials the
	// gateway proposes; the ones left empty are generated, as upstream does.
	AccessToken string
	ClientID    string
	Username    string
	Password    string
	// CACert is the platform's CA file, for the provisioning connection and
	// the connections with the received credentials.
	CACert string
	// CredentialsFile is where the received credentials are kept (upstream:
	// ".credentials" next to the main config file). X.509 provisioning keeps
	// its generated cert.pem and key.pem in the same directory.
	CredentialsFile string
	// Timeout bounds one exchange; default DefaultProvisionTimeout.
	Timeout time.Duration
}

func (p Provisioning) credType() string {
	if p.Type == "" {
		return ProvisionAccessToken
	}
	return strings.ToUpper(p.Type)
}

// Validate checks the settings; no I/O.
func (p Provisioning) Validate() error {
	var errs []error
	if p.Key == "" {
		errs = append(errs, errors.New("provisioning: provisionDeviceKey is required"))
	}
	if p.Secret == "" {
		errs = append(errs, errors.New("provisioning: provisionDeviceSecret is required"))
	}
	switch p.credType() {
	case ProvisionAccessToken, ProvisionMQTTBasic, ProvisionX509:
	default:
		errs = append(errs, fmt.Errorf("provisioning: unknown type %q (want one of: %s)", p.Type, strings.Join(ProvisionTypes, ", ")))
	}
	if p.CredentialsFile == "" {
		errs = append(errs, errors.New("provisioning: no credentials file"))
	}
	return errors.Join(errs...)
}

// provisionRequest is the payload on /provision/request.
type provisionRequest struct {
	DeviceName      string `json:"deviceName,omitempty"`
	Key             string `json:"provisionDeviceKey"`
	Secret          string `json:"provisionDeviceSecret"`
	CredentialsType string `json:"credentialsType"`
	Token           string `json:"token,omitempty"`
	ClientID        string `json:"clientId,omitempty"`
	Username        string `json:"username,omitempty"`
	Password        string `json:"password,omitempty"`
	Hash            string `json:"hash,omitempty"` // the PEM certificate for X509_CERTIFICATE
	Gateway         bool   `json:"gateway"`
}

// ProvisionResponse is the platform's answer, and the content of the
// credentials file (upstream writes the answer as it came, plus caCert).
type ProvisionResponse struct {
	Status          string `json:"status"`
	CredentialsType string `json:"credentialsType,omitempty"`
	// CredentialsValue is a string (the token, the certificate) or, for
	// MQTT_BASIC, {"clientId","userName","password"}.
	CredentialsValue json.RawMessage `json:"credentialsValue,omitempty"`
	ErrorMsg         string          `json:"errorMsg,omitempty"`
	CACert           string          `json:"caCert,omitempty"`
}

type basicValue struct {
	ClientID string `json:"clientId"`
	UserName string `json:"userName"`
	Password string `json:"password"`
}

// Credentials are what the gateway connects with after provisioning.
type Credentials struct {
	Security Security
	ClientID string // MQTT client id the platform expects (MQTT_BASIC), or empty
}

// credentials turns a successful response into connection settings. dir
// holds the X.509 files.
func (r ProvisionResponse) credentials(dir string) (Credentials, error) {
	var cr Credentials
	switch r.CredentialsType {
	case ProvisionAccessToken:
		var tok string
		if err := json.Unmarshal(r.CredentialsValue, &tok); err != nil || tok == "" {
			return cr, errors.New("ACCESS_TOKEN credentialsValue is not a non-empty string")
		}
		cr.Security = Security{Type: SecurityAccessToken, AccessToken: tok, CACert: r.CACert}
	case ProvisionMQTTBasic:
		var v basicValue
		if err := json.Unmarshal(r.CredentialsValue, &v); err != nil {
			return cr, fmt.Errorf("MQTT_BASIC credentialsValue: %w", err)
		}
		if v.UserName == "" && v.ClientID == "" {
			return cr, errors.New("MQTT_BASIC credentialsValue has neither userName nor clientId")
		}
		cr.Security = Security{Type: SecurityUsernamePassword, Username: v.UserName, Password: v.Password, CACert: r.CACert}
		cr.ClientID = v.ClientID
	case ProvisionX509:
		cr.Security = Security{Type: SecurityX509Certificate, CACert: r.CACert,
			Cert: filepath.Join(dir, x509CertFile), PrivateKey: filepath.Join(dir, x509KeyFile)}
	default:
		return cr, fmt.Errorf("unknown credentialsType %q", r.CredentialsType)
	}
	return cr, nil
}

// The generated X.509 identity's file names, as upstream's.
const (
	x509CertFile = "cert.pem"
	x509KeyFile  = "key.pem"
)

// buildRequest fills in what the configuration leaves open. For X.509 it
// generates the key pair (files in dir) whose certificate the platform is
// asked to register.
func (p Provisioning) buildRequest() (provisionRequest, error) {
	req := provisionRequest{DeviceName: p.DeviceName, Key: p.Key, Secret: p.Secret,
		CredentialsType: p.credType(), Gateway: true}
	if req.DeviceName == "" {
		host, _ := os.Hostname()
		if host == "" {
			host = randomString(5)
		}
		req.DeviceName = "Gateway " + host
	}
	switch req.CredentialsType {
	case ProvisionAccessToken:
		req.Token = orRandom(p.AccessToken)
	case ProvisionMQTTBasic:
		req.ClientID, req.Username, req.Password = orRandom(p.ClientID), orRandom(p.Username), orRandom(p.Password)
	case ProvisionX509:
		dir := filepath.Dir(p.CredentialsFile)
		pem, err := generateIdentity(filepath.Join(dir, x509CertFile), filepath.Join(dir, x509KeyFile), req.DeviceName)
		if err != nil {
			return req, err
		}
		req.Hash = string(pem)
	}
	return req, nil
}

func orRandom(s string) string {
	if s != "" {
		return s
	}
	return randomString(20)
}

// randomString is for generated credentials, so it comes from crypto/rand.
func randomString(n int) string {
	const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
	b := make([]byte, n)
	_, _ = rand.Read(b)
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return string(b)
}

// ProvisionTarget is where the provisioning connection goes.
type ProvisionTarget struct {
	Host string
	Port int
	// TLS, when set, wraps the connection (the platform's TLS port).
	TLS *tls.Config
}

// Provision runs one exchange: connect as "provision", subscribe to the
// response topic, publish the request, wait for the answer. It returns the
// platform's answer on SUCCESS, a *ProvisionRefusedError for any other
// status, ErrProvisionTimeout when the platform stays silent, or the
// connection's error.
func Provision(ctx context.Context, t ProvisionTarget, p Provisioning) (ProvisionResponse, error) {
	timeout := p.Timeout
	if timeout <= 0 {
		timeout = DefaultProvisionTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := p.buildRequest()
	if err != nil {
		return ProvisionResponse{}, err
	}
	body, err := json.Marshal(req)
	if err != nil {
		return ProvisionResponse{}, err
	}
	raw, err := exchange(ctx, t, body)
	if err != nil {
		return ProvisionResponse{}, err
	}
	var resp ProvisionResponse
	if err := json.Unmarshal(raw, &resp); err != nil {
		return resp, fmt.Errorf("platform: provisioning response is not JSON: %w", err)
	}
	if resp.Status != "SUCCESS" {
		return resp, &ProvisionRefusedError{Status: resp.Status, Msg: resp.ErrorMsg}
	}
	if resp.CredentialsType == "" {
		resp.CredentialsType = req.CredentialsType
	}
	if _, err := resp.credentials(filepath.Dir(p.CredentialsFile)); err != nil {
		return resp, fmt.Errorf("platform: provisioning response: %w", err)
	}
	if p.CACert != "" {
		resp.CACert = p.CACert
	}
	return resp, nil
}

// exchange is the MQTT part of Provision; it returns the response payload.
func exchange(ctx context.Context, t ProvisionTarget, request []byte) ([]byte, error) {
	addr := net.JoinHostPort(t.Host, strconv.Itoa(t.Port))
	var conn net.Conn
	var err error
	if t.TLS != nil {
		conn, err = (&tls.Dialer{Config: t.TLS}).DialContext(ctx, "tcp", addr)
	} else {
		conn, err = (&net.Dialer{}).DialContext(ctx, "tcp", addr)
	}
	if err != nil {
		return nil, fmt.Errorf("platform: provisioning: %w", err)
	}
	answer := make(chan []byte, 1)
	cli := paho.NewClient(paho.ClientConfig{
		Conn: conn,
		OnPublishReceived: []func(paho.PublishReceived) (bool, error){func(pr paho.PublishReceived) (bool, error) {
			if pr.Packet.Topic == TopicProvisionResponse {
				select {
				case answer <- pr.Packet.Payload:
				default:
				}
			}
			return true, nil
		}},
	})
	defer func() {
		_ = cli.Disconnect(&paho.Disconnect{ReasonCode: 0})
		_ = conn.Close()
	}()
	ca, err := cli.Connect(ctx, &paho.Connect{
		ClientID:     "tbgw-provision-" + randomString(8),
		CleanStart:   true,
		KeepAlive:    60,
		Username:     ProvisionUsername,
		UsernameFlag: true,
	})
	if err != nil {
		if ca != nil {
			return nil, fmt.Errorf("platform: provisioning connection refused (reason 0x%02x)", ca.ReasonCode)
		}
		return nil, fmt.Errorf("platform: provisioning connect: %w", err)
	}
	if _, err := cli.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: TopicProvisionResponse, QoS: 1}}}); err != nil {
		return nil, fmt.Errorf("platform: provisioning subscribe: %w", err)
	}
	// The answer may come before the PUBACK, or instead of it when the
	// platform closes the connection right after answering, so the publish
	// is not waited for on its own.
	published := make(chan error, 1)
	go func() {
		_, err := cli.Publish(ctx, &paho.Publish{Topic: TopicProvisionRequest, QoS: 1, Payload: request})
		published <- err
	}()
	lateAnswer := func(err error) ([]byte, error) {
		select {
		case b := <-answer:
			return b, nil
		default:
			return nil, err
		}
	}
	for {
		select {
		case b := <-answer:
			return b, nil
		case err := <-published:
			published = nil
			if err != nil && ctx.Err() == nil {
				return lateAnswer(fmt.Errorf("platform: provisioning request: %w", err))
			}
		case <-cli.Done():
			return lateAnswer(errors.New("platform: provisioning connection closed before the answer"))
		case <-ctx.Done():
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return lateAnswer(ErrProvisionTimeout)
			}
			return nil, ctx.Err()
		}
	}
}

// String describes the settings with the secrets masked.
func (p Provisioning) String() string {
	return fmt.Sprintf("type=%s deviceName=%q provisionDeviceKey=%s provisionDeviceSecret=%s accessToken=%s clientId=%s username=%s password=%s caCert=%s credentialsFile=%s",
		p.credType(), p.DeviceName, mask(p.Key), mask(p.Secret), mask(p.AccessToken), p.ClientID, p.Username, mask(p.Password), p.CACert, p.CredentialsFile)
}

// GoString keeps %#v from bypassing String and printing the secrets.
func (p Provisioning) GoString() string { return "platform.Provisioning{" + p.String() + "}" }
