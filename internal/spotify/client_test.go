package spotify_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sixpotify/top-tracks/internal/gate"

	"github.com/google/go-cmp/cmp"

	"github.com/sixpotify/top-tracks/internal/artistid"
	"github.com/sixpotify/top-tracks/internal/fakespotify"
	"github.com/sixpotify/top-tracks/internal/spotify"
)

func TestTopTracks(t *testing.T) {
	e := newEnv(t, fakespotify.Config{}, envOptions{})
	ctx := context.Background()

	got, err := e.client.TopTracks(ctx, artistA, "US")
	if err != nil {
		t.Fatalf("TopTracks: %v", err)
	}
	want := fakespotify.Tracks(artistA, 0, 10)
	if len(got) != 10 {
		t.Errorf("got %d tracks, want 10", len(got))
	}
	if diff := cmp.Diff(got, want); diff != "" {
		t.Errorf("tracks (-got +want):\n%s", diff)
	}

	// A new generation at Spotify is a new answer.
	e.fake.SetGeneration(artistA, 1)
	got, err = e.client.TopTracks(ctx, artistA, "SE")
	if err != nil {
		t.Fatalf("TopTracks after SetGeneration: %v", err)
	}
	if diff := cmp.Diff(got, fakespotify.Tracks(artistA, 1, 10)); diff != "" {
		t.Errorf("tracks of generation 1 (-got +want):\n%s", diff)
	}

	if diff := cmp.Diff(e.responseStatuses(), []int{200, 200}); diff != "" {
		t.Errorf("OnResponse statuses (-got +want):\n%s", diff)
	}
	if got, want := e.waits.Load(), int64(2); got != want {
		t.Errorf("Limiter.Wait calls = %d, want %d", got, want)
	}
	st := e.fake.Stats()
	if got, want := st.TokenRequests, int64(1); got != want {
		t.Errorf("token requests = %d, want %d", got, want)
	}
	if diff := cmp.Diff(st.PerArtist, map[string]int{artistA: 2}); diff != "" {
		t.Errorf("stand-in's OK answers per artist (-got +want):\n%s", diff)
	}
}

func TestTopTracksFailures(t *testing.T) {
	tests := []struct {
		name   string
		fake   fakespotify.Config
		setup  func(t *testing.T, e *env) // before the call under test
		artist string
		// The error must match each of these.
		wantIs        []error
		wantRateLimit *spotify.RateLimitError
		wantStatus    *spotify.StatusError
		wantTemporary bool
		wantText      string // a part of the error's text
	}{
		{
			name:     "404 unknown artist",
			artist:   artistUnknown,
			wantIs:   []error{spotify.ErrNotFound},
			wantText: artistUnknown,
		},
		{
			name:     "403",
			setup:    failNext(1, http.StatusForbidden),
			wantIs:   []error{spotify.ErrForbidden},
			wantText: "Development Mode",
		},
		{
			name:     "400",
			setup:    failNext(1, http.StatusBadRequest),
			wantIs:   []error{spotify.ErrBadRequest},
			wantText: "Bad Request",
		},
		{
			name:          "500",
			setup:         failNext(1, http.StatusInternalServerError),
			wantIs:        []error{spotify.ErrServer},
			wantStatus:    &spotify.StatusError{Code: 500, Message: "Internal Server Error"},
			wantTemporary: true,
		},
		{
			name:          "502 with an HTML body",
			setup:         failNext(1, http.StatusBadGateway),
			wantIs:        []error{spotify.ErrServer},
			wantStatus:    &spotify.StatusError{Code: 502},
			wantTemporary: true,
		},
		{
			name:          "503",
			setup:         failNext(1, http.StatusServiceUnavailable),
			wantIs:        []error{spotify.ErrServer},
			wantStatus:    &spotify.StatusError{Code: 503, Message: "Service Unavailable"},
			wantTemporary: true,
		},
		{
			name:       "418 is neither permanent sentinel nor transient",
			setup:      failNext(1, http.StatusTeapot),
			wantStatus: &spotify.StatusError{Code: 418, Message: "I'm a teapot"},
		},
		{
			name:          "429 without Retry-After",
			setup:         failNext(1, http.StatusTooManyRequests),
			wantRateLimit: &spotify.RateLimitError{},
			wantTemporary: true,
		},
		{
			name: "429 with Retry-After from the rolling window",
			fake: fakespotify.Config{Limit: 1, Window: 30 * time.Second, Clock: newFakeClock().Now},
			setup: func(t *testing.T, e *env) {
				if _, err := e.client.TopTracks(context.Background(), artistB, "US"); err != nil {
					t.Fatalf("first call: %v", err)
				}
			},
			wantRateLimit: &spotify.RateLimitError{RetryAfter: 30 * time.Second},
			wantTemporary: true,
			wantText:      "retry after 30s",
		},
		{
			name:     "401 twice",
			setup:    failNext(2, http.StatusUnauthorized),
			wantIs:   []error{spotify.ErrUnauthorized},
			wantText: "SPOTIFY_CLIENT_SECRET",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, tt.fake, envOptions{})
			if tt.setup != nil {
				tt.setup(t, e)
			}
			artist := tt.artist
			if artist == "" {
				artist = artistA
			}
			tracks, err := e.client.TopTracks(context.Background(), artist, "US")
			if err == nil {
				t.Fatalf("TopTracks = %d tracks, want an error", len(tracks))
			}
			if tracks != nil {
				t.Errorf("TopTracks returned %d tracks with its error", len(tracks))
			}
			checkError(t, err, tt.wantIs, tt.wantTemporary, tt.wantText)
			checkAs(t, err, tt.wantRateLimit)
			checkAs(t, err, tt.wantStatus)
			if !strings.HasPrefix(err.Error(), "spotify: top tracks of "+artist+": ") {
				t.Errorf("error %q does not start with the artist", err)
			}
			e.checkNoSecrets(t, err)
		})
	}
}

