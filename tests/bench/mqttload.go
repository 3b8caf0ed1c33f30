package main

import (
	"context"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/eclipse/paho.golang/autopaho"
	"github.com/eclipse/paho.golang/paho"
)

// mqttConnectorConfig maps sensor/<name>/data JSON messages to devices, as a
// plant broker full of device topics would be configured: every value key
// named, the message's "ts" as the timestamp.
func mqttConnectorConfig(port, values int) []byte {
	keys := make([]string, values)
	for v := range values {
		keys[v] = fmt.Sprintf(`{"type": "double", "key": "v%d", "value": "${v%d}"}`, v, v)
	}
	return fmt.Appendf(nil, `{
  "broker": {"host": "127.0.0.1", "port": %d, "clientId": "iotgw-bench", "version": 5, "security": {"type": "anonymous"}},
  "mapping": [{
    "topicFilter": "sensor/+/data", "subscriptionQos": 1,
    "converter": {
      "type": "json",
      "deviceInfo": {"deviceNameExpressionSource": "topic", "deviceNameExpression": "sensor/([^/]+)/data",
                     "deviceProfileExpressionSource": "constant", "deviceProfileExpression": "BenchSensor"},
      "timeseries": [%s]
    }
  }]
}`, port, strings.Join(keys, ", "))
}

// mqttLoad publishes 10-value JSON messages at a fixed rate with QoS 1 from
// several publishers, each paced in 10 ms slices.
type mqttLoad struct {
	port, devices, values, rate int
	sent                        atomic.Uint64
}

const mqttPublishers = 8

func (l *mqttLoad) start(ctx context.Context) error {
	u, _ := url.Parse(fmt.Sprintf("mqtt://127.0.0.1:%d", l.port))
	for p := range mqttPublishers {
		cm, err := autopaho.NewConnection(ctx, autopaho.ClientConfig{
			ServerUrls: []*url.URL{u}, KeepAlive: 30,
			ClientConfig: paho.ClientConfig{ClientID: "bench-pub-" + strconv.Itoa(p)},
		})
		if err != nil {
			return err
		}
		if err := cm.AwaitConnection(ctx); err != nil {
			return err
		}
		go l.publish(ctx, cm, p)
	}
	return nil
}

func (l *mqttLoad) publish(ctx context.Context, cm *autopaho.ConnectionManager, p int) {
	perSlice := max(1, l.rate/mqttPublishers/100)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	// Enough concurrent QoS 1 publishes per client to keep the link busy;
	// each Publish blocks until its PUBACK.
	sem := make(chan struct{}, 256)
	n := 0
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		for range perSlice {
			dev := (p + n*mqttPublishers) % l.devices
			n++
			payload := fmt.Appendf(nil, `{"ts":%d`, time.Now().UnixMilli())
			for v := range l.values {
				payload = fmt.Appendf(payload, `,"v%d":%d.5`, v, n+v)
			}
			payload = append(payload, '}')
			sem <- struct{}{}
			go func() {
				defer func() { <-sem }()
				if _, err := cm.Publish(ctx, &paho.Publish{Topic: "sensor/d" + strconv.Itoa(dev) + "/data", QoS: 1, Payload: payload}); err == nil {
					l.sent.Add(1)
				}
			}()
		}
	}
}
