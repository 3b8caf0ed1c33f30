package tests

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/industryos/gateway/protocols/kit/testpeer"
)

// restConnectorConfig is an upstream rest connector file serving on port,
// whose commands go to the device at deviceURL.
func restConnectorConfig(port int, deviceURL string) []byte {
	return []byte(fmt.Sprintf(`{
  "name": "REST",
  "server": {"host": "127.0.0.1", "port": "%d", "SSL": false},
  "mapping": [{
    "endpoint": "/my_devices", "HTTPMethods": ["POST"],
    "response": {"responseExpected": false, "successResponse": "OK"},
    "security": {"type": "anonymous"},
    "converter": {"type": "json",
      "deviceInfo": {"deviceNameExpressionSource": "request", "deviceNameExpression": "${sensorName}",
                     "deviceProfileExpressionSource": "request", "deviceProfileExpression": "${sensorType}"},
      "attributes": [{"type": "string", "key": "model", "value": "${sensorModel}"}],
      "timeseries": [{"type": "double", "key": "temperature", "value": "${temp}"},
                     {"type": "double", "key": "humidity", "value": "${hum}"}]}
  }],
  "requestsMapping": {
    "attributeUpdates": [{"HTTPMethod": "POST", "httpHeaders": {"Content-Type": "application/json"},
      "security": {"type": "anonymous"}, "timeout": 5, "tries": 3,
      "deviceNameFilter": "SN.*", "attributeFilter": ".*",
      "requestUrlExpression": "%[2]s/${deviceName}/attributes",
      "valueExpression": "{\"deviceName\":\"${deviceName}\",\"${attributeKey}\":\"${attributeValue}\"}"}],
    "serverSideRpc": [{"deviceNameFilter": ".*", "methodFilter": "echo", "HTTPMethod": "POST", "timeout": 5,
      "requestUrlExpression": "%[2]s/${deviceName}/rpc/${methodName}",
      "valueExpression": "${params}", "httpHeaders": {"Content-Type": "application/json"},
      "security": {"type": "anonymous"}}]
  }
}`, port, deviceURL))
}

// restDevice is the device's own HTTP server: it records what the gateway
// sends and echoes RPC bodies.
type restDevice struct {
	mu   sync.Mutex
	reqs []string
	got  chan string
}

func startRestDevice(t *testing.T) (*restDevice, string) {
	t.Helper()
	d := &restDevice{got: make(chan string, 16)}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		line := r.Method + " " + r.URL.Path + " " + string(b)
		select {
		case d.got <- line:
		default:
		}
		if strings.Contains(r.URL.Path, "/rpc/") {
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprintf(w, `{"echo":%s}`, b)
		}
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return d, "http://" + ln.Addr().String()
}

func (d *restDevice) next(t *testing.T, what string) string {
	t.Helper()
	select {
	case s := <-d.got:
		return s
	case <-time.After(20 * time.Second):
		t.Fatalf("%s: the device got no request", what)
		return ""
	}
}