func failNext(n, status int) func(*testing.T, *env) {
	return func(_ *testing.T, e *env) { e.fake.FailNext(n, status) }
}

// TestRateLimitAnswers reads 429 answers the stand-in does not send.
func TestRateLimitAnswers(t *testing.T) {
	clock := newFakeClock()
	tests := []struct {
		name       string
		retryAfter string
		body       string
		want       *spotify.RateLimitError
	}{
		{
			name:       "seconds and QUOTA_EXCEEDED",
			retryAfter: "7",
			body:       `{"error":{"status":429,"message":"quota","reason":"QUOTA_EXCEEDED"}}`,
			want:       &spotify.RateLimitError{RetryAfter: 7 * time.Second, Reason: "QUOTA_EXCEEDED"},
		},
		{
			name: "reason without Retry-After",
			body: `{"error":{"status":429,"message":"quota","reason":"QUOTA_EXCEEDED"}}`,
			want: &spotify.RateLimitError{Reason: "QUOTA_EXCEEDED"},
		},
		{
			name:       "HTTP date",
			retryAfter: clock.Now().Add(90 * time.Second).Format(http.TimeFormat),
			want:       &spotify.RateLimitError{RetryAfter: 90 * time.Second},
		},
		{
			name:       "HTTP date in the past",
			retryAfter: clock.Now().Add(-time.Hour).Format(http.TimeFormat),
			want:       &spotify.RateLimitError{},
		},
		{
			name:       "unreadable Retry-After and body",
			retryAfter: "soon",
			body:       "<html>slow down</html>",
			want:       &spotify.RateLimitError{},
		},
		{
			name:       "negative seconds",
			retryAfter: "-5",
			want:       &spotify.RateLimitError{},
		},
		{
			name: "reason that is not a code is dropped",
			body: `{"error":{"status":429,"reason":"QUOTA EXCEEDED\nfor everybody"}}`,
			want: &spotify.RateLimitError{},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, fakespotify.Config{}, envOptions{api: func(w http.ResponseWriter, r *http.Request) {
				if tt.retryAfter != "" {
					w.Header().Set("Retry-After", tt.retryAfter)
				}
				writeJSON(w, http.StatusTooManyRequests, tt.body)
			}})
			spotify.SetClock(e.client, clock.Now)
			_, err := e.client.TopTracks(context.Background(), artistA, "US")
			var got *spotify.RateLimitError
			if !errors.As(err, &got) {
				t.Fatalf("error %v is not a *RateLimitError", err)
			}
			if diff := cmp.Diff(got, tt.want); diff != "" {
				t.Errorf("RateLimitError (-got +want):\n%s", diff)
			}
		})
	}
}

