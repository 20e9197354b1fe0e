package spotify

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/sixpotify/top-tracks/internal/artistid"
)

// Errors for decisions, matched with errors.Is. Every error the Client returns
// starts with "spotify: " and names the artist; the sentinels below are the
// reason at its end.
var (
	// ErrInvalidArtist: the artist ID is not 22 characters of [0-9A-Za-z].
	// No request was sent. It also matches artistid.ErrInvalid.
	ErrInvalidArtist = fmt.Errorf("%w ID", artistid.ErrInvalid)
	// ErrNotFound: Spotify does not know the artist (404). Permanent.
	ErrNotFound = errors.New("not found (HTTP 404)")
	// ErrForbidden: Spotify refuses the endpoint to this app (403). Permanent
	// for the app, whatever the artist.
	ErrForbidden = errors.New("forbidden (HTTP 403): since February 2026 Spotify no longer serves " +
		"top tracks to apps in development mode; the app needs extended quota mode")
	// ErrUnauthorized: Spotify refused the credentials, or answered 401 to a
	// freshly fetched token.
	ErrUnauthorized = errors.New("unauthorized: check SPOTIFY_CLIENT_ID and SPOTIFY_CLIENT_SECRET")
	// ErrBadRequest: the request is malformed (400, or a market that is not
	// two upper-case letters, refused before sending). Permanent.
	ErrBadRequest = errors.New("bad request")
	// ErrServer is wrapped by a *StatusError for 5xx answers. Transient.
	ErrServer = errors.New("server error")
	// ErrTransport: the request failed or timed out below HTTP. Transient.
	ErrTransport = errors.New("transport error")
	// ErrBadResponse: the answer could not be read or decoded (Spotify
	// sometimes answers HTML, or truncates). Transient.
	ErrBadResponse = errors.New("malformed response")
)

// RateLimitError is a 429 answer. RetryAfter is Spotify's Retry-After (0 when
// it sent none); Reason is the reason in the error body, such as
// "QUOTA_EXCEEDED", when there is one.
type RateLimitError struct {
	RetryAfter time.Duration
	Reason     string
}

func (e *RateLimitError) Error() string {
	s := "rate limited (HTTP 429)"
	if e.RetryAfter > 0 {
		s += ", retry after " + e.RetryAfter.String()
	}
	if e.Reason != "" {
		s += ", reason " + e.Reason
	}
	return s
}

// StatusError is an answer with a status that has no sentinel of its own,
// 5xx included. Message is the message in Spotify's error body, if any.
type StatusError struct {
	Code    int
	Message string
}

func (e *StatusError) Error() string {
	s := "HTTP " + strconv.Itoa(e.Code)
	if t := http.StatusText(e.Code); t != "" {
		s += " " + t
	}
	if e.Message != "" {
		s += ": " + e.Message
	}
	return s
}

// Unwrap returns ErrServer for a 5xx status, so that errors.Is(err, ErrServer) holds.
func (e *StatusError) Unwrap() error {
	if e.Code >= 500 {
		return ErrServer
	}
	return nil
}

// Temporary reports whether err may go away by itself, so that the same
// request is worth sending again later: a rate limit, a 5xx, a transport
// failure or a malformed answer. It is false for a cancelled context.
func Temporary(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) {
		return false
	}
	var rl *RateLimitError
	return errors.As(err, &rl) ||
		errors.Is(err, ErrServer) ||
		errors.Is(err, ErrTransport) ||
		errors.Is(err, ErrBadResponse)
}

// parseRetryAfter reads a Retry-After value: whole seconds or an HTTP date.
// A missing or unreadable value is 0.
func parseRetryAfter(v string, now time.Time) time.Duration {
	if v == "" {
		return 0
	}
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		if n <= 0 {
			return 0
		}
		const maxSeconds = int64(24 * time.Hour / time.Second)
		return time.Duration(min(n, maxSeconds)) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		if d := t.Sub(now); d > 0 {
			return (d + time.Second - 1).Truncate(time.Second) // whole seconds, rounded up
		}
	}
	return 0
}
