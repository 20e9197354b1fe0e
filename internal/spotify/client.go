package spotify

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/sixpotify/top-tracks/internal/artistid"
	"github.com/sixpotify/top-tracks/internal/clip"
	"github.com/sixpotify/top-tracks/internal/gate"
	"github.com/sixpotify/top-tracks/internal/market"
)

const (
	// DefaultTimeout bounds one request of the default HTTP client, body included.
	DefaultTimeout = 10 * time.Second
	// maxBody bounds the body of a 200 answer; ten tracks take some 40 KiB.
	maxBody = 4 << 20
	// maxErrorBody bounds what is read of any other answer.
	maxErrorBody = 64 << 10
)

// Gate admits each API request of a process and is told how it went;
// *gate.Gate is one. Wait returns done, which the client calls exactly once
// with the request's outcome.
type Gate interface {
	Wait(ctx context.Context) (done func(gate.Outcome), err error)
	// StillClear is asked just before each send: false means a pause began
	// after Wait let the call through, and the client reports the call
	// gate.Unsent and waits again.
	StillClear() bool
}

// MinCooldown is the shortest pause a 429 starts, for answers with no
// Retry-After (or Retry-After: 0).
const MinCooldown = time.Second

// Config configures a Client. APIURL, TokenURL, ClientID and ClientSecret are
// required; the rest may be left zero.
type Config struct {
	APIURL       string // base of the Web API, such as https://api.spotify.com/v1
	TokenURL     string // such as https://accounts.spotify.com/api/token
	ClientID     string
	ClientSecret string

	// HTTPClient sends every request; nil means a client with DefaultTimeout
	// and enough idle connections per host for 64 requests at once.
	HTTPClient *http.Client
	// Gate is waited on before each API request, retries included, and told
	// how each went (a failed token request included). Nil means no pacing.
	Gate Gate
	// OnResponse, if set, is called after each API request with its status
	// (0 when no response came) and how long it took. It must not block.
	OnResponse func(status int, elapsed time.Duration)
	// OnToken, if set, is called after each token request with its error
	// (nil on success). It must not block.
	OnToken func(err error)
}

// Client fetches top tracks. It is safe for concurrent use.
type Client struct {
	apiURL     string
	http       *http.Client
	gate       Gate
	onResponse func(status int, elapsed time.Duration)
	tokens     *tokenSource
	now        func() time.Time
}

// New returns a Client for cfg, or an error naming, by its environment
// variable, every setting at fault.
func New(cfg Config) (*Client, error) {
	apiURL, err1 := checkURL("SPOTIFY_API_URL", cfg.APIURL)
	tokenURL, err2 := checkURL("SPOTIFY_TOKEN_URL", cfg.TokenURL)
	errs := []error{err1, err2}
	if strings.TrimSpace(cfg.ClientID) == "" {
		errs = append(errs, errors.New("SPOTIFY_CLIENT_ID is empty"))
	}
	if cfg.ClientSecret == "" {
		errs = append(errs, errors.New("SPOTIFY_CLIENT_SECRET is empty"))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}

	hc := cfg.HTTPClient
	if hc == nil {
		hc = DefaultHTTPClient()
	}
	cfg.TokenURL = tokenURL
	return &Client{
		apiURL:     apiURL,
		http:       hc,
		gate:       cfg.Gate,
		onResponse: cfg.OnResponse,
		tokens:     newTokenSource(cfg, hc),
		now:        time.Now,
	}, nil
}

// checkURL returns raw without a trailing slash if it is an absolute http or
// https URL with no query. The error never repeats a password the URL holds.
func checkURL(name, raw string) (string, error) {
	if raw == "" {
		return "", fmt.Errorf("%s is empty", name)
	}
	u, err := url.Parse(raw)
	if err != nil {
		return "", fmt.Errorf("%s is not a URL", name)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", fmt.Errorf("%s must be an http:// or https:// URL, not %q", name, u.Redacted())
	}
	if u.RawQuery != "" || u.Fragment != "" || u.ForceQuery {
		return "", fmt.Errorf("%s must have no query or fragment: %q", name, u.Redacted())
	}
	return strings.TrimRight(raw, "/"), nil
}

