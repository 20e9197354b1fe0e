package gate

import "time"

// Fault is what an Outcome says about the app's standing with Spotify.
type Fault int

const (
	// Answered: Spotify answered (200, 404, 400, or a 401 to a stale token).
	Answered Fault = iota
	// RateLimited: 429.
	RateLimited
	// Forbidden: 403 for top-tracks.
	Forbidden
	// Unauthorized: the credentials were rejected (by the token endpoint, or
	// a 401 to a fresh token).
	Unauthorized
	// Failed: no usable answer: a transport error, a timeout, a 5xx, a
	// malformed answer, a token endpoint that does not answer. Whether it
	// counts toward an outage or is the artist's own is fault.go's to say.
	Failed
	// Abandoned: the caller gave up (its context ended); nothing is learnt.
	Abandoned
	// Unsent: the caller did not send the call after all, since a pause
	// began after Wait let it through (see StillClear); nothing is learnt,
	// and the caller waits again.
	Unsent
)

// QuotaExceeded is Spotify's reason on a 429 that closes the API until its
// quota is restored: a penalty, however short its Retry-After.
const QuotaExceeded = "QUOTA_EXCEEDED"

// Outcome is how one call that Wait let through went.
type Outcome struct {
	Fault      Fault
	Status     int           // the HTTP status; 0 when no answer came
	RetryAfter time.Duration // of a 429 (0: none sent)
	Reason     string        // Spotify's reason, such as QUOTA_EXCEEDED
	Key        string        // the artist, to tell one artist's failures from an outage's
	Err        error         // for Failed and the refusals: why
}

// Cause names what an outage is of.
type Cause string

const (
	CauseSpotify Cause = "spotify" // the Web API or its token endpoint
	CauseStore   Cause = "store"   // DynamoDB (or the embedded store)
)
