package testpeer

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gosnmp/gosnmp"
)

// RequirePeersEnv, set to "1" (CI), turns a missing peer program from a
// skip into a failure, so CI cannot go green without the peer tests.
const RequirePeersEnv = "IOTGW_REQUIRE_PEERS"

// SystemPython is Debian's interpreter, whose dist-packages hold
// python3-pymodbus.
const SystemPython = "/usr/bin/python3"

// NeedPeer skips t when check reports the peer what missing, or fails it
// under RequirePeersEnv=1.
func NeedPeer(t testing.TB, what string, check func() error) {
	t.Helper()
	if err := check(); err != nil {
		if os.Getenv(RequirePeersEnv) == "1" {
			t.Fatalf("peer %s missing (%s=1): %v", what, RequirePeersEnv, err)
		}
		t.Skipf("peer %s missing: %v", what, err)
	}
}

// NeedProgram returns the path of the program name (Debian package pkg),
// found in PATH or in the extra paths, as NeedPeer does.
func NeedProgram(t testing.TB, name, pkg string, extra ...string) string {
	t.Helper()
	var path string
	NeedPeer(t, name+" (apt-get install "+pkg+")", func() error {
		p, err := exec.LookPath(name)
		if err == nil {
			path = p
			return nil
		}
		for _, p := range extra {
			if st, serr := os.Stat(p); serr == nil && !st.IsDir() {
				path = p
				return nil
			}
		}
		return err
	})
	return path
}

// NeedPymodbus skips (or fails) t without python3-pymodbus.
func NeedPymodbus(t testing.TB) {
	t.Helper()
	NeedPeer(t, "python3-pymodbus", func() error {
		out, err := exec.Command(SystemPython, "-c", "import pymodbus.server.async_io").CombinedOutput()
		if err != nil {
			return fmt.Errorf("%s: %v: %s", SystemPython, err, strings.TrimSpace(string(out)))
		}
		return nil
	})
}

// PtyPair starts socat linking two pseudo-terminals, a serial line, and
// returns their paths once socat reports it is transferring data.
func PtyPair(t testing.TB) (string, string) {
	t.Helper()
	bin := NeedProgram(t, "socat", "socat")
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a"), filepath.Join(dir, "b")
	cmd := exec.Command(bin, "-d", "-d", "pty,raw,echo=0,link="+a, "pty,raw,echo=0,link="+b)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	ready := make(chan error, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		var seen []string
		for sc.Scan() {
			seen = append(seen, sc.Text())
			if strings.Contains(sc.Text(), "starting data transfer loop") {
				ready <- nil
				_, _ = io.Copy(io.Discard, stderr)
				return
			}
		}
		ready <- fmt.Errorf("socat ended before linking: %s", strings.Join(seen, "\n"))
	}()
	select {
	case err := <-ready:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(MinTimeout):
		t.Fatalf("socat did not link the ptys within %v", MinTimeout)
	}
	return a, b
}

// StartSnmpd runs Debian's snmpd on a free loopback UDP port with the v2c
// communities public (read) and private (write) plus the extra
// snmpd.conf lines, waits until it answers a get and stops it when the
// test ends. It returns the port.
func StartSnmpd(t testing.TB, extraConf ...string) int {
	t.Helper()
	bin := NeedProgram(t, "snmpd", "snmpd", "/usr/sbin/snmpd")
	dir := t.TempDir()
	conf := filepath.Join(dir, "snmpd.conf")
	lines := append([]string{"rocommunity public 127.0.0.1", "rwcommunity private 127.0.0.1"}, extraConf...)
	if err := os.WriteFile(conf, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	port := FreeUDPPort(t)
	cmd := exec.Command(bin, "-f", "-Lo", "-C", "-c", conf, "-p", filepath.Join(dir, "pid"), fmt.Sprintf("udp:127.0.0.1:%d", port))
	cmd.Env = append(os.Environ(), "MIBS=", "SNMP_PERSISTENT_DIR="+dir)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	g := &gosnmp.GoSNMP{Target: "127.0.0.1", Port: uint16(port), Version: gosnmp.Version2c, Community: "public", Timeout: 200 * time.Millisecond}
	if err := g.Connect(); err != nil {
		t.Fatal(err)
	}
	defer g.Conn.Close()
	Eventually(t, MinTimeout, fmt.Sprintf("snmpd to answer on port %d", port), func() error {
		_, err := g.Get([]string{".1.3.6.1.2.1.1.3.0"})
		return err
	})
	return port
}

// FreeUDPPort returns a UDP port on 127.0.0.1 that was free a moment ago.
func FreeUDPPort(t testing.TB) int {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("testpeer: free UDP port: %v", err)
	}
	defer pc.Close()
	return pc.LocalAddr().(*net.UDPAddr).Port
}

// SnmpCommand returns an unstarted command running a tool of Debian's snmp
// package (snmptrap, snmpinform, snmpget) without MIBs or the user's
// snmp.conf, its persistent state (v3 engine boots) in a test directory.
func SnmpCommand(t testing.TB, name string, args ...string) *exec.Cmd {
	t.Helper()
	bin := NeedProgram(t, name, "snmp")
	dir := t.TempDir()
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), "MIBS=", "MIBDIRS=", "HOME="+dir, "SNMP_PERSISTENT_DIR="+dir, "SNMPCONFPATH="+dir)
	return cmd
}
