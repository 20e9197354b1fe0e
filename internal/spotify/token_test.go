package spotify_test

import (
	"context"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sixpotify/top-tracks/internal/fakespotify"
	"github.com/sixpotify/top-tracks/internal/spotify"
)

// TestTokenRefresh moves a clock shared by the client and the stand-in: the
// client replaces its token before it expires, so that Spotify never answers 401.
func TestTokenRefresh(t *testing.T) {
	tests := []struct {
		name string
		ttl  time.Duration
		// steps: how far the clock moves before each call, and how many
		// token requests the stand-in has seen after it.
		steps []step
	}{
		{
			name: "an hour: refreshed a minute early",
			ttl:  time.Hour,
			steps: []step{
				{advance: 0, wantTokens: 1},
				{advance: 30 * time.Minute, wantTokens: 1},
				{advance: 28*time.Minute + 59*time.Second, wantTokens: 1},
				{advance: time.Second, wantTokens: 2}, // 59m: one minute before expiry
				{advance: 58 * time.Minute, wantTokens: 2},
				{advance: 2 * time.Minute, wantTokens: 3},
			},
		},
		{
			name: "ten seconds: refreshed halfway",
			ttl:  10 * time.Second,
			steps: []step{
				{advance: 0, wantTokens: 1},
				{advance: 4 * time.Second, wantTokens: 1},
				{advance: time.Second, wantTokens: 2},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clock := newFakeClock()
			e := newEnv(t, fakespotify.Config{TokenTTL: tt.ttl, Clock: clock.Now}, envOptions{})
			spotify.SetClock(e.client, clock.Now)
			for i, s := range tt.steps {
				clock.Advance(s.advance)
				if _, err := e.client.TopTracks(context.Background(), artistA, "US"); err != nil {
					t.Fatalf("call %d: %v", i, err)
				}
				// A refresh due while the token works runs beside the call.
				if got := waitTokens(e, s.wantTokens); got != s.wantTokens {
					t.Errorf("call %d: token requests = %d, want %d", i, got, s.wantTokens)
				}
			}
			if got := e.fake.Stats().Unauthorized; got != 0 {
				t.Errorf("401 answers = %d, want 0", got)
			}
		})
	}
}

type step struct {
	advance    time.Duration
	wantTokens int64
}

// waitTokens waits, a few seconds at most, for the stand-in to have seen
// want token requests, and returns how many it saw (a refresh runs in the
// background; one request too many shows at once).
func waitTokens(e *env, want int64) int64 {
	deadline := time.Now().Add(5 * time.Second)
	for {
		got := e.fake.Stats().TokenRequests
		if got >= want || time.Now().After(deadline) {
			return got
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestSlowRefreshDoesNotHoldCalls: a token endpoint that does not answer
// when the refresh is due holds no call back while the token still works,
// and the calls made meanwhile share one refresh.
func TestSlowRefreshDoesNotHoldCalls(t *testing.T) {
	clock := newFakeClock()
	var hang atomic.Bool
	release := make(chan struct{})
	var e *env
	e = newEnv(t, fakespotify.Config{TokenTTL: time.Hour, Clock: clock.Now}, envOptions{
		token: func(w http.ResponseWriter, r *http.Request) {
			if hang.Load() {
				select {
				case <-release:
				case <-r.Context().Done():
					return
				}
			}
			e.serveToken(w, r)
		},
	})
	var once sync.Once
	unhang := func() { once.Do(func() { close(release) }) }
	t.Cleanup(unhang) // before the server closes: it waits for the handler
	spotify.SetClock(e.client, clock.Now)
	if _, err := e.client.TopTracks(context.Background(), artistA, "US"); err != nil {
		t.Fatal(err)
	}
	hang.Store(true)
	clock.Advance(59*time.Minute + 10*time.Second) // refresh due, token valid 50s more
	for i := range 3 {
		// Were a call to wait for the refresh, it would wait until release.
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		_, err := e.client.TopTracks(ctx, artistA, "US")
		cancel()
		if err != nil {
			t.Fatalf("call %d while the refresh hangs: %v", i, err)
		}
	}
	unhang()
	if got := waitTokens(e, 2); got != 2 {
		t.Errorf("token requests = %d, want 2 (the first token and one refresh)", got)
	}
	if got := e.fake.Stats().Unauthorized; got != 0 {
		t.Errorf("401 answers = %d, want 0", got)
	}
}

// TestFailedRefreshKeepsTheValidToken: a refresh that fails in the minute
// before expiry does not fail calls while the token still works.
func TestFailedRefreshKeepsTheValidToken(t *testing.T) {
	clock := newFakeClock()
	var failing atomic.Bool
	var e *env
	e = newEnv(t, fakespotify.Config{TokenTTL: time.Hour, Clock: clock.Now}, envOptions{
		token: func(w http.ResponseWriter, r *http.Request) {
			if failing.Load() {
				writeJSON(w, http.StatusServiceUnavailable, `{"error":"temporarily_unavailable"}`)
				return
			}
			e.serveToken(w, r)
		},
	})
	spotify.SetClock(e.client, clock.Now)
	if _, err := e.client.TopTracks(context.Background(), artistA, "US"); err != nil {
		t.Fatal(err)
	}
	failing.Store(true)
	clock.Advance(59*time.Minute + 30*time.Second) // refresh due, token valid 30s more
	if _, err := e.client.TopTracks(context.Background(), artistA, "US"); err != nil {
		t.Errorf("call with a failing refresh and a valid token: %v", err)
	}
	clock.Advance(time.Minute) // expired, refresh still failing
	if _, err := e.client.TopTracks(context.Background(), artistA, "US"); err == nil {
		t.Error("call with an expired token and a failing refresh succeeded")
	}
}
