package spotify

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
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
	// for the app, whatever the artist. Every 403 of top-tracks comes as a
	// *RefusedError, which matches it and says which refusal it is.
	ErrForbidden = errors.New("forbidden (HTTP 403)")
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

// Refusal is which 403 Spotify answered to top-tracks, told apart by the
// message of its error body. Its value is the metric label and log value.
type Refusal string

const (
	// RefusalDevelopmentMode: a Development Mode app, for which Spotify
	// removed GET /artists/{id}/top-tracks (new apps since 11 February
	// 2026, existing ones since 9 March 2026). Spotify's body is then
	// {"error":{"status":403,"message":"Forbidden"}}.
	RefusalDevelopmentMode Refusal = "development_mode"
	// RefusalPremiumLapsed: a Development Mode app whose owner's Premium
	// subscription lapsed ("Active premium subscription required for the
	// owner of the app").
	RefusalPremiumLapsed Refusal = "premium_lapsed"
	// RefusalOther: any other 403.
	RefusalOther Refusal = "other"
)

// Refusals are the known Refusal values, for metrics that start at 0.
var Refusals = []Refusal{RefusalDevelopmentMode, RefusalPremiumLapsed, RefusalOther}

// MigrationGuideURL is Spotify's page on what changed for Development Mode
// apps in February 2026, and how to ask for Extended Quota Mode.
const MigrationGuideURL = "https://developer.spotify.com/documentation/web-api/tutorials/february-2026-migration-guide"

// RefusedError is a 403 answer to top-tracks. It matches ErrForbidden.
// Message is the message of Spotify's error body (cut, never a token).
type RefusedError struct {
	Kind    Refusal
	Message string
}

func (e *RefusedError) Error() string {
	s := "forbidden (HTTP 403"
	if e.Message != "" {
		s += ": " + strconv.Quote(e.Message)
	}
	s += "): "
	switch e.Kind {
	case RefusalDevelopmentMode:
		s += "this app may not call top-tracks: Spotify removed it for Development Mode apps " +
			"(new apps since 11 February 2026, existing ones since 9 March 2026); the app needs Extended Quota Mode, see " + MigrationGuideURL
	case RefusalPremiumLapsed:
		s += "the Spotify Premium subscription of the app's owner has lapsed; a Development Mode app " +
			"works again once its owner resubscribes"
	default:
		s += "Spotify refuses top-tracks to this app"
	}
	return s
}

// Unwrap returns ErrForbidden, so that errors.Is(err, ErrForbidden) holds.
func (e *RefusedError) Unwrap() error { return ErrForbidden }

// refusal classifies a 403 by the message of its error body.
func refusal(message string) *RefusedError {
	m := strings.ToLower(strings.TrimSpace(message))
	kind := RefusalOther
	switch {
	case strings.Contains(m, "premium"):
		kind = RefusalPremiumLapsed
	case m == "forbidden", strings.Contains(m, "development mode"), strings.Contains(m, "not available"):
		// A removed endpoint answers the bare "Forbidden".
		kind = RefusalDevelopmentMode
	}
	return &RefusedError{Kind: kind, Message: message}
}

// RefusalOf returns the kind of the 403 err carries, or "" when err is not
// one.
func RefusalOf(err error) Refusal {
	var re *RefusedError
	if errors.As(err, &re) {
		return re.Kind
	}
	if errors.Is(err, ErrForbidden) {
		return RefusalOther
	}
	return ""
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
