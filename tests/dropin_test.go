package tests

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/industryos/gateway/protocols"
	"github.com/industryos/gateway/protocols/can"
	"github.com/industryos/gateway/protocols/config"
	"github.com/industryos/gateway/protocols/kit/testpeer"
)

// upstreamCorpus is upstream's own config files, beside the project in the
// steering checkout; tests that read it skip in a plain clone.
const upstreamCorpus = "../../shared/upstream-configs"

func corpusOrSkip(t *testing.T) string {
	t.Helper()
	dir, err := filepath.Abs(upstreamCorpus)
	if err == nil {
		if _, err = os.Stat(dir); err == nil {
			return dir
		}
	}
	t.Skipf("upstream config corpus not found at %s (it sits beside the project's checkout): %v", upstreamCorpus, err)
	return ""
}

// corpusType names the connector type of an upstream connector file from
// its place in the corpus, "" for files that are not connector files.
func corpusType(rel string) string {
	parts := strings.Split(filepath.ToSlash(rel), "/")
	if parts[0] == "thingsboard_gateway" {
		base := strings.TrimSuffix(parts[len(parts)-1], ".json")
		switch base {
		case "tb_gateway", "logs", "list", "statistics_linux", "statistics_macos", "statistics_windows":
			return ""
		case "modbus_serial":
			return "modbus"
		case "custom_serial":
			return "serial"
		}
		return base
	}
	for i, p := range parts {
		if (p == "connectors" || p == "data") && i+1 < len(parts)-1 {
			if parts[i+1] == "gateway" {
				return ""
			}
			return parts[i+1]
		}
	}
	return ""
}