// DefaultHTTPClient is the client a Config without HTTPClient gets: a
// timeout of DefaultTimeout, and enough idle connections for a worker's
// artists in flight. A command wraps its Transport (in tracing
// instrumentation, say) and hands it back as Config.HTTPClient.
func DefaultHTTPClient() *http.Client {
	return &http.Client{
		Timeout: DefaultTimeout,
		Transport: &http.Transport{
			Proxy:                 http.ProxyFromEnvironment,
			DialContext:           (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			ForceAttemptHTTP2:     true,
			MaxIdleConns:          128,
			MaxIdleConnsPerHost:   64,
			IdleConnTimeout:       90 * time.Second,
			TLSHandshakeTimeout:   5 * time.Second,
			ResponseHeaderTimeout: DefaultTimeout,
			ExpectContinueTimeout: time.Second,
		},
	}
}

// TopTracks returns the artist's top tracks in market (an ISO 3166-1 alpha-2
// code such as "US"), in Spotify's order. An artist ID that is not valid, or
// a market that is not two upper-case letters, is refused before any request.
// A 401 is answered by fetching a new token and trying once more.
func (c *Client) TopTracks(ctx context.Context, artistID, market string) ([]Track, error) {
	tracks, _, err := c.TopTracksAt(ctx, artistID, market)
	return tracks, err
}

// TopTracksAt is TopTracks, and also returns when the request that was
// answered was sent (also with ErrNotFound; zero when nothing was answered):
// the moment Spotify's answer describes. A slow answer to
// an earlier request carries the earlier time, so that it never passes for
// newer than the answer to a later request.
func (c *Client) TopTracksAt(ctx context.Context, artistID, mkt string) ([]Track, time.Time, error) {
	if !artistid.Valid(artistID) {
		return nil, time.Time{}, fmt.Errorf("spotify: top tracks of %q: %w", clip.String(artistID, 40), ErrInvalidArtist)
	}
	if !market.Valid(mkt) {
		return nil, time.Time{}, fmt.Errorf("spotify: top tracks of %s: market %q is not two upper-case letters: %w",
			artistID, clip.String(mkt, 10), ErrBadRequest)
	}
	tracks, sent, err := c.topTracks(ctx, artistID, mkt)
	if err != nil {
		return nil, sent, fmt.Errorf("spotify: top tracks of %s: %w", artistID, err)
	}
	return tracks, sent, nil
}

func (c *Client) topTracks(ctx context.Context, artistID, market string) ([]Track, time.Time, error) {
	// Both parts are validated: nothing here needs escaping.
	u := c.apiURL + "/artists/" + artistID + "/top-tracks?market=" + market
	for refreshed := false; ; refreshed = true {
		a, err := c.attempt(ctx, u, artistID, refreshed)
		if err != nil {
			return nil, time.Time{}, err
		}
		tok, sent, status, header, body := a.tok, a.sent, a.status, a.header, a.body
		switch status {
		case http.StatusOK:
			return a.tracks, sent, a.decodeErr
		case http.StatusUnauthorized:
			if refreshed {
				return nil, time.Time{}, fmt.Errorf("HTTP 401 with a new token: %w", ErrUnauthorized)
			}
			c.tokens.invalidate(tok)
			continue
		case http.StatusTooManyRequests:
			retryAfter := parseRetryAfter(header.Get("Retry-After"), c.now())
			_, reason := errorBody(body, tok)
			return nil, time.Time{}, &RateLimitError{RetryAfter: retryAfter, Reason: reason}
		case http.StatusNotFound:
			return nil, sent, ErrNotFound
		case http.StatusForbidden:
			msg, _ := errorBody(body, tok)
			return nil, time.Time{}, refusal(msg)
		case http.StatusBadRequest:
			msg, _ := errorBody(body, tok)
			if msg == "" {
				return nil, time.Time{}, fmt.Errorf("%w (HTTP 400)", ErrBadRequest)
			}
			return nil, time.Time{}, fmt.Errorf("%w (HTTP 400): %s", ErrBadRequest, msg)
		default:
			msg, _ := errorBody(body, tok)
			return nil, time.Time{}, &StatusError{Code: status, Message: msg}
		}
	}
}

// Warm fetches the access token now, through the gate, so that rejected
// credentials pause the gate (and fail readiness) before the first message
// arrives, and a token endpoint that does not answer counts towards its
// outage breaker. It returns the token request's error.
func (c *Client) Warm(ctx context.Context) error {
	done := func(gate.Outcome) {}
	if c.gate != nil {
		d, err := c.gate.Wait(ctx)
		if err != nil {
			return fmt.Errorf("spotify: waiting for the gate: %w", err)
		}
		done = d
	}
	_, err := c.tokens.token(ctx)
	o := gate.Outcome{Fault: gate.Answered, Err: err}
	switch {
	case ctx.Err() != nil:
		o.Fault = gate.Abandoned
	case errors.Is(err, ErrUnauthorized):
		o.Fault = gate.Unauthorized
	case err != nil:
		o.Fault = gate.Failed
	}
	done(o)
	if err != nil {
		return fmt.Errorf("spotify: %w", err)
	}
	return nil
}

// answer is what one request got.
type answer struct {
	tok       string
	sent      time.Time
	status    int
	header    http.Header
	body      []byte
	tracks    []Track // a 200's, decoded
	decodeErr error
}

// attempt waits for the gate and sends one request, then tells the gate
// how it went, once: refreshed says whether a 401 would be to a fresh token.
func (c *Client) attempt(ctx context.Context, u, artistID string, refreshed bool) (answer, error) {
	for {
		done := func(gate.Outcome) {}
		if c.gate != nil {
			d, err := c.gate.Wait(ctx)
			if err != nil {
				if ctx.Err() != nil {
					err = ctx.Err()
				}
				return answer{}, fmt.Errorf("waiting for the gate: %w", err)
			}
			done = d
		}
		a, held, err := c.send(ctx, u, done)
		if held {
			continue // a pause began on the way: wait for the gate again
		}
		done(outcome(ctx, artistID, refreshed, a, err, c.now()))
		return a, err
	}
}

// send sends one request the gate let through, unless a pause began since
// (another call's 429, or a refusal, read while this one fetched its token
// or waited for a core): then it reports the call Unsent to done and returns
// held true, so that nothing goes out inside a Retry-After this process has
// already read.
func (c *Client) send(ctx context.Context, u string, done func(gate.Outcome)) (a answer, held bool, err error) {
	if a.tok, err = c.tokens.token(ctx); err != nil {
		return a, false, err
	}
	if c.gate != nil && !c.gate.StillClear() {
		done(gate.Outcome{Fault: gate.Unsent})
		return answer{}, true, nil
	}
	a.sent = c.now()
	buf := getBody()
	defer putBody(buf)
	a.status, a.header, err = c.get(ctx, u, a.tok, buf)
	switch {
	case err != nil:
	case a.status == http.StatusOK:
		// Decoded from the pooled buffer; the tracks own their strings.
		a.tracks, a.decodeErr = decodeTopTracks(buf.Bytes())
	default:
		a.body = bytes.Clone(buf.Bytes())
	}
	return a, false, err
}

// bodies holds the buffers answers are read into, so that each request does
// not grow a new one to the answer's size (some 40 KiB for ten tracks).
var bodies = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// maxPooledBody is the largest buffer put back in the pool: one grown by an
// unusually large answer is left to the collector.
const maxPooledBody = 256 << 10

func getBody() *bytes.Buffer {
	b := bodies.Get().(*bytes.Buffer)
	b.Reset()
	return b
}

func putBody(b *bytes.Buffer) {
	if b.Cap() <= maxPooledBody {
		bodies.Put(b)
	}
}

// outcome is what one request tells the gate.
func outcome(ctx context.Context, artistID string, refreshed bool, a answer, err error, now time.Time) gate.Outcome {
	status, header, body := a.status, a.header, a.body
	o := gate.Outcome{Status: status, Key: artistID, Err: err}
	var rl *RateLimitError
	switch {
	case ctx.Err() != nil:
		o.Fault = gate.Abandoned
	case errors.As(err, &rl): // the token endpoint's 429
		o.Fault, o.RetryAfter = gate.RateLimited, rl.RetryAfter
	case errors.Is(err, ErrUnauthorized):
		o.Fault = gate.Unauthorized
	case err != nil:
		o.Fault = gate.Failed
	case status == http.StatusTooManyRequests:
		o.Fault = gate.RateLimited
		o.RetryAfter = parseRetryAfter(header.Get("Retry-After"), now)
		_, o.Reason = errorBody(body, "")
	case status == http.StatusForbidden:
		msg, _ := errorBody(body, a.tok)
		o.Fault, o.Err = gate.Forbidden, refusal(msg)
	case status == http.StatusUnauthorized && refreshed:
		o.Fault, o.Err = gate.Unauthorized, ErrUnauthorized
	case status >= 500 || (status != http.StatusOK && status != http.StatusNotFound &&
		status != http.StatusBadRequest && status != http.StatusUnauthorized):
		o.Fault, o.Err = gate.Failed, &StatusError{Code: status}
	case status == http.StatusOK && a.decodeErr != nil:
		o.Fault, o.Err = gate.Failed, a.decodeErr
	}
	return o
}

// get sends one GET, reads the answer's body into buf (cut at maxErrorBody
// unless the status is 200) and returns its status and header. The body is
// always drained and closed, so that the connection is reused.
func (c *Client) get(ctx context.Context, u, tok string, buf *bytes.Buffer) (int, http.Header, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return 0, nil, fmt.Errorf("%w: cannot build the request", ErrTransport)
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Accept", "application/json")

	start := time.Now()
	resp, err := c.http.Do(req)
	if err != nil {
		c.observe(0, time.Since(start))
		return 0, nil, transportError(ctx, err)
	}
	defer func() {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxErrorBody))
		_ = resp.Body.Close()
	}()

	limit := int64(maxErrorBody)
	if resp.StatusCode == http.StatusOK {
		limit = maxBody
		if n := resp.ContentLength; n > 0 && n <= maxBody {
			buf.Grow(int(n) + bytes.MinRead)
		}
	}
	_, err = buf.ReadFrom(io.LimitReader(resp.Body, limit+1))
	c.observe(resp.StatusCode, time.Since(start))
	if err != nil {
		return 0, nil, transportError(ctx, err)
	}
	if int64(buf.Len()) > limit {
		if resp.StatusCode == http.StatusOK {
			return 0, nil, fmt.Errorf("%w: body larger than %d bytes", ErrBadResponse, maxBody)
		}
		buf.Truncate(int(limit))
	}
	return resp.StatusCode, resp.Header, nil
}