func TestBadResponses(t *testing.T) {
	huge := `{"tracks":[` + strings.Repeat(" ", 5<<20) + `]}`
	tests := []struct {
		name string
		body string
		want []spotify.Track
		err  error
	}{
		{name: "HTML", body: "<html><body>oops</body></html>", err: spotify.ErrBadResponse},
		{name: "truncated", body: `{"tracks":[{"id":"abc"`, err: spotify.ErrBadResponse},
		{name: "no tracks", body: `{"items":[]}`, err: spotify.ErrBadResponse},
		{name: "null tracks", body: `{"tracks":null}`, err: spotify.ErrBadResponse},
		{name: "track without id", body: `{"tracks":[{"name":"x"}]}`, err: spotify.ErrBadResponse},
		{name: "wrong type", body: `{"tracks":[{"id":"a","popularity":"high"}]}`, err: spotify.ErrBadResponse},
		{name: "larger than 4 MiB", body: huge, err: spotify.ErrBadResponse},
		{name: "no tracks at all", body: `{"tracks":[]}`, want: []spotify.Track{}},
		{
			name: "unknown fields are ignored",
			body: `{"tracks":[{"id":"a","name":"A","available_markets":["US"],"is_local":false}],"next":null}`,
			want: []spotify.Track{{ID: "a", Name: "A"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, fakespotify.Config{}, envOptions{api: func(w http.ResponseWriter, r *http.Request) {
				writeJSON(w, http.StatusOK, tt.body)
			}})
			got, err := e.client.TopTracks(context.Background(), artistA, "US")
			if !errors.Is(err, tt.err) {
				t.Fatalf("error = %v, want %v", err, tt.err)
			}
			if tt.err != nil && !spotify.Temporary(err) {
				t.Errorf("Temporary(%q) = false, want true", err)
			}
			if diff := cmp.Diff(got, tt.want); diff != "" {
				t.Errorf("tracks (-got +want):\n%s", diff)
			}
		})
	}
}

func TestTopTracksRefreshesTokenOn401(t *testing.T) {
	e := newEnv(t, fakespotify.Config{}, envOptions{})
	ctx := context.Background()
	if _, err := e.client.TopTracks(ctx, artistA, "US"); err != nil {
		t.Fatalf("first call: %v", err)
	}
	e.fake.ExpireTokens()

	got, err := e.client.TopTracks(ctx, artistB, "US")
	if err != nil {
		t.Fatalf("call after the token expired: %v", err)
	}
	if diff := cmp.Diff(got, fakespotify.Tracks(artistB, 0, 10)); diff != "" {
		t.Errorf("tracks (-got +want):\n%s", diff)
	}
	st := e.fake.Stats()
	if got, want := st.TokenRequests, int64(2); got != want {
		t.Errorf("token requests = %d, want %d", got, want)
	}
	if got, want := e.tokenCalls.Load(), int64(2); got != want {
		t.Errorf("OnToken calls = %d, want %d", got, want)
	}
	if got, want := st.Unauthorized, int64(1); got != want {
		t.Errorf("401 answers = %d, want %d", got, want)
	}
	// The retry waits on the limiter too.
	if got, want := e.waits.Load(), int64(3); got != want {
		t.Errorf("Limiter.Wait calls = %d, want %d", got, want)
	}
	if diff := cmp.Diff(e.responseStatuses(), []int{200, 401, 200}); diff != "" {
		t.Errorf("OnResponse statuses (-got +want):\n%s", diff)
	}
}

