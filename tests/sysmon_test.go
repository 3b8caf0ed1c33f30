package tests

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	osexec "os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/industryos/gateway/protocols/kit/testpeer"
)

// envProgram reports, as telemetry of device "env", the GODEBUG and re-exec
// marker an exec connector's program inherits from the gateway.
const envProgram = `printf '{"device": "env", "telemetry": {"godebug": "%s", "marker": "%s"}}\n' "${GODEBUG-unset}" "${IOTGW_GODEBUG_BEFORE-unset}"; read -r _`

// TestBinaryKeepsRuntimeMonitorAwake: `iotgw run` re-executes itself once
// with the runtime monitor's deep sleep turned off (a schedtrace period in
// GODEBUG, added to the operator's settings) and a timer slack of 1 ms, in
// the same process, and the
// programs it starts see GODEBUG as the gateway was started with. An
// operator's own schedtrace is left alone.
func TestBinaryKeepsRuntimeMonitorAwake(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("re-execution is Linux only")
	}
	for _, tc := range []struct {
		godebug     string
		wantEnviron string // GODEBUG the running image was started with
		wantMarker  bool
	}{
		{"madvdontneed=1", "madvdontneed=1,schedtrace=2147483647", true},
		{"schedtrace=0", "schedtrace=0", false},
	} {
		t.Run(tc.godebug, func(t *testing.T) {
			platform := testpeer.StartMosquitto(t)
			plat := testpeer.Subscribe(t, platform.Addr(), "v1/gateway/telemetry")
			dir := t.TempDir()
			cfg := writeConfig(t, dir, platform.Addr(), `{"type": "memory"}`,
				map[string][]byte{"exec": []byte(fmt.Sprintf(`{"name": "env", "command": ["/bin/sh", "-c", %q]}`, envProgram))})
			cmd := osexec.Command(iotgwBinary(t), "run", "-c", cfg, "--log-level", "warn")
			cmd.Env = append(os.Environ(), "GODEBUG="+tc.godebug)
			cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })

			var child map[string]string
			plat.WaitFor(t, 30*time.Second, func(msgs []testpeer.Msg) bool {
				for _, m := range msgs {
					var body map[string][]struct {
						Values map[string]string `json:"values"`
					}
					if json.Unmarshal(m.Payload, &body) == nil && len(body["env"]) > 0 {
						child = body["env"][0].Values
						return true
					}
				}
				return false
			})
			// The environment the running image was executed with: the
			// gateway's PID is the one started, so the re-execution replaced
			// the process rather than starting another.
			raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", cmd.Process.Pid))
			if err != nil {
				t.Fatal(err)
			}
			var godebug string
			marker := false
			for _, kv := range bytes.Split(raw, []byte{0}) {
				if v, ok := strings.CutPrefix(string(kv), "GODEBUG="); ok {
					godebug = v
				}
				marker = marker || strings.HasPrefix(string(kv), "IOTGW_GODEBUG_BEFORE=")
			}
			if godebug != tc.wantEnviron || marker != tc.wantMarker {
				t.Errorf("gateway started with GODEBUG=%q runs with GODEBUG=%q (re-exec marker %v); want %q (marker %v)",
					tc.godebug, godebug, marker, tc.wantEnviron, tc.wantMarker)
			}
			// The re-executed image runs with a millisecond of timer slack
			// (one timer, one wake-up); without the re-execution, with the
			// slack it was started with.
			slack, err := os.ReadFile(fmt.Sprintf("/proc/%d/timerslack_ns", cmd.Process.Pid))
			if err != nil {
				t.Fatal(err)
			}
			own, err := os.ReadFile("/proc/self/timerslack_ns")
			if err != nil {
				t.Fatal(err)
			}
			wantSlack := strings.TrimSpace(string(own))
			if tc.wantMarker {
				wantSlack = "1000000"
			}
			if got := strings.TrimSpace(string(slack)); got != wantSlack {
				t.Errorf("gateway started with GODEBUG=%q runs with a timer slack of %s ns; want %s", tc.godebug, got, wantSlack)
			}
			// ps, top and pgrep know the gateway by the name it was started
			// as, not by /proc/self/exe's "exe", on every thread.
			comms, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/comm", cmd.Process.Pid))
			if len(comms) == 0 {
				t.Fatal("no threads of the gateway in /proc")
			}
			for _, f := range comms {
				if name, err := os.ReadFile(f); err == nil && strings.TrimSpace(string(name)) != "iotgw" {
					t.Errorf("gateway started with GODEBUG=%q: %s is %q, want iotgw", tc.godebug, f, strings.TrimSpace(string(name)))
				}
			}
			if child["godebug"] != tc.godebug || child["marker"] != "unset" {
				t.Errorf("an exec connector's program sees GODEBUG=%q and the marker %q; want GODEBUG=%q as the gateway was started with, no marker",
					child["godebug"], child["marker"], tc.godebug)
			}
		})
	}
}
