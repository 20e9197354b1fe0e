package gate

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"
)

// breaker is the outage breaker. Failures that count toward an outage (see
// fault.go) are counted per cause: during a DynamoDB outage Spotify still
// answers, and its answers must not hide the store's failures. A cause's
// failures in a row, over enough distinct artists, open it. While open, one
// probe at a time is let through, the first after ProbeBase and each next
// after twice as long, up to ProbeCap or the window (probeCap); the first
// success of the cause that opened it closes it. The Gate's lock guards it.
//
// A streak is failures of one cause with no success between them; it opens
// the breaker once it holds enough failures, of enough artists (see
// Options).
type breaker struct {
	opts *Options

	streaks map[Cause]*streak

	open      bool
	cause     Cause
	lastErr   error
	openedAt  time.Time
	openedBy  []string // the artists whose failures opened it
	nextProbe time.Time
	backoff   time.Duration
	// probe is the probe out (nil: none): from Hold until its message is
	// handled. Its calls pass, its retries too (a Spotify that fails one
	// call in five is up: a probe judged by one call would keep it shut),
	// and only its own outcomes judge it: its first failure doubles the
	// backoff and times the next probe from then, and any success closes
	// the breaker.
	probe *Probe
	// window is the longest rolling window Spotify's answers have shown
	// (0: none yet; nil: the rate is not learnt), which bounds the wait
	// between probes.
	window func() time.Duration
}

// Probe is the outage breaker's one probe: the message a receive loop takes
// when Hold says one is due. Hand it to the message's work with Context, and
// call End once the message is handled.
type Probe struct {
	g      *Gate
	once   sync.Once
	failed []string // the artists that failed under it (of the outage's cause)
	judged bool     // a failure of the outage's cause timed the next probe
}

// Context returns ctx marked as the probe's: its calls pass the open
// breaker, and its outcomes, and only its, judge the probe.
func (p *Probe) Context(ctx context.Context) context.Context {
	return context.WithValue(ctx, probeKey{}, p)
}

// End ends the probe: the next follows a backoff after the probe's first
// failure (the backoff doubled), or after End if nothing failed. It may be
// called more than once.
func (p *Probe) End() {
	p.once.Do(func() {
		p.g.mu.Lock()
		p.g.breaker.endProbe(p, p.g.opts.Clock())
		p.g.mu.Unlock()
	})
}

// IsProbe reports whether ctx is marked as a probe's (see Probe.Context).
// Work done under it must be the probe's own: work another message started
// reports its outcomes under that message's ctx, and would leave the probe
// unjudged.
func IsProbe(ctx context.Context) bool { return probeOf(ctx) != nil }

type probeKey struct{}

// probeOf returns the probe ctx is marked with, or nil.
func probeOf(ctx context.Context) *Probe {
	p, _ := ctx.Value(probeKey{}).(*Probe)
	return p
}

// streak is one cause's failures in a row.
type streak struct {
	n       int
	artists map[string]struct{}
}

func (b *breaker) init(opts *Options) {
	b.opts = opts
	b.streaks = map[Cause]*streak{}
}

// claim hands out the probe when none is out.
func (b *breaker) claim(g *Gate) *Probe {
	if b.probe != nil {
		return nil
	}
	b.probe = &Probe{g: g}
	return b.probe
}

// next returns when the next probe may go. While one is out and that time
// has passed (the probe is unjudged, or still retrying after it failed), no
// other goes before it ends: a backoff from now is the estimate.
func (b *breaker) next(now time.Time) time.Time {
	if b.probe != nil && !b.nextProbe.After(now) {
		return now.Add(b.backoff)
	}
	return b.nextProbe
}

// passes reports whether a call of probe p (nil: none) may go now.
func (b *breaker) passes(p *Probe) bool {
	return !b.open || (p != nil && p == b.probe)
}

// paused returns the outage's pause at now, or nil when closed.
func (b *breaker) paused(now time.Time) *PausedError {
	if !b.open {
		return nil
	}
	return &PausedError{Reason: ReasonOutage, Until: b.next(now), Detail: b.describe(now)}
}

