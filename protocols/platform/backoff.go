package platform

import (
	"math/rand/v2"
	"sync"
	"time"
)

// backoffDelay is min·2^n capped at max, spread by ±10% (r in [0,1)) so a
// fleet of gateways does not reconnect in lockstep after a platform restart,
// and kept within [min, max].
func backoffDelay(n int, minD, maxD time.Duration, r float64) time.Duration {
	d := minD
	for i := 0; i < n && d < maxD; i++ {
		d *= 2
	}
	d = min(d, maxD)
	d = time.Duration(float64(d) * (0.9 + 0.2*r))
	return max(minD, min(d, maxD))
}

// reconnector paces connection attempts. autopaho restarts its attempt
// counter for every connection cycle, so its first reconnect after a drop is
// immediate; a platform that accepts CONNECT and then drops us (revoked
// token, rate limits) would otherwise see a tight loop. The failure count
// therefore lives here and only resets after a connection stayed up for a
// while.
type reconnector struct {
	mu        sync.Mutex
	min, max  time.Duration
	stable    time.Duration
	rnd       func() float64
	now       func() time.Time
	attempted bool
	failures  int
	attempts  uint64
	upAt      time.Time
}

func newReconnector(minD, maxD time.Duration) *reconnector {
	return &reconnector{
		min: minD, max: maxD,
		stable: max(maxD/2, minD),
		rnd:    rand.Float64,
		now:    time.Now,
	}
}

// delay is autopaho's ReconnectBackoff: called before every attempt. The
// argument (autopaho's per-cycle attempt number) is deliberately ignored.
func (r *reconnector) delay(int) time.Duration {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.attempts++
	if !r.attempted {
		r.attempted = true
		return 0
	}
	d := backoffDelay(r.failures, r.min, r.max, r.rnd())
	r.failures++
	return d
}

// nominal is the next delay without jitter, for log messages.
func (r *reconnector) nominal() time.Duration {
	r.mu.Lock()
	defer r.mu.Unlock()
	return backoffDelay(r.failures, r.min, r.max, 0.5)
}

func (r *reconnector) up() {
	r.mu.Lock()
	r.upAt = r.now()
	r.mu.Unlock()
}

func (r *reconnector) down() {
	r.mu.Lock()
	if r.now().Sub(r.upAt) >= r.stable {
		r.failures = 0
	}
	r.mu.Unlock()
}

func (r *reconnector) attemptCount() uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.attempts
}
