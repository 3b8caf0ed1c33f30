package platform

import (
	"context"
	"crypto/tls"
	"errors"
	"path/filepath"
	"time"
)

// provisionThenConnect obtains the credentials (the stored file, or a
// provisioning exchange), then connects with them. Failures are logged as one
// line each and retried with backoff until pctx ends: a refused or
// unreachable provisioning never stops the gateway. ctx is Start's context,
// which the connection lives on.
func (c *Client) provisionThenConnect(pctx, ctx context.Context) {
	defer close(c.provDone)
	cfg, tc, err := c.obtainCredentials(pctx)
	if err != nil {
		return // closed or cancelled
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return
	}
	c.cfg, c.tls, c.url = cfg, tc, cfg.serverURL()
	if err := c.connectLocked(ctx); err != nil {
		c.setErr(err)
		c.log.Error().Err(err).Msg("cannot start the platform connection")
	}
}

// obtainCredentials retries credentialsOnce with backoff until it succeeds
// or ctx ends. It returns the configuration to connect with and its TLS.
func (c *Client) obtainCredentials(ctx context.Context) (Config, *tls.Config, error) {
	// A refusal usually needs an operator (wrong key, device already
	// provisioned), so the retries slow down further than reconnects.
	bo := newReconnector(c.cfg.ReconnectMin, max(c.cfg.ReconnectMax, 5*time.Minute))
	for {
		if d := bo.delay(0); d > 0 {
			t := time.NewTimer(d)
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
				return Config{}, nil, ctx.Err()
			}
		}
		cfg, tc, err := c.credentialsOnce(ctx)
		if err == nil {
			return cfg, tc, nil
		}
		if ctx.Err() != nil {
			return Config{}, nil, ctx.Err()
		}
		c.setErr(err)
		ev := c.log.Error().Str("platform", c.url.Host).Dur("retry_in", bo.nominal())
		var refused *ProvisionRefusedError
		if errors.As(err, &refused) {
			ev.Str("status", refused.Status).Str("platform_message", refused.Msg).
				Msg("gateway provisioning refused by the platform; check provisionDeviceKey/provisionDeviceSecret and the device profile")
			continue
		}
		ev.Err(err).Msg("gateway provisioning failed")
	}
}

// credentialsOnce loads the stored credentials, or provisions and stores
// them, and returns the configuration that uses them.
func (c *Client) credentialsOnce(ctx context.Context) (Config, *tls.Config, error) {
	p := *c.cfg.Provisioning
	creds, ok, err := LoadCredentials(p.CredentialsFile)
	if err != nil {
		return Config{}, nil, err
	}
	if ok {
		c.log.Info().Str("file", p.CredentialsFile).Msg("using the provisioned credentials")
	} else {
		c.log.Info().Str("platform", c.url.Host).Str("type", p.credType()).Msg("no stored credentials: provisioning the gateway")
		resp, err := Provision(ctx, ProvisionTarget{Host: c.cfg.Host, Port: c.cfg.Port, TLS: c.tls}, p)
		if err != nil {
			return Config{}, nil, err
		}
		if err := SaveCredentials(p.CredentialsFile, resp); err != nil {
			// The platform has registered these credentials and will
			// refuse a second provisioning, so they are used anyway.
			c.log.Error().Err(err).Msg("cannot store the provisioned credentials; they last until the gateway stops")
		}
		if creds, err = resp.credentials(filepath.Dir(p.CredentialsFile)); err != nil {
			return Config{}, nil, err
		}
		c.log.Info().Str("file", p.CredentialsFile).Str("type", resp.CredentialsType).Msg("gateway provisioned")
	}
	cfg := c.cfg
	cfg.Security = creds.Security
	cfg.ClientID = c.explicitID
	if cfg.ClientID == "" {
		// The platform checks the client id of MQTT basic credentials.
		cfg.ClientID = creds.ClientID
	}
	if cfg.ClientID == "" {
		cfg.ClientID = cfg.defaultClientID()
	}
	if err := cfg.Validate(); err != nil {
		return Config{}, nil, err
	}
	tc, err := cfg.tlsConfig()
	if err != nil {
		return Config{}, nil, err
	}
	return cfg, tc, nil
}
