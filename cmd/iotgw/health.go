package main

import (
	"fmt"
	"io"
	"net/http"
	"time"
)

// cmdHealth asks a running gateway's /healthz (the http section) and exits 0 when it
// answers 200: a container HEALTHCHECK on an image without curl or wget.
func cmdHealth(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("health", stderr)
	url := fs.String("url", "http://127.0.0.1:9100/healthz", "health endpoint of the running gateway")
	timeout := fs.Duration("timeout", 3*time.Second, "give up after this long")
	if err := fs.Parse(args); err != nil {
		return flagExit(err)
	}
	c := http.Client{Timeout: *timeout}
	resp, err := c.Get(*url)
	if err != nil {
		fmt.Fprintln(stderr, "health:", err)
		return 1
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	fmt.Fprintf(stdout, "%s %s\n", resp.Status, body)
	if resp.StatusCode != http.StatusOK {
		return 1
	}
	return 0
}
