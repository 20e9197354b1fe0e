package fakespotify

import (
	"net/http"
	"strconv"
	"sync"
	"time"
)

// RetryAfterWatch sits between a Spotify client and the stand-in, as the
// client's transport, and counts the requests the client sent after it had
// read a 429 while that 429's Retry-After still ran. The stand-in's own
// count (Stats.InsideRetryAfter) starts when it flushed the 429, so it also
// counts requests that were on their way before the client could read it;
// this one does not. Next is the transport it sends through.
type RetryAfterWatch struct {
	Next http.RoundTripper

	mu     sync.Mutex
	until  time.Time // the end of the latest Retry-After read
	inside int
}

// RoundTrip sends req through Next, counting it if it goes inside a
// Retry-After already read.
func (w *RetryAfterWatch) RoundTrip(req *http.Request) (*http.Response, error) {
	w.mu.Lock()
	if time.Now().Before(w.until) {
		w.inside++
	}
	w.mu.Unlock()
	resp, err := w.Next.RoundTrip(req)
	if err == nil && resp.StatusCode == http.StatusTooManyRequests {
		secs, _ := strconv.Atoi(resp.Header.Get("Retry-After"))
		w.mu.Lock()
		if until := time.Now().Add(time.Duration(secs) * time.Second); until.After(w.until) {
			w.until = until
		}
		w.mu.Unlock()
	}
	return resp, err
}

// SentInside returns how many requests went inside a Retry-After the client
// had read.
func (w *RetryAfterWatch) SentInside() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.inside
}