// wrapFragment makes a whole connector file of the fragments upstream's unit
// tests load into one part of a connector (a Modbus master, an OPC-UA
// device mapping).
func wrapFragment(t *testing.T, typ string, raw []byte) []byte {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	var whole map[string]any
	switch {
	case typ == "modbus" && m["master"] == nil && m["slaves"] != nil:
		whole = map[string]any{"master": m}
	case typ == "opcua" && m["server"] == nil && m["deviceNodePattern"] != nil:
		whole = map[string]any{"server": map[string]any{"url": "opc.tcp://127.0.0.1:4840"}, "mapping": []any{m}}
	case typ == "mqtt" && m["broker"] == nil:
		// Upstream's unit tests hand the connector its broker separately.
		m["broker"] = map[string]any{"host": "127.0.0.1", "port": 1883}
		whole = m
	default:
		return raw
	}
	out, err := json.Marshal(whole)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestUpstreamCorpusLoads: every connector file of upstream's corpus loads
// without an error when its type is built in (warnings and skipped entries
// are allowed, each with its file and path), and a connector of a type this
// build lacks is reported and left out instead of refusing the main file.
func TestUpstreamCorpusLoads(t *testing.T) {
	corpus := corpusOrSkip(t)
	built := map[string]bool{}
	for _, typ := range protocols.Types() {
		built[typ] = true
	}
	n := 0
	err := filepath.WalkDir(corpus, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".json") {
			return err
		}
		rel, _ := filepath.Rel(corpus, path)
		typ := corpusType(rel)
		if typ == "" {
			return nil
		}
		n++
		t.Run(rel, func(t *testing.T) {
			raw, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			dir := t.TempDir()
			file := filepath.Join(dir, filepath.Base(path))
			if err := os.WriteFile(file, wrapFragment(t, typ, raw), 0o644); err != nil {
				t.Fatal(err)
			}
			class := ""
			if typ == "serial" {
				// Upstream's custom connector example: loaded by class from its extensions.
				class = `"class":"CustomSerialConnector",`
			}
			main := fmt.Sprintf(`{"thingsboard":{"host":"127.0.0.1","port":1883,"security":{"accessToken":"t"}},
				"storage":{"type":"memory"},
				"connectors":[{"name":"c",%s"type":%q,"configuration":%q}]}`, class, typ, filepath.Base(path))
			mainPath := filepath.Join(dir, "tb_gateway.json")
			if err := os.WriteFile(mainPath, []byte(main), 0o644); err != nil {
				t.Fatal(err)
			}
			cfg, err := config.Load(mainPath, func(string) string { return "" })
			if err != nil {
				t.Fatalf("%s (type %s) is refused:\n%v", rel, typ, err)
			}
			for _, p := range cfg.Problems.NotErrors() {
				t.Log(p.String())
			}
			if built[typ] {
				if len(cfg.Connectors) != 1 {
					t.Fatalf("connector of built-in type %s not loaded", typ)
				}
			} else if len(cfg.Unsupported) != 1 {
				t.Fatalf("connector of type %s: want it reported as unsupported, got %+v", typ, cfg.Unsupported)
			}
		})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n < 40 {
		t.Fatalf("only %d connector files found in %s", n, corpus)
	}
	// Upstream's main files load as they are.
	for _, main := range []string{"thingsboard_gateway/config/tb_gateway.json", "tests/integration/data/gateway/gateway.json"} {
		if _, err := config.Load(filepath.Join(corpus, main), func(string) string { return "" }); err != nil {
			t.Errorf("%s: %v", main, err)
		}
	}
}

// TestCheckAndRunAgree: for every config the project ships (examples and the
// loader's testdata), `iotgw check` and `iotgw run` agree. What check
// accepts starts and stops cleanly; what it refuses, run refuses with the
// same lines and no start; neither ever prints a panic.
func TestCheckAndRunAgree(t *testing.T) {
	bin := iotgwBinary(t)
	var mains []string
	for _, pattern := range []string{"../examples/tb_gateway.*", "../protocols/config/testdata/*/tb_gateway.*"} {
		m, err := filepath.Glob(pattern)
		if err != nil {
			t.Fatal(err)
		}
		mains = append(mains, m...)
	}
	if len(mains) < 10 {
		t.Fatalf("only %d configs found", len(mains))
	}
	// The platform is a port nobody listens on: run must keep retrying, not die.
	closed := strconv.Itoa(testpeer.FreePort(t))
	for _, main := range mains {
		name := filepath.Base(filepath.Dir(main)) + "/" + filepath.Base(main)
		t.Run(name, func(t *testing.T) {
			// A copy, so that storage directories and written files stay out of the tree.
			dir := t.TempDir()
			if err := os.CopyFS(dir, os.DirFS(filepath.Dir(main))); err != nil {
				t.Fatal(err)
			}
			cfg := filepath.Join(dir, filepath.Base(main))
			env := append(os.Environ(), "TB_GW_HOST=127.0.0.1", "TB_GW_PORT="+closed)
			check := exec.Command(bin, "check", "-c", cfg)
			check.Env, check.Dir = env, dir
			checkOut, checkErr := check.CombinedOutput()
			noPanic(t, "check", string(checkOut))
			accepted := checkErr == nil
			var exit *exec.ExitError
			if !accepted && !errors.As(checkErr, &exit) {
				t.Fatalf("check did not run: %v", checkErr)
			}

			run := exec.Command(bin, "run", "-c", cfg, "--log-level", "info")
			run.Env, run.Dir = env, dir
			stderr, err := run.StderrPipe()
			if err != nil {
				t.Fatal(err)
			}
			run.Stdout = io.Discard
			if err := run.Start(); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = run.Process.Kill() })
			lines := make(chan string, 1024)
			go func() {
				sc := bufio.NewScanner(stderr)
				sc.Buffer(make([]byte, 1<<20), 1<<20)
				for sc.Scan() {
					lines <- sc.Text()
				}
				close(lines)
			}()
			var out strings.Builder
			started := false
			for line := range lines {
				out.WriteString(line + "\n")
				if strings.Contains(line, "gateway started") {
					started = true
					break
				}
			}
			if started != accepted {
				t.Fatalf("check accepted=%v but run started=%v\ncheck:\n%s\nrun:\n%s", accepted, started, checkOut, out.String())
			}
			if started {
				if err := run.Process.Signal(syscall.SIGTERM); err != nil {
					t.Fatal(err)
				}
			}
			for line := range lines {
				out.WriteString(line + "\n")
			}
			err = run.Wait()
			noPanic(t, "run", out.String())
			switch {
			case started && err != nil:
				t.Fatalf("run did not stop cleanly: %v\n%s", err, out.String())
			case !started && (err == nil || !strings.Contains(out.String(), "invalid configuration, not starting")):
				t.Fatalf("run of a refused config: %v\n%s", err, out.String())
			}
		})
	}
}

func noPanic(t *testing.T, what, out string) {
	t.Helper()
	for _, bad := range []string{"panic:", "goroutine ", "runtime error"} {
		if strings.Contains(out, bad) {
			t.Fatalf("%s printed %q:\n%s", what, bad, out)
		}
	}
}

