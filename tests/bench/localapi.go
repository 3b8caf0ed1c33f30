package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	paho3 "github.com/eclipse/paho.mqtt.golang"
)

// localAPILoad is the localapi profile's devices: each its own MQTT 3.1.1
// connection to the gateway's local device API, publishing one message of
// `values` values with its timestamp every period at QoS 1 (the PUBACK
// comes after the gateway's journal commit).
type localAPILoad struct {
	port, devices, values int
	period                time.Duration
	http                  bool          // POST /api/v1/{token}/telemetry instead of MQTT
	sent                  atomic.Uint64 // PUBACKed (or answered 200) by the gateway
	failed                atomic.Uint64
}

// localAPISection is the main file's localApi section for the devices.
func (l *localAPILoad) section() string {
	devs := make([]string, l.devices)
	for i := range devs {
		devs[i] = fmt.Sprintf(`{"name": "local-%d", "profile": "BenchSensor", "accessToken": "T%d"}`, i, i)
	}
	transport := "mqtt"
	if l.http {
		transport = "http"
	}
	return fmt.Sprintf(`{%q: {"enabled": true, "address": "127.0.0.1:%d"}, "maxPayloadBytes": 65536, "devices": [%s]}`, transport, l.port, strings.Join(devs, ", "))
}

// start connects every device (retrying until the gateway listens) and
// starts its publishing, spread over one period.
func (l *localAPILoad) start(ctx context.Context) error {
	if l.http {
		return l.startHTTP(ctx)
	}
	deadline := time.Now().Add(30 * time.Second)
	for i := range l.devices {
		o := paho3.NewClientOptions().AddBroker(fmt.Sprintf("tcp://127.0.0.1:%d", l.port)).SetClientID("local-" + strconv.Itoa(i)).
			SetUsername("T" + strconv.Itoa(i)).SetProtocolVersion(4).SetAutoReconnect(false).SetCleanSession(true).SetKeepAlive(60 * time.Second)
		c := paho3.NewClient(o)
		for {
			tok := c.Connect()
			if tok.WaitTimeout(10*time.Second) && tok.Error() == nil {
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("device %d: connect: %v", i, tok.Error())
			}
			time.Sleep(100 * time.Millisecond)
		}
		go l.publish(ctx, c, i)
	}
	return nil
}

// payload is one message: n's values with the current time, or one
// millisecond after the last message's when that is not later: two
// messages of a device with the same timestamp and keys are one point to
// the platform, and the count at the platform would miss values.
func (l *localAPILoad) payload(b *strings.Builder, n int, last *int64) string {
	ts := max(time.Now().UnixMilli(), *last+1)
	*last = ts
	b.Reset()
	fmt.Fprintf(b, `{"ts":%d,"values":{`, ts)
	for v := range l.values {
		if v > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(b, `"v%d":%d.%d`, v, n, v)
	}
	b.WriteString("}}")
	return b.String()
}

// flood publishes as fast as the gateway acknowledges, with up to 256
// messages in flight on the connection (period 0: the peak profile). Its
// timestamps run ahead of the clock, so its latency figures mean nothing.
func (l *localAPILoad) flood(ctx context.Context, c paho3.Client) {
	defer c.Disconnect(0)
	sem := make(chan struct{}, 256)
	var b strings.Builder
	var last int64
	for n := 0; ctx.Err() == nil; n++ {
		sem <- struct{}{}
		tok := c.Publish("v1/devices/me/telemetry", 1, false, l.payload(&b, n, &last))
		go func() {
			defer func() { <-sem }()
			if tok.WaitTimeout(30*time.Second) && tok.Error() == nil {
				l.sent.Add(1)
			} else {
				l.failed.Add(1)
			}
		}()
	}
}

func (l *localAPILoad) publish(ctx context.Context, c paho3.Client, dev int) {
	if l.period == 0 {
		l.flood(ctx, c)
		return
	}
	defer c.Disconnect(0)
	// Spread the devices over the period, as real devices drift apart.
	select {
	case <-ctx.Done():
		return
	case <-time.After(time.Duration(dev) * l.period / time.Duration(l.devices)):
	}
	t := time.NewTicker(l.period)
	defer t.Stop()
	var b strings.Builder
	var last int64
	for n := 0; ; n++ {
		tok := c.Publish("v1/devices/me/telemetry", 1, false, l.payload(&b, n, &last))
		if tok.WaitTimeout(30*time.Second) && tok.Error() == nil {
			l.sent.Add(1)
		} else {
			l.failed.Add(1)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// startHTTP waits for the HTTP listener and starts one keep-alive client
// per device, each POSTing as soon as its previous POST got its 200.
func (l *localAPILoad) startHTTP(ctx context.Context) error {
	deadline := time.Now().Add(30 * time.Second)
	url := fmt.Sprintf("http://127.0.0.1:%d/api/v1/T0/telemetry", l.port)
	for {
		resp, err := http.Post(url, "application/json", strings.NewReader(`{"warmup":1}`))
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("local api http: %w", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	for i := range l.devices {
		go l.post(ctx, i)
	}
	return nil
}

func (l *localAPILoad) post(ctx context.Context, dev int) {
	c := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1}, Timeout: 30 * time.Second}
	defer c.CloseIdleConnections()
	url := fmt.Sprintf("http://127.0.0.1:%d/api/v1/T%d/telemetry", l.port, dev)
	var b strings.Builder
	var last int64
	for n := 0; ctx.Err() == nil; n++ {
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, url, strings.NewReader(l.payload(&b, n, &last)))
		req.Header.Set("Content-Type", "application/json")
		resp, err := c.Do(req)
		if err != nil {
			l.failed.Add(1)
			continue
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			l.sent.Add(1)
		} else {
			l.failed.Add(1)
		}
	}
}
