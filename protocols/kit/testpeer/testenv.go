// Package testpeer holds what tests share: the one way to wait (Waiter,
// Eventually; no fixed sleeps), and the real peers, started on free
// loopback ports and torn down with t.Cleanup: MQTT brokers (mosquitto as
// an external process, mochi embedded) and subscribers, an OPC UA server,
// snmpd, pymodbus slave and master, socat pty pairs and TLS certificates.
// A missing peer program skips its test, or fails it under
// IOTGW_REQUIRE_PEERS=1.
package testpeer

import (
	"fmt"
	"net"
	"testing"
	"time"
)

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago.
// Another process may grab it before the caller binds it; the window is tiny
// on a test machine and callers fail loudly when it happens.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("testpeer: free port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// waitListening dials addr until it accepts or alive reports the server
// gone.
func waitListening(addr string, timeout time.Duration, alive func() bool) error {
	var gone error
	err := Waiter{Timeout: timeout, Poll: 20 * time.Millisecond}.Wait("a listener on "+addr, func() error {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			return nil
		}
		if !alive() {
			gone = fmt.Errorf("server exited before listening on %s", addr)
			return nil
		}
		return err
	})
	if gone != nil {
		return gone
	}
	return err
}

// Dial connects to addr over TCP, retrying until something listens there
// (a server another goroutine or process is starting), and closes the
// connection when the test ends.
func Dial(t testing.TB, addr string) net.Conn {
	t.Helper()
	var nc net.Conn
	Eventually(t, MinTimeout, "a listener on "+addr, func() error {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		nc = c
		return err
	})
	t.Cleanup(func() { nc.Close() })
	return nc
}