// TestRESTConnectorEndToEnd: a device's HTTP push reaches the platform
// decoded (answered 200 once journaled); a shared attribute update and an
// RPC from the platform become HTTP requests to the device, and the RPC's
// answer reaches the platform.
func TestRESTConnectorEndToEnd(t *testing.T) {
	dev, devURL := startRestDevice(t)
	port := testpeer.FreePort(t)
	platform := testpeer.StartMosquitto(t)
	plat := testpeer.Subscribe(t, platform.Addr(), "v1/gateway/#")
	path := writeConfig(t, t.TempDir(), platform.Addr(), `{"type": "memory"}`,
		map[string][]byte{"rest": restConnectorConfig(port, devURL)})
	startGateway(t, path, nil)

	url := fmt.Sprintf("http://127.0.0.1:%d/my_devices", port)
	body := `{"sensorName":"SN-1","sensorType":"thermo","sensorModel":"T1000","temp":21.5,"hum":"40.5"}`
	// The server comes up with the connector; until then the port refuses.
	testpeer.Eventually(t, 20*time.Second, "the REST connector to accept a post", func() error {
		resp, err := http.Post(url, "application/json", strings.NewReader(body))
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 || string(b) != "OK" {
			return fmt.Errorf("answer %d %q", resp.StatusCode, b)
		}
		return nil
	})
	plat.WaitFor(t, 20*time.Second, func(msgs []testpeer.Msg) bool {
		values := deviceValues(msgs, "SN-1")
		return values["temperature"] == "21.5" && values["humidity"] == "40.5"
	})
	plat.WaitFor(t, 20*time.Second, func(msgs []testpeer.Msg) bool { return attributeSeen(msgs, "SN-1", "model", `"T1000"`) })
	for _, m := range testpeer.OnTopic(plat.Messages(), "v1/gateway/connect") {
		var c struct{ Device, Type string }
		if json.Unmarshal(m.Payload, &c) == nil && c.Device == "SN-1" && c.Type != "thermo" {
			t.Errorf("connect %s, want profile thermo", m.Payload)
		}
	}

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := plat.Publish(ctx, "v1/gateway/attributes", []byte(`{"device":"SN-1","data":{"fw":"2.0"}}`), 1); err != nil {
		t.Fatal(err)
	}
	if got := dev.next(t, "attribute update"); got != `POST /SN-1/attributes {"deviceName":"SN-1","fw":"2.0"}` {
		t.Errorf("device got %q", got)
	}
	if err := plat.Publish(ctx, "v1/gateway/rpc", []byte(`{"device":"SN-1","data":{"id":5,"method":"echo","params":{"x":1}}}`), 1); err != nil {
		t.Fatal(err)
	}
	if got := dev.next(t, "rpc"); got != `POST /SN-1/rpc/echo {"x":1}` {
		t.Errorf("device got %q", got)
	}
	const reply = `{"device":"SN-1","id":5,"data":{"result":{"echo":{"x":1}}}}`
	plat.WaitFor(t, 20*time.Second, func(msgs []testpeer.Msg) bool {
		for _, m := range testpeer.OnTopic(msgs, "v1/gateway/rpc") {
			if string(m.Payload) == reply {
				return true
			}
		}
		return false
	})
}

// TestRESTBinaryAnswerIsDurable: the built binary, curl as the device, the
// platform unreachable (data stays in the journal). A push answered 200 is
// in the Badger journal after SIGKILL: the answer came after the commit.
func TestRESTBinaryAnswerIsDurable(t *testing.T) {
	curl := testpeer.NeedProgram(t, "curl", "curl")
	port := testpeer.FreePort(t)
	noBroker := fmt.Sprintf("127.0.0.1:%d", testpeer.FreePort(t))
	dir := t.TempDir()
	cfg := writeConfig(t, dir, noBroker, `{"type": "file", "data_folder_path": "journal"}`,
		map[string][]byte{"rest": restConnectorConfig(port, "http://127.0.0.1:1")})
	cmd := startBinary(t, cfg)
	url := fmt.Sprintf("http://127.0.0.1:%d/my_devices", port)
	const ts = 1700000000000
	testpeer.Eventually(t, 30*time.Second, "curl's post to be answered 200", func() error {
		out, err := exec.Command(curl, "-sS", "-o", "/dev/null", "-w", "%{http_code}",
			"-H", "Content-Type: application/json",
			"-d", fmt.Sprintf(`{"sensorName":"SN-K","sensorType":"t","temp":1.5,"ts":%d}`, ts), url).CombinedOutput()
		if err != nil || string(out) != "200" {
			return fmt.Errorf("curl: %v %s", err, out)
		}
		return nil
	})
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	if pts := journalPoints(t, filepath.Join(dir, "journal")); !pts[point{"SN-K", ts}] {
		t.Errorf("the answered push is not in the journal after SIGKILL: %v", pts)
	}
}
