package gate

import "time"

// Whose fault a failure is: decided here, once.
//
// An outcome counts toward an outage of Spotify when Spotify gave no usable
// answer for a reason that need not be the artist's (Failed: a transport
// error, a timeout, a 5xx, a malformed answer, a token endpoint that does
// not answer), and toward an outage of the store when the caller reports a
// store error (Report). Every other outcome is the service answering, and
// ends the cause's streak of failures: a 429, a 403 or a 404 says Spotify
// is up. A result the store rejects, or an invalid request, is the caller's
// to report as a success of the store (see worker/fetch.go): it is the
// artist's own fault.
//
// Failed is ambiguous on its own: a broken answer for every artist is an
// outage, a broken answer for one artist is that artist's. The breaker
// tells them apart by evidence across artists: one artist's failures never
// open it (it needs failures of several artists in a row), and when its
// probe fails and a call for an artist Spotify answered lately (a canary)
// gets through right after, Spotify is up: the breaker closes, and the
// artists whose failures opened it and failed the probe are blamed. A
// blamed artist's failures are its own: they never count toward an outage,
// and its messages follow the queue's redrive policy. Blame ends when the
// artist succeeds, or after blameMemory.
func countsTowardOutage(f Fault) bool { return f == Failed }

// speaksForService reports whether an outcome shows Spotify answering.
func speaksForService(f Fault) bool {
	return f == Answered || f == RateLimited || f == Forbidden || f == Unauthorized
}

const (
	blameMemory = time.Hour
	maxBlamed   = 10_000 // the most artists blamed at once; the oldest go first
)

// blame is the set of artists whose failures are their own.
type blame struct {
	since map[string]time.Time
}

func (b *blame) add(now time.Time, keys ...string) {
	if b.since == nil {
		b.since = map[string]time.Time{}
	}
	for _, k := range keys {
		if k == "" {
			continue
		}
		if len(b.since) >= maxBlamed {
			b.forgetOldest()
		}
		b.since[k] = now
	}
}

func (b *blame) blamed(key string, now time.Time) bool {
	at, ok := b.since[key]
	if ok && now.Sub(at) >= blameMemory {
		delete(b.since, key)
		return false
	}
	return ok
}

func (b *blame) forgive(key string) { delete(b.since, key) }

func (b *blame) forgetOldest() {
	var oldest string
	var at time.Time
	for k, t := range b.since {
		if oldest == "" || t.Before(at) {
			oldest, at = k, t
		}
	}
	delete(b.since, oldest)
}