func (c *Client) observe(status int, elapsed time.Duration) {
	if c.onResponse != nil {
		c.onResponse(status, elapsed)
	}
}

// transportError is ctx's error if ctx ended, else err as an ErrTransport
// without the request's URL.
func transportError(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	// %v, not %w: a client timeout must not look like the caller's deadline.
	return fmt.Errorf("%w: %v", ErrTransport, err)
}

// decodeTopTracks decodes the body of a 200 answer: {"tracks": [...]}.
func decodeTopTracks(body []byte) ([]Track, error) {
	var v struct {
		Tracks *[]wireTrack `json:"tracks"`
	}
	if err := json.Unmarshal(body, &v); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadResponse, err)
	}
	if v.Tracks == nil {
		return nil, fmt.Errorf("%w: no tracks", ErrBadResponse)
	}
	tracks := make([]Track, len(*v.Tracks))
	for i, w := range *v.Tracks {
		if w.ID == "" {
			return nil, fmt.Errorf("%w: track %d has no id", ErrBadResponse, i+1)
		}
		tracks[i] = w.Track
		tracks[i].ISRC = w.ExternalIDs.ISRC
	}
	return tracks, nil
}

// errorBody returns the message and reason of Spotify's error body,
// {"error": {"status": 429, "message": "...", "reason": "..."}}, or "" for
// each when the body is not one. Neither ever quotes the token.
func errorBody(body []byte, tok string) (message, reason string) {
	var v struct {
		Error struct {
			Message string `json:"message"`
			Reason  string `json:"reason"`
		} `json:"error"`
	}
	if json.Unmarshal(body, &v) != nil {
		return "", ""
	}
	msg := strings.Map(func(r rune) rune {
		if r < ' ' || r == 0x7f {
			return ' '
		}
		return r
	}, strings.ToValidUTF8(v.Error.Message, "?"))
	reason = errorCode(v.Error.Reason)
	if tok != "" {
		msg = strings.ReplaceAll(msg, tok, "[token]")
		if strings.Contains(reason, tok) {
			reason = ""
		}
	}
	return clip.String(msg, 200), reason
}