func TestTopTracksInvalidInput(t *testing.T) {
	tests := []struct {
		name, artist, market string
		want                 error
	}{
		{name: "empty ID", artist: "", market: "US", want: spotify.ErrInvalidArtist},
		{name: "21 characters", artist: artistA[:21], market: "US", want: spotify.ErrInvalidArtist},
		{name: "23 characters", artist: artistA + "x", market: "US", want: spotify.ErrInvalidArtist},
		{name: "dot dot slash", artist: "../", market: "US", want: spotify.ErrInvalidArtist},
		{name: "22 with dot dot slash", artist: "../" + artistA[:19], market: "US", want: spotify.ErrInvalidArtist},
		{name: "escaped slash", artist: "%2F", market: "US", want: spotify.ErrInvalidArtist},
		{name: "22 with escaped slash", artist: "%2F" + artistA[:19], market: "US", want: spotify.ErrInvalidArtist},
		{name: "slash", artist: "a/b", market: "US", want: spotify.ErrInvalidArtist},
		{name: "query", artist: "?x", market: "US", want: spotify.ErrInvalidArtist},
		{name: "22 with query", artist: artistA[:20] + "?x", market: "US", want: spotify.ErrInvalidArtist},
		{name: "fragment", artist: "#x", market: "US", want: spotify.ErrInvalidArtist},
		{name: "URI form", artist: "spotify:artist:" + artistA, market: "US", want: spotify.ErrInvalidArtist},
		{name: "non-ASCII", artist: "é" + artistA[:20], market: "US", want: spotify.ErrInvalidArtist},
		{name: "empty market", artist: artistA, market: "", want: spotify.ErrBadRequest},
		{name: "lower-case market", artist: artistA, market: "us", want: spotify.ErrBadRequest},
		{name: "three letters", artist: artistA, market: "USA", want: spotify.ErrBadRequest},
		{name: "market with a query", artist: artistA, market: "U&", want: spotify.ErrBadRequest},
	}
	e := newEnv(t, fakespotify.Config{}, envOptions{})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := e.client.TopTracks(context.Background(), tt.artist, tt.market)
			if !errors.Is(err, tt.want) {
				t.Errorf("error = %v, want %v", err, tt.want)
			}
			if tt.want == spotify.ErrInvalidArtist && !errors.Is(err, artistid.ErrInvalid) {
				t.Errorf("error %v is not artistid.ErrInvalid", err)
			}
			if spotify.Temporary(err) {
				t.Errorf("Temporary(%q) = true", err)
			}
		})
	}
	st := e.fake.Stats()
	if st.Requests != 0 || st.TokenRequests != 0 {
		t.Errorf("stand-in saw %d API and %d token requests, want none", st.Requests, st.TokenRequests)
	}
	if got := e.waits.Load(); got != 0 {
		t.Errorf("Limiter.Wait calls = %d, want 0", got)
	}
}

func TestTopTracksTimeout(t *testing.T) {
	e := newEnv(t, fakespotify.Config{}, envOptions{
		httpClient: func(s *httptest.Server) *http.Client {
			c := *s.Client()
			c.Timeout = time.Second // well under the latency, well over a token request
			return &c
		},
	})
	ctx := context.Background()
	if _, err := e.client.TopTracks(ctx, artistA, "US"); err != nil { // fetches the token
		t.Fatalf("first call: %v", err)
	}
	e.fake.SetLatency(time.Hour)

	_, err := e.client.TopTracks(ctx, artistA, "US")
	if !errors.Is(err, spotify.ErrTransport) {
		t.Fatalf("error = %v, want ErrTransport", err)
	}
	if !spotify.Temporary(err) {
		t.Errorf("Temporary(%q) = false, want true", err)
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		t.Errorf("error %q looks like the caller's context ended", err)
	}
	if strings.Contains(err.Error(), e.srv.URL) {
		t.Errorf("error %q holds the request's URL", err)
	}
	if diff := cmp.Diff(e.responseStatuses(), []int{200, 0}); diff != "" {
		t.Errorf("OnResponse statuses (-got +want):\n%s", diff)
	}
}

func TestTopTracksCancel(t *testing.T) {
	t.Run("during the request", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		e := newEnv(t, fakespotify.Config{Latency: time.Hour}, envOptions{
			onAPI: func(*http.Request) { cancel() },
		})
		_, err := e.client.TopTracks(ctx, artistA, "US")
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("error = %v, want context.Canceled", err)
		}
		if spotify.Temporary(err) {
			t.Errorf("Temporary(%q) = true", err)
		}
		if !strings.Contains(err.Error(), artistA) {
			t.Errorf("error %q does not name the artist", err)
		}
	})

	t.Run("waiting on the limiter", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		e := newEnv(t, fakespotify.Config{}, envOptions{
			limiter: limiterFunc(func(ctx context.Context) error {
				cancel()
				<-ctx.Done()
				return errors.New("rate: Wait(n=1) would exceed context deadline")
			}),
		})
		_, err := e.client.TopTracks(ctx, artistA, "US")
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("error = %v, want context.Canceled", err)
		}
		if st := e.fake.Stats(); st.Requests != 0 || st.TokenRequests != 0 {
			t.Errorf("stand-in saw %d API and %d token requests, want none", st.Requests, st.TokenRequests)
		}
	})

	t.Run("waiting for a token others still wait for", func(t *testing.T) {
		arrived, release := make(chan struct{}), make(chan struct{})
		var e *env
		e = newEnv(t, fakespotify.Config{}, envOptions{
			token: func(w http.ResponseWriter, r *http.Request) {
				close(arrived) // a second token request would panic here
				<-release
				e.serveToken(w, r)
			},
		})

		ctx, cancel := context.WithCancel(context.Background())
		errc := make(chan error, 1)
		go func() {
			_, err := e.client.TopTracks(ctx, artistA, "US")
			errc <- err
		}()
		<-arrived
		cancel()
		if err := <-errc; !errors.Is(err, context.Canceled) {
			t.Errorf("cancelled caller: error = %v, want context.Canceled", err)
		}

		// The token request goes on; a new caller waits for it.
		go func() {
			_, err := e.client.TopTracks(context.Background(), artistB, "US")
			errc <- err
		}()
		close(release)
		if err := <-errc; err != nil {
			t.Errorf("second caller: %v", err)
		}
		if got, want := e.fake.Stats().TokenRequests, int64(1); got != want {
			t.Errorf("token requests = %d, want %d", got, want)
		}
	})
}

