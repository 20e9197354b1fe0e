package gate

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// Pause reasons, in PausedError, Ready and the worker's metrics.
const (
	ReasonCooldown = "cooldown" // a 429's Retry-After, short enough to sleep through
	ReasonPenalty  = "penalty"  // a 429 that closes the API for long, or QUOTA_EXCEEDED
	ReasonRefused  = "refused"  // 403, or rejected credentials
	ReasonOutage   = "outage"   // the outage breaker is open
)

// NoRetryAfter is the pause after a 429 that carries no Retry-After: the
// rate controller learns from it as from any 429, and one second later the
// lead call tries again.
const NoRetryAfter = time.Second

// PausedError is how a pause reaches the caller: why, and until when. Work
// that meets one gives its message back until Until without spending a
// delivery.
type PausedError struct {
	Reason string
	Until  time.Time
	Detail string
}

func (e *PausedError) Error() string {
	return fmt.Sprintf("not calling Spotify until %s (%s): %s", e.Until.UTC().Format(time.RFC3339), e.Reason, e.Detail)
}

// IsPaused reports whether err is (or wraps) a *PausedError, and returns it.
func IsPaused(err error) (*PausedError, bool) {
	var pe *PausedError
	ok := errors.As(err, &pe)
	return pe, ok
}

// pauses holds the pauses Spotify's answers begin, each a value with a
// reason and an end: the throttle (a cooldown or a penalty) and the
// refusal. A longer pause of a kind replaces a shorter one; a pause begins
// only when none of its kind is running, and only then is it announced.
type pauses struct {
	throttle PausedError
	refusal  PausedError
}

// throttled takes a 429 at now and reports whether it began a pause.
func (p *pauses) throttled(now time.Time, retryAfter time.Duration, reason string, maxWait time.Duration) (started bool) {
	started = !p.throttle.Until.After(now)
	end := now.Add(retryAfter)
	if !end.After(p.throttle.Until) {
		return started
	}
	p.throttle = PausedError{Reason: ReasonCooldown, Until: end, Detail: "rate limited by Spotify"}
	if reason == QuotaExceeded || retryAfter > maxWait {
		p.throttle.Reason = ReasonPenalty
		p.throttle.Detail = "Spotify paused this app"
		if reason != "" {
			p.throttle.Detail += " (" + reason + ")"
		}
	}
	return started
}

// refused takes a refusal at now, pausing for d, and reports whether it
// began a pause.
func (p *pauses) refused(now time.Time, d time.Duration, err error) (started bool) {
	started = !p.refusal.Until.After(now)
	if end := now.Add(d); end.After(p.refusal.Until) {
		p.refusal.Until = end
	}
	p.refusal.Reason, p.refusal.Detail = ReasonRefused, errorText(err)
	return started
}

// holding returns the pause that holds calls back at now, a refusal before
// a throttle, or nil.
func (p *pauses) holding(now time.Time) *PausedError {
	switch {
	case p.refusal.Until.After(now):
		pe := p.refusal
		return &pe
	case p.throttle.Until.After(now):
		pe := p.throttle
		return &pe
	}
	return nil
}

// Verdict keeps the pause that the latest call of one piece of work met:
// the one its answer began (a 429's, a refusal's), the outage its failure
// was part of, or the pause Wait returned or was sleeping through when the
// work's context ended. nil when the latest call met none. The work's error
// carries it, so that whoever settles the work decides from the error
// alone, not by asking the gate again later.
type Verdict struct {
	mu    sync.Mutex
	pause *PausedError
}

type verdictKey struct{}

// WithVerdict returns ctx carrying a new Verdict, and the Verdict.
func WithVerdict(ctx context.Context) (context.Context, *Verdict) {
	v := &Verdict{}
	return context.WithValue(ctx, verdictKey{}, v), v
}

func verdictOf(ctx context.Context) *Verdict {
	v, _ := ctx.Value(verdictKey{}).(*Verdict)
	return v
}

func (v *Verdict) set(p *PausedError) {
	if v == nil {
		return
	}
	v.mu.Lock()
	v.pause = p
	v.mu.Unlock()
}

// Pause returns the pause the latest call met, or nil.
func (v *Verdict) Pause() *PausedError {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.pause
}

func errorText(err error) string {
	if err == nil {
		return "see the log"
	}
	return err.Error()
}
