package main

import (
	"net"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

func listenNotify(t *testing.T) (string, *net.UnixConn) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "notify")
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return path, c
}

func readNotify(t *testing.T, c *net.UnixConn) string {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	buf := make([]byte, 4096)
	n, err := c.Read(buf)
	if err != nil {
		t.Fatal(err)
	}
	return string(buf[:n])
}

func TestSDNotify(t *testing.T) {
	path, c := listenNotify(t)
	env := map[string]string{"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "30000000", "WATCHDOG_PID": strconv.Itoa(os.Getpid())}
	n := newSDNotifier(func(k string) string { return env[k] })
	if n.pingEvery() != 15*time.Second {
		t.Fatalf("ping every %s", n.pingEvery())
	}
	for _, msg := range []string{"READY=1", "WATCHDOG=1", "STOPPING=1\nSTATUS=stopping"} {
		if err := n.notify(msg); err != nil {
			t.Fatal(err)
		}
		if got := readNotify(t, c); got != msg {
			t.Fatalf("got %q, want %q", got, msg)
		}
	}
}

func TestSDNotifyAbstractAndOutsideSystemd(t *testing.T) {
	name := "@iotgw-test-" + strconv.Itoa(os.Getpid())
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: name, Net: "unixgram"})
	if err != nil {
		t.Skipf("abstract unix sockets unavailable: %v", err)
	}
	defer c.Close()
	n := newSDNotifier(func(k string) string { return map[string]string{"NOTIFY_SOCKET": name}[k] })
	if err := n.notify("READY=1"); err != nil {
		t.Fatal(err)
	}
	if got := readNotify(t, c); got != "READY=1" {
		t.Fatalf("got %q", got)
	}
	none := newSDNotifier(func(string) string { return "" })
	if err := none.notify("READY=1"); err != nil || none.pingEvery() != 0 {
		t.Fatalf("outside systemd: %v %s", err, none.pingEvery())
	}
	other := newSDNotifier(func(k string) string {
		return map[string]string{"WATCHDOG_USEC": "1000000", "WATCHDOG_PID": "1"}[k]
	})
	if other.pingEvery() != 0 {
		t.Fatal("watchdog of another pid applied to us")
	}
}