func TestTopTracksConcurrent(t *testing.T) {
	const n = 64
	e := newEnv(t, fakespotify.Config{}, envOptions{})

	round := func(name string) {
		t.Helper()
		errs := make([]error, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				artist := artistA
				if i%2 == 1 {
					artist = artistB
				}
				_, errs[i] = e.client.TopTracks(context.Background(), artist, "US")
			})
		}
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				t.Errorf("%s: caller %d: %v", name, i, err)
			}
		}
	}

	round("first round")
	if got, want := e.fake.Stats().TokenRequests, int64(1); got != want {
		t.Errorf("token requests after the first round = %d, want %d", got, want)
	}
	if got, want := e.tokenCalls.Load(), int64(1); got != want {
		t.Errorf("OnToken calls after the first round = %d, want %d", got, want)
	}

	// Every caller meets a 401 with the same token: one new token for all.
	e.fake.ExpireTokens()
	round("after ExpireTokens")
	st := e.fake.Stats()
	if got, want := st.TokenRequests, int64(2); got != want {
		t.Errorf("token requests after the second round = %d, want %d", got, want)
	}
	if got, want := st.OK, int64(2*n); got != want {
		t.Errorf("OK answers = %d, want %d", got, want)
	}
}

func TestTokenFailures(t *testing.T) {
	tests := []struct {
		name          string
		token         http.HandlerFunc
		secret        string
		wantIs        []error
		wantRateLimit *spotify.RateLimitError
		wantTemporary bool
		wantText      string
	}{
		{
			name:     "wrong secret",
			secret:   "SECRET-wrong-secret-do-not-leak",
			wantIs:   []error{spotify.ErrUnauthorized},
			wantText: "HTTP 400 invalid_client",
		},
		{
			name: "500 that quotes the request",
			token: func(w http.ResponseWriter, r *http.Request) {
				_, pw, _ := r.BasicAuth()
				w.WriteHeader(http.StatusInternalServerError)
				fmt.Fprintf(w, "internal error for secret %s", pw)
			},
			wantIs:        []error{spotify.ErrServer},
			wantTemporary: true,
			wantText:      "HTTP 500",
		},
		{
			name: "error code that quotes the secret",
			token: func(w http.ResponseWriter, r *http.Request) {
				_, pw, _ := r.BasicAuth()
				writeJSON(w, http.StatusUnauthorized, fmt.Sprintf(`{"error":"bad secret %s","error_description":%q}`, pw, pw))
			},
			wantIs:   []error{spotify.ErrUnauthorized},
			wantText: "HTTP 401",
		},
		{
			name: "429",
			token: func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Retry-After", "3")
				writeJSON(w, http.StatusTooManyRequests, `{"error":"slow_down"}`)
			},
			wantRateLimit: &spotify.RateLimitError{RetryAfter: 3 * time.Second},
			wantTemporary: true,
		},
		{
			name: "200 without a token",
			token: func(w http.ResponseWriter, r *http.Request) {
				_, pw, _ := r.BasicAuth()
				writeJSON(w, http.StatusOK, fmt.Sprintf(`{"token_type":"Bearer","note":%q}`, pw))
			},
			wantIs:        []error{spotify.ErrBadResponse},
			wantTemporary: true,
		},
		{
			name: "HTML",
			token: func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "text/html")
				_, _ = w.Write([]byte("<html>hello</html>"))
			},
			wantIs:        []error{spotify.ErrBadResponse},
			wantTemporary: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, fakespotify.Config{}, envOptions{token: tt.token, secret: tt.secret})
			_, err := e.client.TopTracks(context.Background(), artistA, "US")
			if err == nil {
				t.Fatal("TopTracks succeeded, want an error")
			}
			checkError(t, err, tt.wantIs, tt.wantTemporary, tt.wantText)
			checkAs(t, err, tt.wantRateLimit)
			for _, s := range []string{testClientSecret, tt.secret} {
				if s != "" && strings.Contains(err.Error(), s) {
					t.Errorf("error %q holds the secret", err)
				}
			}
			if st := e.fake.Stats(); st.Requests != 0 {
				t.Errorf("stand-in saw %d API requests without a token", st.Requests)
			}
			if got, want := e.tokenCalls.Load(), int64(1); got != want {
				t.Errorf("OnToken calls = %d, want %d", got, want)
			}
			e.mu.Lock()
			hookErrs := e.tokenErrs
			e.mu.Unlock()
			for _, herr := range hookErrs {
				if herr == nil {
					t.Errorf("OnToken got nil, want the error")
				} else if strings.Contains(herr.Error(), testClientSecret) {
					t.Errorf("OnToken error %q holds the secret", herr)
				}
			}
		})
	}
}

