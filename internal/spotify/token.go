package spotify

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"sync"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"
)

const (
	// refreshBefore: a token is replaced this long before it expires, or
	// halfway through its life when that is sooner.
	refreshBefore = time.Minute
	// tokenTimeout bounds one token request, whatever the HTTP client's timeout.
	tokenTimeout = 30 * time.Second
)

// tokenSource caches one client-credentials access token. Callers that find
// no usable token share one request for a new one: the first starts it in a
// goroutine, which ends when the request does (within tokenTimeout), and each
// caller waits for it or for its own context, whichever ends first. A caller
// that gives up does not cancel the request for the others. A refresh, due
// before the token expires, runs the same way but nobody waits for it: the
// token is used until the new one arrives or it expires.
type tokenSource struct {
	conf    clientcredentials.Config
	client  *http.Client
	now     func() time.Time
	onToken func(error)

	mu        sync.Mutex
	tok       string    // "" when there is none
	refreshAt time.Time // zero: tok does not expire
	expiresAt time.Time // when tok stops working (zero: never)
	call      *tokenCall

	// After a failed request, callers get its error without a new request
	// until retryAt, so that a token endpoint that is down is asked once a
	// backoff (1s doubling to 30s), not once per caller.
	lastErr error
	retryAt time.Time
	backoff time.Duration
}

const (
	tokenBackoffMin = time.Second
	tokenBackoffMax = 30 * time.Second
)

// tokenCall is one token request in flight.
type tokenCall struct {
	done chan struct{} // closed when tok and err are set
	tok  string
	err  error
}

func newTokenSource(cfg Config, client *http.Client) *tokenSource {
	return &tokenSource{
		conf: clientcredentials.Config{
			ClientID:     cfg.ClientID,
			ClientSecret: cfg.ClientSecret,
			TokenURL:     cfg.TokenURL,
			// Spotify takes HTTP Basic auth; saying so saves the probe that
			// auto-detection sends after a refusal.
			AuthStyle: oauth2.AuthStyleInHeader,
		},
		client:  client,
		now:     time.Now,
		onToken: cfg.OnToken,
	}
}

// token returns a usable access token, fetching one if needed.
func (s *tokenSource) token(ctx context.Context) (string, error) {
	s.mu.Lock()
	if s.tok != "" && (s.refreshAt.IsZero() || s.now().Before(s.refreshAt)) {
		tok := s.tok
		s.mu.Unlock()
		return tok, nil
	}
	call := s.call
	if s.tok != "" && !s.expiresAt.IsZero() && s.now().Before(s.expiresAt) {
		// The refresh is due and the token still works: start the refresh
		// (unless one is under way, or a failed one's backoff runs) and go
		// on with the token, so that calls the gate has let through are not
		// held back by the token endpoint, however slow it answers.
		if call == nil && (s.lastErr == nil || !s.now().Before(s.retryAt)) {
			s.start()
		}
		tok := s.tok
		s.mu.Unlock()
		return tok, nil
	}
	if call == nil && s.lastErr != nil && s.now().Before(s.retryAt) {
		err := s.lastErr
		s.mu.Unlock()
		return "", err
	}
	if call == nil {
		call = s.start()
	}
	s.mu.Unlock()

	select {
	case <-call.done:
		return call.tok, call.err
	case <-ctx.Done():
		return "", ctx.Err()
	}
}

// start begins a token request in a goroutine; s.mu is held.
func (s *tokenSource) start() *tokenCall {
	s.call = &tokenCall{done: make(chan struct{})}
	go s.fetch(s.call)
	return s.call
}

// invalidate forgets tok after Spotify refused it, unless it was already
// replaced: many callers refused the same token cause one new request.
func (s *tokenSource) invalidate(tok string) {
	s.mu.Lock()
	if s.tok == tok {
		s.tok, s.refreshAt, s.expiresAt = "", time.Time{}, time.Time{}
	}
	s.mu.Unlock()
}

