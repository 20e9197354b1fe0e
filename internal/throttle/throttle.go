// Package throttle is the one gate every Spotify call of a process passes: a
// token-bucket rate limit (golang.org/x/time/rate) and a cooldown. The first
// 429 starts a cooldown that pauses every caller until its Retry-After has
// passed, so N goroutines do not discover the same 429 N times.
package throttle

import (
	"context"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Limiter is safe for concurrent use. The zero value is not usable; call New.
type Limiter struct {
	lim   *rate.Limiter
	clock func() time.Time

	mu         sync.Mutex
	until      time.Time // end of the current cooldown
	onCooldown func(d time.Duration, until time.Time)
}

// OnCooldown sets f to be called (outside the limiter's lock, on the caller's
// goroutine) each time a new cooldown starts, to log it once and count it.
func (l *Limiter) OnCooldown(f func(d time.Duration, until time.Time)) {
	l.mu.Lock()
	l.onCooldown = f
	l.mu.Unlock()
}

// New returns a limiter that lets through at most perSecond calls a second, in
// bursts of at most burst. perSecond <= 0 means no rate limit (cooldowns still apply).
func New(perSecond float64, burst int) *Limiter {
	limit := rate.Limit(perSecond)
	if perSecond <= 0 {
		limit = rate.Inf
	}
	if burst < 1 {
		burst = 1
	}
	return &Limiter{lim: rate.NewLimiter(limit, burst), clock: time.Now}
}

// Wait blocks until the caller may send one request: after any cooldown, and
// within the rate. It returns ctx's error if ctx ends first.
func (l *Limiter) Wait(ctx context.Context) error {
	for {
		if err := l.sleepCooldown(ctx); err != nil {
			return err
		}
		if err := l.lim.Wait(ctx); err != nil {
			return err
		}
		// A 429 may have started a cooldown while this caller waited for the
		// rate: then the token is spent, and the caller waits again.
		if l.CooldownLeft() <= 0 {
			return nil
		}
	}
}

func (l *Limiter) sleepCooldown(ctx context.Context) error {
	for {
		left := l.CooldownLeft()
		if left <= 0 {
			return ctx.Err()
		}
		t := time.NewTimer(left)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
}

// Cooldown pauses every caller for d from now, unless a cooldown already runs
// longer. It reports whether this call started a new cooldown (false when one
// was already running), so that the caller logs a cooldown once, and returns
// its end.
func (l *Limiter) Cooldown(d time.Duration) (started bool, until time.Time) {
	l.mu.Lock()
	now := l.clock()
	started = !l.until.After(now)
	if end := now.Add(d); end.After(l.until) {
		l.until = end
	}
	until, f := l.until, l.onCooldown
	l.mu.Unlock()
	if started && f != nil {
		f(d, until)
	}
	return started, until
}

// CooldownLeft returns how long the current cooldown still lasts (0 when none).
func (l *Limiter) CooldownLeft() time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	if d := l.until.Sub(l.clock()); d > 0 {
		return d
	}
	return 0
}

// Rate returns the current rate limit in requests per second (0 when unlimited).
func (l *Limiter) Rate() float64 {
	r := l.lim.Limit()
	if r == rate.Inf {
		return 0
	}
	return float64(r)
}
