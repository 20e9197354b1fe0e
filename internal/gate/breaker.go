package gate

import (
	"fmt"
	"time"
)

// breaker is the outage breaker. Failures are counted per cause: during a
// DynamoDB outage Spotify still answers, and its answers must not hide the
// store's failures. A cause's failures in a row, over enough distinct
// artists, open it: one artist that fails while others succeed is that
// artist's own failure, and follows the queue's redrive policy. While open,
// one probe at a time is let through, the first after ProbeBase and each
// next after twice as long, up to ProbeCap; the first success of the cause
// that opened it closes it. The Gate's lock guards it.
type breaker struct {
	opts *Options

	streaks map[Cause]*streak

	open      bool
	cause     Cause
	lastErr   error
	openedAt  time.Time
	nextProbe time.Time
	backoff   time.Duration
	probeOut  bool // a probe is in flight
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

// endProbe ends a probe that no report resolved (its message needed no
// call of the failing kind): the next probe follows after the same backoff.
func (b *breaker) endProbe(now time.Time) {
	if b.open && b.probeOut {
		b.probeOut = false
		b.nextProbe = now.Add(b.backoff)
	}
}

// success records a success of cause; it closes the breaker when cause
// opened it.
func (b *breaker) success(cause Cause, now time.Time) []Event {
	if s := b.streaks[cause]; s != nil {
		s.n = 0
		clear(s.artists)
	}
	if !b.open || b.cause != cause {
		return nil
	}
	b.open, b.probeOut = false, false
	return []Event{{Kind: EventBreakerClosed, Cause: cause, Lasted: now.Sub(b.openedAt)}}
}

// failure records a failure of cause for artist key.
func (b *breaker) failure(cause Cause, key string, err error, now time.Time) []Event {
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
		if b.probeOut {
			// The probe failed: wait longer before the next. (Failures of
			// work in flight when it opened change nothing.)
			b.probeOut = false
			b.backoff = min(2*b.backoff, b.opts.ProbeCap)
			b.nextProbe = now.Add(b.backoff)
		}
		return nil
	}
	if s.n < b.opts.BreakerFailures || len(s.artists) < b.opts.BreakerArtists {
		return nil
	}
	b.open, b.cause, b.openedAt = true, cause, now
	b.backoff = b.opts.ProbeBase
	b.nextProbe = now.Add(b.backoff)
	return []Event{{Kind: EventBreakerOpened, Cause: cause, Err: err}}
}

func (b *breaker) describe() string {
	return fmt.Sprintf("%s failing since %s (%v); next probe at %s", b.cause,
		b.openedAt.UTC().Format(time.RFC3339), errorText(b.lastErr), b.nextProbe.UTC().Format(time.RFC3339))
}
