package main

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/eclipse/paho.golang/autopaho"
	"github.com/eclipse/paho.golang/paho"

	"github.com/industryos/gateway/actors/observe"
	"github.com/industryos/gateway/protocols/kit/testpeer"
)

// mqttConnectorConfig maps sensor/<name>/data JSON messages to devices, as a
// plant broker full of device topics would be configured: every value key
// named, the message's "ts" as the timestamp.
func mqttConnectorConfig(port, values int, persistent bool) []byte {
	session := `"cleanStart": true`
	if persistent {
		// The broker keeps the gateway's subscription and queues for it
		// while it is offline.
		session = `"cleanStart": false, "sessionExpiryInterval": 3600`
	}
	keys := make([]string, values)
	for v := range values {
		keys[v] = fmt.Sprintf(`{"type": "double", "key": "v%d", "value": "${v%d}"}`, v, v)
	}
	return fmt.Appendf(nil, `{
  "broker": {"host": "127.0.0.1", "port": %d, "clientId": "iotgw-bench", "version": 5, %s, "security": {"type": "anonymous"}},
  "mapping": [{
    "topicFilter": "sensor/+/data", "subscriptionQos": 1,
    "converter": {
      "type": "json",
      "deviceInfo": {"deviceNameExpressionSource": "topic", "deviceNameExpression": "sensor/([^/]+)/data",
                     "deviceProfileExpressionSource": "constant", "deviceProfileExpression": "BenchSensor"},
      "timeseries": [%s]
    }
  }]
}`, port, session, strings.Join(keys, ", "))
}

// mqttLoad publishes 10-value JSON messages at a fixed rate with QoS 1 from
// several publishers, each paced in 10 ms slices.
type mqttLoad struct {
	port, devices, values, rate int
	brokerPid                   int // the device broker's mosquitto
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
			payload := testpeer.SensorMessage(time.Now().UnixMilli(), n, l.values)
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

// publishN publishes n messages with QoS 1 as fast as the broker takes them.
func (l *mqttLoad) publishN(ctx context.Context, n int) error {
	u, _ := url.Parse(fmt.Sprintf("mqtt://127.0.0.1:%d", l.port))
	cm, err := autopaho.NewConnection(ctx, autopaho.ClientConfig{
		ServerUrls: []*url.URL{u}, KeepAlive: 30, ClientConfig: paho.ClientConfig{ClientID: "bench-backlog"},
	})
	if err != nil {
		return err
	}
	defer func() { _ = cm.Disconnect(context.Background()) }()
	if err := cm.AwaitConnection(ctx); err != nil {
		return err
	}
	if err := testpeer.PublishSensors(n, l.devices, l.values, func(topic string, payload []byte) error {
		_, err := cm.Publish(ctx, &paho.Publish{Topic: topic, QoS: 1, Payload: payload})
		if err == nil {
			l.sent.Add(1)
		}
		return err
	}); err != nil {
		return fmt.Errorf("backlog: %w", err)
	}
	if got := l.sent.Load(); got != uint64(n) {
		return fmt.Errorf("backlog: the broker took %d of %d messages", got, n)
	}
	return nil
}

// drain runs the gateway once so the broker learns its persistent session,
// stops it, queues the backlog for it, and times the second run from start
// until every value arrived at the platform broker.
func drain(ctx context.Context, gw *exec.Cmd, platformPid int, load *mqttLoad, st *stats, name, storage string) error {
	first := exec.Command(gw.Path, gw.Args[1:]...)
	first.Stderr, first.Env = os.Stderr, gw.Env
	if err := first.Start(); err != nil {
		return err
	}
	time.Sleep(3 * time.Second) // connect and subscribe
	_ = first.Process.Signal(syscall.SIGTERM)
	_ = first.Wait()
	fmt.Printf("== %s: drain %d queued messages of %d values from %d devices (QoS 1, persistent session), storage %s\n", name, mqttBacklog, load.values, load.devices, storage)
	pubStart := time.Now()
	if err := load.publishN(ctx, mqttBacklog); err != nil {
		return err
	}
	fmt.Printf("queued       %d messages in %s\n", mqttBacklog, time.Since(pubStart).Round(time.Millisecond))
	st.mu.Lock()
	st.counting = true
	st.mu.Unlock()
	want := uint64(mqttBacklog * load.values)
	start := time.Now()
	machine := observe.NewCPUSampler()
	self0, broker0, platform0 := observe.ProcessCPU(0), observe.ProcessCPU(load.brokerPid), observe.ProcessCPU(platformPid)
	if err := gw.Start(); err != nil {
		return err
	}
	defer func() { _ = gw.Process.Signal(syscall.SIGTERM); _ = gw.Wait() }()
	for {
		st.mu.Lock()
		got := st.values
		st.mu.Unlock()
		if got >= want {
			break
		}
		if time.Since(start) > 10*time.Minute {
			return fmt.Errorf("drain: %d of %d values after 10 min", got, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
	el := time.Since(start)
	cpu := observe.ProcessCPU(gw.Process.Pid)
	machineBusy := machine.Sample().Total
	selfCPU := observe.ProcessCPU(0) - self0
	brokerCPU, platformCPU := observe.ProcessCPU(load.brokerPid)-broker0, observe.ProcessCPU(platformPid)-platform0
	st.mu.Lock()
	firstValue, lastValue := st.first, st.last
	st.mu.Unlock()
	steady := lastValue.Sub(firstValue)
	fmt.Printf("drained      %.0f messages/s, %.0f values/s from the first delivered value to the last (%s)\n",
		float64(mqttBacklog)/steady.Seconds(), float64(want)/steady.Seconds(), steady.Round(time.Millisecond))
	fmt.Printf("from start   %.0f messages/s: all %d messages PUBACKed by the platform and received %s after the gateway started (first value after %s)\n",
		float64(mqttBacklog)/el.Seconds(), mqttBacklog, el.Round(time.Millisecond), firstValue.Sub(start).Round(time.Millisecond))
	fmt.Printf("gateway CPU  %.2f s = %.1f %% of one core; peak RSS %.1f MB\n", cpu.Seconds(), 100*cpu.Seconds()/el.Seconds(), float64(observe.PeakRSS(gw.Process.Pid))/(1<<20))
	// Below 100 % the drain waited on something other than CPU (the broker's
	// window, the group commit); at 100 % the brokers and the bench share
	// the cores with the gateway.
	fmt.Printf("machine CPU  %.0f %% of its %d cores busy from the gateway's start to the last value\n", machineBusy, runtime.NumCPU())
	fmt.Printf("peers CPU    device broker's mosquitto %.2f s, platform mosquitto %.2f s, bench process (subscriber) %.2f s\n", brokerCPU.Seconds(), platformCPU.Seconds(), selfCPU.Seconds())
	return nil
}
