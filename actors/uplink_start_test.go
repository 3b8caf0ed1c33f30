package actors

import (
	"bytes"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/industryos/gateway/persistence"
	"github.com/industryos/gateway/protocols/config"
	"github.com/industryos/gateway/protocols/kit/testpeer"
)

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestUplinkThatCannotStartIsOneLine: a platform config the client refuses
// (here: no credentials at all, which check would also refuse) is one error
// line; the uplink does not panic and restart in a loop, and the gateway
// keeps journaling.
func TestUplinkThatCannotStartIsOneLine(t *testing.T) {
	cfg := testConfig(t, "127.0.0.1:1", &counterDevice{})
	cfg.ThingsBoard.Security = config.Security{}
	var logs syncBuffer
	j := persistence.OpenMemory(persistence.Options{})
	startGateway(t, Options{Config: cfg, Logger: zerolog.New(&logs), Journal: j})
	testpeer.Eventually(t, 10*time.Second, "20 journaled records", func() error {
		if j.LastSeq() < 20 {
			return fmt.Errorf("only %d records journaled", j.LastSeq())
		}
		return nil
	})
	out := logs.String()
	if n := strings.Count(out, "cannot start the platform connection"); n != 1 {
		t.Fatalf("%d start failure lines, want 1:\n%s", n, out)
	}
	if !strings.Contains(out, "no credentials configured") || strings.Contains(out, "panic") || strings.Contains(out, "goroutine ") {
		t.Fatalf("log:\n%s", out)
	}
}
