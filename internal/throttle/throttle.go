// Package throttle is the one gate every Spotify call of a process passes: a
// token-bucket rate limit (golang.org/x/time/rate), a cooldown, an adaptive
// rate and two priorities.
//
// The first 429 starts a cooldown that pauses every caller until its
// Retry-After has passed, so N goroutines do not discover the same 429 N
// times. With Options.Adaptive, the 429 also teaches the limiter the quota:
// Spotify counts an app's calls over a rolling window, so the calls this
// process got through in the last window are about what the window allows
// it (the learnt quota), and the rate drops to just under that. While the
// process uses its rate and calls succeed, the rate climbs back a little
// each window, but not past just under the learnt quota; only after
// QuietWindows windows without a 429 does it probe above it, slowly, in
// case the quota grew. So the rate settles just under the quota instead of
// drawing a 429 every few windows.
//
// After a cooldown, and before the first answer, the limiter probes: it lets
// one call through and holds the rest until that call is answered (Observe),
// so that a process never sends a volley into a quota it has not yet seen
// answer. A caller whose Wait returns nil must report the answer with Observe.
//
// Callers on the bulk lane (WithBulk) never take more than Options.BulkShare
// of the rate, and step aside while chatbot callers are waiting.
package throttle

import (
	"context"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Options tune a Limiter.
type Options struct {
	// Adaptive lowers the rate on a 429 to what the last window let through,
	// and raises it again while calls succeed.
	Adaptive bool
	// Window is the quota's rolling window (Spotify's is 30 seconds).
	Window time.Duration
	// Backoff is the share of the learnt quota the rate drops to, and the
	// most it climbs back to (default 0.98).
	Backoff float64
	// QuietWindows is how many windows without a 429 pass before the rate
	// probes above the learnt quota (default 20).
	QuietWindows int
	// Increase is the share of the current rate added after each window
	// without a 429 (default 0.02).
	Increase float64
	// BulkShare is the most of the rate bulk callers may take (default 0.75).
	BulkShare float64
	// Clock returns the time (default time.Now).
	Clock func() time.Time
}

// Limiter is safe for concurrent use. Create one with New or NewWithOptions.
type Limiter struct {
	opts    Options
	ceiling float64 // requests/s; 0: unlimited
	lim     *rate.Limiter
	bulk    *rate.Limiter // the bulk lane's share
	clock   func() time.Time

	mu         sync.Mutex
	until      time.Time // end of the current cooldown
	onCooldown func(d time.Duration, until time.Time)
	sends      times     // calls let through in the last window (adaptive only)
	rejects    times     // 429s in the last window
	lastChange time.Time // of the rate
	learnt     float64   // the quota the last 429 taught, requests/s (0: none yet)
	lastReject time.Time // of the last cooldown
	urgent     int       // chatbot callers waiting
	urgentDone chan struct{}
	probing    bool          // one call at a time until one is answered
	probeOut   bool          // the probe is in flight
	probeDone  chan struct{} // closed when the probe is answered
}

// New returns a fixed-rate limiter: at most perSecond calls a second, in
// bursts of at most burst. perSecond <= 0 means no rate limit (cooldowns still apply).
func New(perSecond float64, burst int) *Limiter {
	return NewWithOptions(perSecond, burst, Options{})
}

// NewWithOptions returns a limiter whose ceiling is perSecond.
func NewWithOptions(perSecond float64, burst int, opts Options) *Limiter {
	if opts.Window <= 0 {
		opts.Window = 30 * time.Second
	}
	if opts.Backoff <= 0 || opts.Backoff >= 1 {
		opts.Backoff = 0.98
	}
	if opts.QuietWindows <= 0 {
		opts.QuietWindows = 20
	}
	if opts.Increase <= 0 {
		opts.Increase = 0.02
	}
	if opts.BulkShare <= 0 || opts.BulkShare > 1 {
		opts.BulkShare = 0.75
	}
	if opts.Clock == nil {
		opts.Clock = time.Now
	}
	if burst < 1 {
		burst = 1
	}
	limit := rate.Limit(perSecond)
	if perSecond <= 0 {
		limit, perSecond = rate.Inf, 0
		opts.Adaptive = false // nothing to adapt from
	}
	l := &Limiter{
		opts: opts, ceiling: perSecond, clock: opts.Clock,
		lim:        rate.NewLimiter(limit, burst),
		bulk:       rate.NewLimiter(limit*rate.Limit(opts.BulkShare), burst),
		urgentDone: make(chan struct{}),
		probing:    true,
		probeDone:  make(chan struct{}),
	}
	if perSecond <= 0 {
		l.bulk = rate.NewLimiter(rate.Inf, burst)
	}
	return l
}

// OnCooldown sets f to be called (outside the limiter's lock, on the caller's
// goroutine) each time a new cooldown starts, to log it once and count it.
func (l *Limiter) OnCooldown(f func(d time.Duration, until time.Time)) {
	l.mu.Lock()
	l.onCooldown = f
	l.mu.Unlock()
}

type bulkKey struct{}

// WithBulk marks ctx as the bulk lane's: its Waits yield to the chatbot's.
func WithBulk(ctx context.Context) context.Context {
	return context.WithValue(ctx, bulkKey{}, true)
}

func isBulk(ctx context.Context) bool {
	b, _ := ctx.Value(bulkKey{}).(bool)
	return b
}

// Wait blocks until the caller may send one request: after any cooldown, and
// within the rate (and, on the bulk lane, within its share and after every
// waiting chatbot caller). It returns ctx's error if ctx ends first.
func (l *Limiter) Wait(ctx context.Context) error {
	bulk := isBulk(ctx)
	if !bulk {
		l.mu.Lock()
		l.urgent++
		l.mu.Unlock()
		defer func() {
			l.mu.Lock()
			if l.urgent--; l.urgent == 0 {
				close(l.urgentDone)
				l.urgentDone = make(chan struct{})
			}
			l.mu.Unlock()
		}()
	}
	for {
		if err := l.sleepCooldown(ctx); err != nil {
			return err
		}
		if bulk {
			if err := l.yield(ctx); err != nil {
				return err
			}
			if err := l.bulk.Wait(ctx); err != nil {
				return err
			}
		}
		probe, err := l.gate(ctx)
		if err != nil {
			return err
		}
		if err := l.lim.Wait(ctx); err != nil {
			l.endProbe(probe, false)
			return err
		}
		// A 429 may have started a cooldown while this caller waited for the
		// rate: then the token is spent, and the caller waits again.
		if l.CooldownLeft() <= 0 {
			l.sent()
			return nil
		}
		l.endProbe(probe, false)
	}
}

// gate holds the caller while a probe is in flight, and makes the caller the
// probe when one is needed.
func (l *Limiter) gate(ctx context.Context) (probe bool, err error) {
	for {
		l.mu.Lock()
		if !l.probing {
			l.mu.Unlock()
			return false, nil
		}
		if !l.probeOut {
			l.probeOut = true
			l.mu.Unlock()
			return true, nil
		}
		done := l.probeDone
		l.mu.Unlock()
		select {
		case <-done:
		case <-ctx.Done():
			return false, ctx.Err()
		}
	}
}

// endProbe ends the probe in flight; open ends probing altogether.
func (l *Limiter) endProbe(probe, open bool) {
	if !probe {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.finishProbe(open)
}

// finishProbe ends the probe in flight; l.mu is held.
func (l *Limiter) finishProbe(open bool) {
	l.probeOut = false
	if open {
		l.probing = false
	}
	close(l.probeDone)
	l.probeDone = make(chan struct{})
}

// Observe reports how a call that Wait let through went: its HTTP status, or
// 0 when no answer came. An answer other than 429 ends probing; a 429 (also
// reported to Cooldown) or no answer lets the next caller probe.
func (l *Limiter) Observe(status int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.probeOut {
		l.finishProbe(status != 0 && status != 429)
	}
}

// yield waits while chatbot callers are waiting.
func (l *Limiter) yield(ctx context.Context) error {
	for {
		l.mu.Lock()
		n, done := l.urgent, l.urgentDone
		l.mu.Unlock()
		if n == 0 {
			return nil
		}
		select {
		case <-done:
		case <-ctx.Done():
			return ctx.Err()
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

// sent records a call let through, and raises the rate after a window
// without a 429.
func (l *Limiter) sent() {
	if !l.opts.Adaptive {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.clock()
	l.sends.trim(now.Add(-l.opts.Window))
	l.sends.push(now)
	if l.lastChange.IsZero() {
		l.lastChange = now
	}
	r := float64(l.lim.Limit())
	w := l.opts.Window
	if r >= l.ceiling || now.Sub(l.lastChange) < w || l.rejects.trim(now.Add(-w)) > 0 {
		return
	}
	// Climb only when the rate is what limits the process: a rate it does
	// not use proves nothing about the quota.
	if float64(l.sends.len()) < 0.9*r*w.Seconds() {
		return
	}
	target := r * (1 + l.opts.Increase)
	if l.learnt > 0 {
		if now.Sub(l.lastReject) >= time.Duration(l.opts.QuietWindows)*w {
			// Long quiet at the learnt quota: perhaps the quota grew. Probe
			// above it by one step; a 429 teaches the truth again.
			l.learnt *= 1 + l.opts.Increase
		}
		target = min(target, l.opts.Backoff*l.learnt)
	}
	if target > r {
		l.setRate(min(l.ceiling, target), now)
	}
}

// Cooldown pauses every caller for d from now, unless a cooldown already runs
// longer; the Spotify client calls it for every 429. It reports whether this
// call started a new cooldown (false when one was already running) and
// returns its end. With Options.Adaptive, a new cooldown also lowers the rate
// to just under what the last window let through.
func (l *Limiter) Cooldown(d time.Duration) (started bool, until time.Time) {
	l.mu.Lock()
	now := l.clock()
	started = !l.until.After(now)
	if end := now.Add(d); end.After(l.until) {
		l.until = end
	}
	if started {
		l.probing = true // after the cooldown, one call first
	}
	if l.opts.Adaptive {
		from := now.Add(-l.opts.Window)
		l.rejects.trim(from)
		l.rejects.push(now)
		// What got through in the last window is about what the window
		// allows this process, but only when the process sent enough for a
		// count to mean anything: a 429 to a nearly idle process (other
		// tasks spent the app's quota, or a restart during a penalty)
		// teaches nothing, and only cools down.
		sent := l.sends.trim(from)
		minSample := max(10, 0.05*l.ceiling*l.opts.Window.Seconds())
		if started && float64(sent) >= minSample {
			// The sends that drew a 429 did not get through.
			accepted := sent - l.rejects.len()
			l.learnt = float64(max(accepted, 1)) / l.opts.Window.Seconds()
			l.lastReject = now
			if r := l.opts.Backoff * l.learnt; r < float64(l.lim.Limit()) {
				l.setRate(r, now)
			}
		}
	}
	until, f := l.until, l.onCooldown
	l.mu.Unlock()
	if started && f != nil {
		f(d, until)
	}
	return started, until
}

// setRate changes the rate; l.mu is held.
func (l *Limiter) setRate(r float64, now time.Time) {
	floor := l.ceiling / 1000
	r = max(r, floor)
	l.lim.SetLimitAt(now, rate.Limit(r))
	l.bulk.SetLimitAt(now, rate.Limit(r*l.opts.BulkShare))
	l.lastChange = now
}

// times is a queue of instants in order, oldest first.
type times struct {
	ts   []time.Time
	head int
}

func (q *times) push(t time.Time) { q.ts = append(q.ts, t) }

func (q *times) len() int { return len(q.ts) - q.head }

// trim drops the instants before from and returns how many are left.
func (q *times) trim(from time.Time) int {
	for q.head < len(q.ts) && q.ts[q.head].Before(from) {
		q.head++
	}
	if q.head > 1024 && q.head > len(q.ts)/2 { // compact now and then, not per call
		q.ts = append(q.ts[:0], q.ts[q.head:]...)
		q.head = 0
	}
	return q.len()
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