// TestUpstreamDefaultMQTTConfig: upstream's default mqtt.json, with only its
// broker address changed, runs against mosquitto over MQTT 5 and 3.1.1: the
// lookbehind/lookahead device name, the constant-named JSON mapping and the
// bytes mapping all deliver to the platform.
func TestUpstreamDefaultMQTTConfig(t *testing.T) {
	corpus := corpusOrSkip(t)
	raw, err := os.ReadFile(filepath.Join(corpus, "thingsboard_gateway/config/mqtt.json"))
	if err != nil {
		t.Fatal(err)
	}
	for _, version := range []int{5, 4} {
		t.Run(fmt.Sprintf("version %d", version), func(t *testing.T) {
			platform := testpeer.StartMosquitto(t)
			devices := testpeer.StartMosquitto(t)
			plat := testpeer.Subscribe(t, platform.Addr(), "v1/gateway/#")
			var file map[string]any
			if err := json.Unmarshal(raw, &file); err != nil {
				t.Fatal(err)
			}
			broker := file["broker"].(map[string]any)
			broker["host"], broker["port"], broker["version"] = "127.0.0.1", devices.Port(), version
			body, _ := json.Marshal(file)

			dev := testpeer.Subscribe(t, devices.Addr())
			dev.WaitReady(t, 10*time.Second)
			ctx, cancel := contextTimeout(10 * time.Second)
			defer cancel()
			for topic, payload := range map[string]string{
				"sensor/SN-001/data": `{"sensorModel":"T1","temp":21.5,"hum":"40"}`,
				"data/":              `{"power":1.5,"frequency":50,"temperature":20.5,"humidity":30,"relay":true}`,
				"sensor/raw_data":    "ABCD1234",
			} {
				// Retained: delivered whenever the gateway's subscription lands.
				if err := dev.PublishRetained(ctx, topic, []byte(payload), 1); err != nil {
					t.Fatal(err)
				}
			}
			path := writeConfig(t, t.TempDir(), platform.Addr(), `{"type": "memory"}`, map[string][]byte{"mqtt": body})
			startGateway(t, path, nil)
			plat.WaitFor(t, 30*time.Second, func(msgs []testpeer.Msg) bool {
				got, err := telemetry(msgs)
				if err != nil {
					t.Fatal(err)
				}
				seen := map[string]bool{}
				for p := range got {
					seen[p.Device] = true
				}
				return seen["SN-001"] && seen["Demo Device"] && seen["ABCD"]
			})
			got, _ := telemetry(plat.Messages())
			for p, values := range got {
				switch p.Device {
				case "SN-001":
					if string(values["temperature"]) != "21.5" {
						t.Errorf("SN-001 temperature: %s", values["temperature"])
					}
				case "Demo Device":
					if string(values["relay"]) != "true" {
						t.Errorf("Demo Device relay: %s", values["relay"])
					}
				case "ABCD":
					if string(values["temp"]) != `"1234"` {
						t.Errorf("raw device temp: %s", values["temp"])
					}
				default:
					t.Errorf("unexpected device %q (the lookaround name expression must extract SN-001)", p.Device)
				}
			}
		})
	}
}

// TestUpstreamDefaultCANConfig: upstream's default can.json, on the virtual
// bus instead of its SocketCAN interface, runs in the gateway: its Python
// expressions decode frames and the values reach the platform; the entry it
// cannot use is skipped, not the file.
func TestUpstreamDefaultCANConfig(t *testing.T) {
	corpus := corpusOrSkip(t)
	raw, err := os.ReadFile(filepath.Join(corpus, "thingsboard_gateway/config/can.json"))
	if err != nil {
		t.Fatal(err)
	}
	var file map[string]any
	if err := json.Unmarshal(raw, &file); err != nil {
		t.Fatal(err)
	}
	channel := "dropin-" + t.Name()
	file["interface"], file["channel"] = "virtual", channel
	body, _ := json.Marshal(file)
	ecu := can.NewVirtualBus(channel)
	defer ecu.Close()
	platform := testpeer.StartMosquitto(t)
	plat := testpeer.Subscribe(t, platform.Addr(), "v1/gateway/#")
	path := writeConfig(t, t.TempDir(), platform.Addr(), `{"type": "memory"}`, map[string][]byte{"can": body})
	startGateway(t, path, nil)
	// The first polling frame says the connector's bus is open.
	canRecv(t, ecu, "upstream's polling")
	for _, f := range []can.Frame{
		{ID: 41, Data: []byte{0, 0, 0x22, 0x0d, 0x0c}},                               // bool(value & 0b00000100)
		{ID: 1918, Extended: true, Data: []byte{0, 0, 0xbb, 0xbb, 0x04, 0xd2, 0, 0}}, // value / 4
	} {
		if err := ecu.Send(f); err != nil {
			t.Fatal(err)
		}
	}
	plat.WaitFor(t, 20*time.Second, func(msgs []testpeer.Msg) bool {
		got, err := telemetry(msgs)
		if err != nil {
			return false
		}
		rpm := false
		for p, vs := range got {
			rpm = rpm || (p.Device == "Car" && string(vs["rpm"]) == "308.5")
		}
		door := false
		for _, m := range testpeer.OnTopic(msgs, "v1/gateway/attributes") {
			var body map[string]map[string]json.RawMessage
			if json.Unmarshal(m.Payload, &body) == nil && string(body["Car"]["isDriverDoorOpened"]) == "true" {
				door = true
			}
		}
		return rpm && door
	})
}