// endProbe ends probe p, if it is still the one out. A probe that failed
// set the next probe's time when it failed (its retries are not waited
// for: the next is due at once if they outlasted the backoff); one that no
// outcome judged (its message needed no call of the failing kind) is
// followed after the same backoff.
func (b *breaker) endProbe(p *Probe, now time.Time) {
	if b.probe != p {
		return
	}
	b.probe = nil
	if b.open && !p.judged {
		b.nextProbe = now.Add(b.backoff)
	}
}

// success records a success of cause for artist key under probe p (nil:
// none). It closes the breaker when cause opened it, and returns the
// artists to blame: when the probe's own artists failed and another
// artist's call then succeeded, Spotify is up and those artists, with the
// ones whose failures opened the breaker, failed on their own.
func (b *breaker) success(cause Cause, key string, p *Probe, now time.Time) (events []Event, blamed []string) {
	if s := b.streaks[cause]; s != nil {
		s.n = 0
		clear(s.artists)
	}
	if !b.open || b.cause != cause {
		return nil, nil
	}
	if p != nil && p == b.probe && len(p.failed) > 0 && !slices.Contains(p.failed, key) {
		blamed = append(slices.Clone(p.failed), b.openedBy...)
		slices.Sort(blamed)
		blamed = slices.Compact(blamed)
	}
	b.open, b.probe, b.openedBy = false, nil, nil
	return []Event{{Kind: EventBreakerClosed, Cause: cause, Lasted: now.Sub(b.openedAt)}}, blamed
}

// failure records a failure of cause for artist key; p is the probe the
// failed work belonged to (nil: none).
func (b *breaker) failure(cause Cause, key string, err error, p *Probe, now time.Time) []Event {
	s := b.streaks[cause]
	if s == nil {
		s = &streak{artists: map[string]struct{}{}}
		b.streaks[cause] = s
	}
	s.n++
	if key != "" {
		s.artists[key] = struct{}{}
	}
	b.lastErr = err
	if b.open {
		if p != nil && p == b.probe {
			if cause == b.cause && key != "" && !slices.Contains(p.failed, key) {
				p.failed = append(p.failed, key)
			}
			if !p.judged {
				// The probe failed: if of the outage's cause, the next
				// waits longer (once for the probe, whatever its retries
				// meet). Failures of work in flight when the breaker
				// opened change nothing.
				p.judged = true
				if cause == b.cause {
					b.backoff = min(2*b.backoff, b.probeCap())
				}
				b.nextProbe = now.Add(b.backoff)
			}
		}
		return nil
	}
	if s.n < b.opts.BreakerFailures || len(s.artists) < b.opts.BreakerArtists {
		return nil
	}
	b.open, b.cause, b.openedAt, b.probe = true, cause, now, nil
	b.openedBy = b.openedBy[:0]
	for k := range s.artists {
		b.openedBy = append(b.openedBy, k)
	}
	b.backoff = b.opts.ProbeBase
	b.nextProbe = now.Add(b.backoff)
	return []Event{{Kind: EventBreakerOpened, Cause: cause, Err: err}}
}

// probeCap is the longest wait between probes: ProbeCap, or the rolling
// window Spotify's answers have shown when that is shorter (never less than
// ProbeBase), so that the end of an outage is found within about one
// window and the rate is back within the next (with Spotify's 30 s window,
// a probe every 30 s at most).
func (b *breaker) probeCap() time.Duration {
	c := b.opts.ProbeCap
	if b.window != nil {
		if w := b.window(); w > 0 {
			c = min(c, max(w, b.opts.ProbeBase))
		}
	}
	return c
}

func (b *breaker) describe(now time.Time) string {
	return fmt.Sprintf("%s failing since %s (%v); next probe at %s", b.cause,
		b.openedAt.UTC().Format(time.RFC3339), errorText(b.lastErr), b.next(now).UTC().Format(time.RFC3339))
}