func (s *tokenSource) fetch(call *tokenCall) {
	ctx := context.WithValue(context.Background(), oauth2.HTTPClient, s.client)
	ctx, cancel := context.WithTimeout(ctx, tokenTimeout)
	defer cancel()

	start := s.now()
	t, err := s.conf.Token(ctx)
	if err != nil {
		err = tokenError(err, s.now())
	}

	s.mu.Lock()
	if err == nil {
		s.tok, s.refreshAt, s.expiresAt = t.AccessToken, refreshTime(t, start), expiryTime(t, start)
		call.tok = t.AccessToken
		s.lastErr, s.backoff = nil, 0
	} else {
		s.backoff = min(max(2*s.backoff, tokenBackoffMin), tokenBackoffMax)
		s.lastErr, s.retryAt = err, s.now().Add(s.backoff)
	}
	call.err = err
	s.call = nil
	s.mu.Unlock()

	// The hook runs before the waiters wake, so that a caller that got a
	// token has been counted.
	if s.onToken != nil {
		s.onToken(err)
	}
	close(call.done)
}

// refreshTime is when a token fetched at start is replaced (zero: never).
func refreshTime(t *oauth2.Token, start time.Time) time.Time {
	life, ok := lifetime(t)
	if !ok {
		return time.Time{}
	}
	return start.Add(life - min(refreshBefore, life/2))
}

// expiryTime is when a token fetched at start stops working (zero: never).
func expiryTime(t *oauth2.Token, start time.Time) time.Time {
	life, ok := lifetime(t)
	if !ok {
		return time.Time{}
	}
	return start.Add(life)
}

func lifetime(t *oauth2.Token) (time.Duration, bool) {
	if v, ok := t.Extra("expires_in").(float64); ok && v > 0 {
		return time.Duration(v * float64(time.Second)), true
	}
	if !t.Expiry.IsZero() {
		return time.Until(t.Expiry), true
	}
	return 0, false
}

// tokenError turns an error of the oauth2 package into one of ours. It keeps
// only the status and the RFC 6749 error code: an oauth2.RetrieveError holds
// the response body, which is not ours to print.
func tokenError(err error, now time.Time) error {
	const what = "fetching a token"
	var re *oauth2.RetrieveError
	var ue *url.Error
	switch {
	case errors.As(err, &re):
		status, header := 0, http.Header(nil)
		if re.Response != nil {
			status, header = re.Response.StatusCode, re.Response.Header
		}
		code := errorCode(re.ErrorCode)
		answer := fmt.Sprintf("HTTP %d", status)
		if code != "" {
			answer += " " + code
		}
		switch {
		case status == http.StatusTooManyRequests:
			return fmt.Errorf("%s: %w", what, &RateLimitError{RetryAfter: parseRetryAfter(header.Get("Retry-After"), now)})
		case status == http.StatusBadRequest || status == http.StatusUnauthorized || status == http.StatusForbidden:
			return fmt.Errorf("%s: %s: %w", what, answer, ErrUnauthorized)
		case status >= 200 && status < 300:
			return fmt.Errorf("%s: %s: %w", what, answer, ErrBadResponse)
		default:
			return fmt.Errorf("%s: %w", what, &StatusError{Code: status, Message: code})
		}
	case errors.As(err, &ue):
		return fmt.Errorf("%s: %w: %v", what, ErrTransport, ue.Err)
	default:
		// The oauth2 package's other errors are about the body; say no more.
		return fmt.Errorf("%s: %w: the token endpoint answered no usable token", what, ErrBadResponse)
	}
}

// errorCode returns code if it looks like an error code (RFC 6749's "error",
// or Spotify's "reason"), else "": such text is printed, so it must not be
// anything a server might echo.
func errorCode(code string) string {
	if len(code) > 64 {
		return ""
	}
	for i := 0; i < len(code); i++ {
		c := code[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '_', c == '-', c == '.':
		default:
			return ""
		}
	}
	return code
}