func TestTokenTransportFailure(t *testing.T) {
	e := newEnv(t, fakespotify.Config{}, envOptions{})
	e.srv.Close() // nothing listens any more
	_, err := e.client.TopTracks(context.Background(), artistA, "US")
	if !errors.Is(err, spotify.ErrTransport) {
		t.Fatalf("error = %v, want ErrTransport", err)
	}
	if !spotify.Temporary(err) {
		t.Errorf("Temporary(%q) = false, want true", err)
	}
}

// TestNoSecretsInErrors drives the client through failures with real tokens
// and checks that no error holds the secret or a token.
func TestNoSecretsInErrors(t *testing.T) {
	e := newEnv(t, fakespotify.Config{}, envOptions{api: func(w http.ResponseWriter, r *http.Request) {
		// A server that quotes the token back, in every way it can.
		tok := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
		w.Header().Set("Retry-After", tok)
		switch r.URL.Query().Get("market") {
		case "SE":
			writeJSON(w, http.StatusInternalServerError, fmt.Sprintf(`{"error":{"status":500,"message":"token %s"}}`, tok))
		case "DE":
			writeJSON(w, http.StatusOK, fmt.Sprintf(`{"tracks":"%s"}`, tok))
		case "FR":
			writeJSON(w, http.StatusTooManyRequests, fmt.Sprintf(`{"error":{"status":429,"reason":%q}}`, tok))
		case "GB":
			writeJSON(w, http.StatusOK, tok)
		default:
			writeJSON(w, http.StatusUnauthorized, fmt.Sprintf(`{"error":{"status":401,"message":"token %s"}}`, tok))
		}
	}})
	for _, market := range []string{"SE", "DE", "FR", "GB", "US"} {
		_, err := e.client.TopTracks(context.Background(), artistA, market)
		if err == nil {
			t.Fatalf("market %s: TopTracks succeeded, want an error", market)
		}
		e.checkNoSecrets(t, err)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if len(e.tokens) < 2 {
		t.Errorf("the stand-in issued %d tokens, want at least 2", len(e.tokens))
	}
}

// TestConnectionReuse checks that every answer's body is drained and closed:
// one connection serves every request, whatever the answer.
func TestConnectionReuse(t *testing.T) {
	var mu sync.Mutex
	conns := 0
	e := newEnv(t, fakespotify.Config{}, envOptions{connState: func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			mu.Lock()
			conns++
			mu.Unlock()
		}
	}})
	ctx := context.Background()
	for _, status := range []int{0, 404, 500, 502, 429, 403, 400, 401} {
		artist := artistA
		switch status {
		case 0:
		case 404:
			artist = artistUnknown
		case 401:
			e.fake.FailNext(1, status) // then a new token and a 200
		default:
			e.fake.FailNext(1, status)
		}
		_, _ = e.client.TopTracks(ctx, artist, "US")
	}
	if got, want := e.fake.Stats().Requests, int64(9); got != want {
		t.Errorf("API requests = %d, want %d", got, want)
	}
	mu.Lock()
	defer mu.Unlock()
	if conns != 1 {
		t.Errorf("the client opened %d connections, want 1", conns)
	}
}

