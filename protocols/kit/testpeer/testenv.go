// Package testpeer runs real MQTT brokers and observers for end-to-end tests:
// mosquitto as an external process, mochi embedded, both on free loopback
// ports and torn down with t.Cleanup.
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

// Eventually calls cond every step until it returns nil, and fails the test
// with cond's last error after timeout. Prefer a condition signalled by the
// code under test (Subscriber.WaitFor); this is for state that can only be
// polled.
func Eventually(t testing.TB, timeout, step time.Duration, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("testpeer: condition not met within %s: %v", timeout, err)
		}
		time.Sleep(step)
	}
}

// waitListening dials addr until it accepts or alive reports the server
// gone.
func waitListening(addr string, timeout time.Duration, alive func() bool) error {
	deadline := time.Now().Add(timeout)
	for {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			return nil
		}
		if !alive() {
			return fmt.Errorf("server exited before listening on %s", addr)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("nothing listening on %s after %s: %w", addr, timeout, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
