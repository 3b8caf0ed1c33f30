package main

import (
	"net"
	"os"
	"strconv"
	"time"
)

// sdNotifier speaks systemd's notify protocol: one datagram of newline-separated
// KEY=VALUE lines to the unix socket in $NOTIFY_SOCKET (a leading @ is the abstract
// namespace, which net.DialUnix maps). Outside systemd the socket is unset and every
// call does nothing.
type sdNotifier struct {
	socket   string
	watchdog time.Duration // WatchdogSec, 0 when systemd expects no pings
}

func newSDNotifier(getenv func(string) string) sdNotifier {
	n := sdNotifier{socket: getenv("NOTIFY_SOCKET")}
	// WATCHDOG_USEC applies to us only if WATCHDOG_PID, when set, is our pid.
	if pid := getenv("WATCHDOG_PID"); pid == "" || pid == strconv.Itoa(os.Getpid()) {
		if us, err := strconv.ParseInt(getenv("WATCHDOG_USEC"), 10, 64); err == nil && us > 0 {
			n.watchdog = time.Duration(us) * time.Microsecond
		}
	}
	return n
}

// notify sends state, e.g. "READY=1" or "WATCHDOG=1".
func (n sdNotifier) notify(state string) error {
	if n.socket == "" {
		return nil
	}
	c, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: n.socket, Net: "unixgram"})
	if err != nil {
		return err
	}
	defer c.Close()
	_, err = c.Write([]byte(state))
	return err
}

// pingEvery is the watchdog ping period: half of WatchdogSec, as sd_watchdog_enabled(3)
// advises; 0 when no watchdog is configured.
func (n sdNotifier) pingEvery() time.Duration { return n.watchdog / 2 }