// TestDefaultHTTPClient runs the client with the HTTP client New builds.
func TestDefaultHTTPClient(t *testing.T) {
	fake := fakespotify.New(fakespotify.Config{ClientID: testClientID, ClientSecret: testClientSecret})
	srv := httptest.NewServer(fake)
	defer srv.Close()
	c, err := spotify.New(spotify.Config{
		APIURL: srv.URL + "/v1/", TokenURL: srv.URL + "/api/token",
		ClientID: testClientID, ClientSecret: testClientSecret,
	})
	if err != nil {
		t.Fatal(err)
	}
	got, err := c.TopTracks(context.Background(), artistA, "US")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(got, fakespotify.Tracks(artistA, 0, 10)); diff != "" {
		t.Errorf("tracks (-got +want):\n%s", diff)
	}
}

// TestOutcomesReachTheGateOncePerRequest checks that every request the gate
// let through is reported once, with the fault the gate decides on.
func TestOutcomesReachTheGateOncePerRequest(t *testing.T) {
	cases := []struct {
		name   string
		status int // FailNext's status; 0: none
		artist string
		want   gate.Fault
	}{
		{"ok", 0, artistA, gate.Answered},
		{"not found", 0, "0000000000000000000000", gate.Answered},
		{"server error", http.StatusServiceUnavailable, artistA, gate.Failed},
		{"gateway's HTML", http.StatusBadGateway, artistA, gate.Failed},
		{"forbidden", http.StatusForbidden, artistA, gate.Forbidden},
		{"rate limited", http.StatusTooManyRequests, artistA, gate.RateLimited},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t, fakespotify.Config{}, envOptions{})
			if c.status != 0 {
				e.fake.FailNext(1, c.status)
			}
			_, _ = e.client.TopTracks(context.Background(), c.artist, "US")
			got := e.gateOutcomes()
			if len(got) != 1 {
				t.Fatalf("%d outcomes reported for one request: %+v", len(got), got)
			}
			if got[0].Fault != c.want || got[0].Key != c.artist {
				t.Errorf("outcome = %+v, want fault %v for %s", got[0], c.want, c.artist)
			}
		})
	}
	t.Run("token endpoint down", func(t *testing.T) {
		e := newEnv(t, fakespotify.Config{}, envOptions{token: func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(http.StatusServiceUnavailable)
		}})
		_, err := e.client.TopTracks(context.Background(), artistA, "US")
		if err == nil {
			t.Fatal("no error with the token endpoint down")
		}
		got := e.gateOutcomes()
		if len(got) != 1 || got[0].Fault != gate.Failed {
			t.Errorf("outcomes = %+v, want one Failed", got)
		}
		// A second call within the token backoff asks the endpoint no more.
		calls := e.tokenCalls.Load()
		_, _ = e.client.TopTracks(context.Background(), artistA, "US")
		if n := e.tokenCalls.Load(); n != calls {
			t.Errorf("token requests went from %d to %d inside the backoff", calls, n)
		}
	})
}

// A call the gate let through is held back when a pause began before it was
// sent (another call's 429 came back meanwhile): it is reported Unsent, and
// sent only once the gate lets it through again.
func TestACallIsHeldBackWhenAPauseBeganOnItsWay(t *testing.T) {
	var asked atomic.Int64
	var requests atomic.Int64
	e := newEnv(t, fakespotify.Config{}, envOptions{
		stillClear: func() bool { return asked.Add(1) > 1 }, // a pause began on the first call's way
		onAPI:      func(*http.Request) { requests.Add(1) },
	})
	got, err := e.client.TopTracks(context.Background(), artistA, "SE")
	if err != nil {
		t.Fatalf("TopTracks: %v", err)
	}
	if len(got) != 10 {
		t.Errorf("got %d tracks, want 10", len(got))
	}
	if n := requests.Load(); n != 1 {
		t.Errorf("the stand-in got %d requests, want 1 (the held-back call must not be sent)", n)
	}
	if n := e.waits.Load(); n != 2 {
		t.Errorf("Wait calls = %d, want 2 (the held-back call waits again)", n)
	}
	var faults []gate.Fault
	for _, o := range e.gateOutcomes() {
		faults = append(faults, o.Fault)
	}
	if diff := cmp.Diff(faults, []gate.Fault{gate.Unsent, gate.Answered}); diff != "" {
		t.Errorf("outcomes reported (-got +want):\n%s", diff)
	}
}
