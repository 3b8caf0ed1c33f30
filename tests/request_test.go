package tests

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/industryos/gateway/protocols/kit/testpeer"
)

// TestRequestConnectorEndToEnd: upstream's default request.json, pointed
// at an HTTP server on a free port, runs in the gateway: the polled JSON
// reaches the platform decoded; a shared attribute update becomes the
// configured POST, and an RPC becomes the configured GET whose answer is
// the reply the platform receives.
func TestRequestConnectorEndToEnd(t *testing.T) {
	requestEndToEnd(t, func(t *testing.T, path string) { startGateway(t, path, nil) })
}

// TestRequestConnectorBinary is TestRequestConnectorEndToEnd through the
// built iotgw binary.
func TestRequestConnectorBinary(t *testing.T) {
	requestEndToEnd(t, func(t *testing.T, path string) {
		r := runBinary(t, path)
		t.Cleanup(func() { r.noCrash(t) })
	})
}

func requestEndToEnd(t *testing.T, start func(t *testing.T, path string)) {
	raw, err := os.ReadFile("../../shared/upstream-configs/thingsboard_gateway/config/request.json")
	if errors.Is(err, os.ErrNotExist) {
		t.Skip("upstream config corpus not found at ../../shared/upstream-configs")
	}
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var posts []string
	mux := http.NewServeMux()
	mux.HandleFunc("/getdata", func(w http.ResponseWriter, r *http.Request) {
		if u, p, ok := r.BasicAuth(); !ok || u != "user" || p != "password" {
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		io.WriteString(w, `{"serial":"SN-77","Developer":"Tester","hum":40}`)
	})
	mux.HandleFunc("/sensor/", func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		posts = append(posts, r.Method+" "+r.URL.Path+" "+string(b))
		mu.Unlock()
		io.WriteString(w, `{"temp":23.5}`)
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	conf := strings.Replace(string(raw), `"http://127.0.0.1:5000"`, `"`+srv.URL+`"`, 1)

	platform := testpeer.StartMosquitto(t)
	plat := testpeer.Subscribe(t, platform.Addr(), "v1/gateway/#")
	path := writeConfig(t, t.TempDir(), platform.Addr(), `{"type": "memory"}`, map[string][]byte{"request": []byte(conf)})
	start(t, path)

	plat.WaitFor(t, 20*time.Second, func(msgs []testpeer.Msg) bool {
		got, err := telemetry(msgs)
		if err != nil {
			return false
		}
		for p, vs := range got {
			if p.Device == "SD8500" && string(vs["combine"]) == `"Tester:40"` && string(vs["Maintainer"]) == `"Tester"` {
				return true
			}
		}
		return false
	})
	plat.WaitFor(t, 20*time.Second, func(msgs []testpeer.Msg) bool { return attributeSeen(msgs, "SD8500", "serialNumber", `"SN-77"`) })

	ctx, cancel := contextTimeout(10 * time.Second)
	defer cancel()
	if err := plat.Publish(ctx, "v1/gateway/attributes", []byte(`{"device":"SD8500","data":{"send_data":"on"}}`), 1); err != nil {
		t.Fatal(err)
	}
	if err := plat.Publish(ctx, "v1/gateway/rpc", []byte(`{"device":"SD8500","data":{"id":41,"method":"echo","params":{}}}`), 1); err != nil {
		t.Fatal(err)
	}
	plat.WaitFor(t, 20*time.Second, func(msgs []testpeer.Msg) bool {
		for _, m := range testpeer.OnTopic(msgs, "v1/gateway/rpc") {
			if string(m.Payload) == `{"device":"SD8500","id":41,"data":{"result":{"value":23.5}}}` {
				return true
			}
		}
		return false
	})
	want := []string{`POST /sensor/SD8500/send_data {"send_data":"on"}`, `GET /sensor/SD8500/request/echo/41 `}
	testpeer.Eventually(t, 10*time.Second, "every expected request", func() error {
		mu.Lock()
		defer mu.Unlock()
		for _, w := range want {
			found := false
			for _, p := range posts {
				found = found || p == w
			}
			if !found {
				return errors.New("peer has not seen " + w + " in " + strings.Join(posts, " | "))
			}
		}
		return nil
	})
}
