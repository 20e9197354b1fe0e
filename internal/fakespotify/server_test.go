package fakespotify_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/sixpotify/top-tracks/internal/fakespotify"
	"github.com/sixpotify/top-tracks/internal/spotify"
	"github.com/sixpotify/top-tracks/internal/testutil"
)

const (
	clientID     = "test-id"
	clientSecret = "test+secret/with&odd=chars"
	artist       = "0TnOYISbd1XYRBk9myaseg"
)

// t0 is where the tests' clocks start; their steps are offsets from it.
var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func newClock() *testutil.Clock { return testutil.NewClock(t0) }

func newServer(cfg fakespotify.Config) *fakespotify.Server {
	cfg.ClientID, cfg.ClientSecret = clientID, clientSecret
	return fakespotify.New(cfg)
}

// token gets an access token with Basic auth, as golang.org/x/oauth2 sends it.
func token(t *testing.T, s *fakespotify.Server) string {
	t.Helper()
	req := httptest.NewRequest(http.MethodPost, "/api/token", strings.NewReader("grant_type=client_credentials"))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(url.QueryEscape(clientID), url.QueryEscape(clientSecret))
	rec := httptest.NewRecorder()
	s.ServeHTTP(rec, req)
	var body struct {
		AccessToken string `json:"access_token"`
	}
	if rec.Code != http.StatusOK || json.Unmarshal(rec.Body.Bytes(), &body) != nil || body.AccessToken == "" {
		t.Fatalf("token: %d %s", rec.Code, rec.Body)
	}
	return body.AccessToken
}

// get sends an API call for path with tok.
func get(s *fakespotify.Server, tok, path string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(http.MethodGet, path, nil)
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	rec := httptest.NewRecorder()
	s.ServeHTTP(rec, req)
	return rec
}

func topTracks(id string) string { return "/v1/artists/" + id + "/top-tracks?market=US" }

// errorMessage returns the message of Spotify's error body.
func errorMessage(t *testing.T, rec *httptest.ResponseRecorder) string {
	t.Helper()
	var body struct {
		Error struct {
			Status  int    `json:"status"`
			Message string `json:"message"`
		} `json:"error"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
		t.Fatalf("error body %q: %v", rec.Body, err)
	}
	if body.Error.Status != rec.Code {
		t.Errorf("error body status = %d, answer's = %d", body.Error.Status, rec.Code)
	}
	return body.Error.Message
}

func TestTokenEndpoint(t *testing.T) {
	tests := []struct {
		name     string
		method   string
		form     url.Values
		basic    []string // user, password as sent (already escaped)
		wantCode int
		wantErr  string // the OAuth error code; "": success
	}{
		{
			name:     "basic auth",
			form:     url.Values{"grant_type": {"client_credentials"}},
			basic:    []string{url.QueryEscape(clientID), url.QueryEscape(clientSecret)},
			wantCode: 200,
		},
		{
			name:     "form credentials",
			form:     url.Values{"grant_type": {"client_credentials"}, "client_id": {clientID}, "client_secret": {clientSecret}},
			wantCode: 200,
		},
		{
			name:     "wrong secret",
			form:     url.Values{"grant_type": {"client_credentials"}},
			basic:    []string{clientID, "nope"},
			wantCode: 400,
			wantErr:  "invalid_client",
		},
		{
			name:     "no credentials",
			form:     url.Values{"grant_type": {"client_credentials"}},
			wantCode: 400,
			wantErr:  "invalid_client",
		},
		{
			name:     "other grant",
			form:     url.Values{"grant_type": {"authorization_code"}, "client_id": {clientID}, "client_secret": {clientSecret}},
			wantCode: 400,
			wantErr:  "unsupported_grant_type",
		},
		{
			name:     "GET",
			method:   http.MethodGet,
			wantCode: 405,
			wantErr:  "invalid_request",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newServer(fakespotify.Config{TokenTTL: 90 * time.Minute})
			method := tt.method
			if method == "" {
				method = http.MethodPost
			}
			req := httptest.NewRequest(method, "/api/token", strings.NewReader(tt.form.Encode()))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			if tt.basic != nil {
				req.SetBasicAuth(tt.basic[0], tt.basic[1])
			}
			rec := httptest.NewRecorder()
			s.ServeHTTP(rec, req)
			if rec.Code != tt.wantCode {
				t.Fatalf("status = %d, want %d: %s", rec.Code, tt.wantCode, rec.Body)
			}
			var body struct {
				AccessToken string `json:"access_token"`
				TokenType   string `json:"token_type"`
				ExpiresIn   int    `json:"expires_in"`
				Error       string `json:"error"`
			}
			if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
				t.Fatalf("body %q: %v", rec.Body, err)
			}
			if body.Error != tt.wantErr {
				t.Errorf("error = %q, want %q", body.Error, tt.wantErr)
			}
			if tt.wantErr == "" {
				if body.AccessToken == "" || body.TokenType != "Bearer" || body.ExpiresIn != 5400 {
					t.Errorf("token answer = %+v, want a Bearer token for 5400 s", body)
				}
			}
			if got := s.Stats().TokenRequests; got != 1 {
				t.Errorf("TokenRequests = %d, want 1", got)
			}
		})
	}
}

func TestTokenExpiry(t *testing.T) {
	c := newClock()
	s := newServer(fakespotify.Config{TokenTTL: time.Hour, Clock: c.Now})
	tok := token(t, s)

	steps := []struct {
		at      time.Duration
		expire  bool // ExpireTokens first
		tok     string
		want    int
		message string
	}{
		{at: 0, tok: tok, want: 200},
		{at: 59*time.Minute + 59*time.Second, tok: tok, want: 200},
		{at: time.Hour, tok: tok, want: 401, message: "The access token expired"},
		{at: time.Hour, tok: "made-up", want: 401, message: "Invalid access token"},
		{at: time.Hour, tok: "", want: 401, message: "No token provided"},
	}
	for _, st := range steps {
		c.Set(t0.Add(st.at))
		rec := get(s, st.tok, topTracks(artist))
		if rec.Code != st.want {
			t.Fatalf("at %v: status = %d, want %d", st.at, rec.Code, st.want)
		}
		if st.message != "" {
			if got := errorMessage(t, rec); got != st.message {
				t.Errorf("at %v: message = %q, want %q", st.at, got, st.message)
			}
		}
	}

	fresh := token(t, s)
	if rec := get(s, fresh, topTracks(artist)); rec.Code != 200 {
		t.Fatalf("new token: status = %d, want 200", rec.Code)
	}
	s.ExpireTokens()
	if rec := get(s, fresh, topTracks(artist)); rec.Code != 401 {
		t.Errorf("after ExpireTokens: status = %d, want 401", rec.Code)
	}
	if got, want := s.Stats().Unauthorized, int64(4); got != want {
		t.Errorf("Unauthorized = %d, want %d", got, want)
	}
}

func TestTopTracksAnswers(t *testing.T) {
	tests := []struct {
		name        string
		path        string
		wantCode    int
		wantMessage string
		invalidID   bool
	}{
		{name: "unknown artist", path: topTracks("0000YISbd1XYRBk9myaseg"), wantCode: 404, wantMessage: "Resource not found"},
		{name: "short ID", path: topTracks("abc"), wantCode: 400, wantMessage: "invalid id", invalidID: true},
		{name: "23 characters", path: topTracks(artist + "x"), wantCode: 400, wantMessage: "invalid id", invalidID: true},
		{name: "escaped slash", path: topTracks("%2F" + artist[:19]), wantCode: 400, wantMessage: "invalid id", invalidID: true},
		{name: "slash", path: topTracks("a/" + artist[:20]), wantCode: 400, wantMessage: "invalid id", invalidID: true},
		{name: "empty ID", path: topTracks(""), wantCode: 400, wantMessage: "invalid id", invalidID: true},
		{name: "no market", path: "/v1/artists/" + artist + "/top-tracks", wantCode: 400, wantMessage: "Missing market parameter"},
		{name: "lower-case market", path: "/v1/artists/" + artist + "/top-tracks?market=us", wantCode: 400, wantMessage: "Invalid market code"},
		{name: "other endpoint", path: "/v1/artists/" + artist, wantCode: 404, wantMessage: "Service not found"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newServer(fakespotify.Config{})
			rec := get(s, token(t, s), tt.path)
			if rec.Code != tt.wantCode {
				t.Fatalf("status = %d, want %d: %s", rec.Code, tt.wantCode, rec.Body)
			}
			if got := errorMessage(t, rec); got != tt.wantMessage {
				t.Errorf("message = %q, want %q", got, tt.wantMessage)
			}
			st := s.Stats()
			if got := st.InvalidIDs == 1; got != tt.invalidID {
				t.Errorf("InvalidIDs = %d, want invalid: %v", st.InvalidIDs, tt.invalidID)
			}
			if st.Requests != 1 || st.OK != 0 {
				t.Errorf("Requests, OK = %d, %d; want 1, 0", st.Requests, st.OK)
			}
		})
	}
}

func TestTopTracksOK(t *testing.T) {
	s := newServer(fakespotify.Config{})
	tok := token(t, s)
	rec := get(s, tok, topTracks(artist))
	if rec.Code != 200 {
		t.Fatalf("status = %d: %s", rec.Code, rec.Body)
	}
	if got := rec.Header().Get("Content-Type"); !strings.HasPrefix(got, "application/json") {
		t.Errorf("Content-Type = %q", got)
	}

	var decoded struct {
		Tracks []spotify.Track `json:"tracks"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &decoded); err != nil {
		t.Fatal(err)
	}
	// Decoded as a plain spotify.Track, the ISRC is not read: Spotify sends
	// it inside external_ids, which the client flattens.
	if diff := cmp.Diff(decoded.Tracks, withoutISRC(fakespotify.Tracks(artist, 0, 10))); diff != "" {
		t.Errorf("tracks (-got +want):\n%s", diff)
	}

	// Spotify's extra fields are there, for the client to drop.
	var raw struct {
		Tracks []struct {
			AvailableMarkets []string          `json:"available_markets"`
			Type             string            `json:"type"`
			ExternalIDs      map[string]string `json:"external_ids"`
			Popularity       *int              `json:"popularity"`
			Album            struct {
				AvailableMarkets []string `json:"available_markets"`
				Label            *string  `json:"label"`
			} `json:"album"`
		} `json:"tracks"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &raw); err != nil {
		t.Fatal(err)
	}
	want := fakespotify.Tracks(artist, 0, 10)
	for i, tr := range raw.Tracks {
		if len(tr.AvailableMarkets) < 20 || len(tr.Album.AvailableMarkets) < 20 || tr.Type != "track" ||
			tr.Popularity == nil || tr.Album.Label == nil {
			t.Errorf("track %d: %d markets, album %d, type %q, popularity %v, album label %v",
				i, len(tr.AvailableMarkets), len(tr.Album.AvailableMarkets), tr.Type, tr.Popularity, tr.Album.Label)
		}
		if got := tr.ExternalIDs["isrc"]; got == "" || got != *want[i].ISRC {
			t.Errorf("track %d: external_ids.isrc = %q, want %q", i, got, *want[i].ISRC)
		}
	}

	s.SetGeneration(artist, 3)
	rec = get(s, tok, topTracks(artist))
	if err := json.Unmarshal(rec.Body.Bytes(), &decoded); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(decoded.Tracks, withoutISRC(fakespotify.Tracks(artist, 3, 10))); diff != "" {
		t.Errorf("tracks of generation 3 (-got +want):\n%s", diff)
	}
	if diff := cmp.Diff(s.Stats().PerArtist, map[string]int{artist: 2}); diff != "" {
		t.Errorf("PerArtist (-got +want):\n%s", diff)
	}

	s2 := newServer(fakespotify.Config{Tracks: -1})
	rec = get(s2, token(t, s2), topTracks(artist))
	if got, want := strings.TrimSpace(rec.Body.String()), `{"tracks":[]}`; got != want {
		t.Errorf("artist without tracks: body = %s, want %s", got, want)
	}
}

func TestRateLimitWindow(t *testing.T) {
	c := newClock()
	s := newServer(fakespotify.Config{Limit: 3, Window: 30 * time.Second, Clock: c.Now})
	tok := token(t, s)

	steps := []struct {
		at         time.Duration
		wantCode   int
		retryAfter string
	}{
		{at: 0, wantCode: 200},
		{at: 10 * time.Second, wantCode: 200},
		{at: 20 * time.Second, wantCode: 200},
		{at: 25 * time.Second, wantCode: 429, retryAfter: "5"},                      // the call at 0 leaves at 30
		{at: 27*time.Second + 500*time.Millisecond, wantCode: 429, retryAfter: "3"}, // 2.5 s, rounded up; inside the Retry-After
		{at: 30 * time.Second, wantCode: 200},                                       // 429s did not count
		{at: 31 * time.Second, wantCode: 429, retryAfter: "9"},                      // the call at 10 leaves at 40
		{at: 40 * time.Second, wantCode: 200},
		{at: 49*time.Second + 999*time.Millisecond, wantCode: 429, retryAfter: "1"},
		{at: 50 * time.Second, wantCode: 200}, // inside the Retry-After announced at 49.999
	}
	for _, st := range steps {
		c.Set(t0.Add(st.at))
		rec := get(s, tok, topTracks(artist))
		if rec.Code != st.wantCode {
			t.Fatalf("at %v: status = %d, want %d", st.at, rec.Code, st.wantCode)
		}
		if got := rec.Header().Get("Retry-After"); got != st.retryAfter {
			t.Errorf("at %v: Retry-After = %q, want %q", st.at, got, st.retryAfter)
		}
		if st.wantCode == 429 {
			if got := errorMessage(t, rec); got != "API rate limit exceeded" {
				t.Errorf("at %v: message = %q", st.at, got)
			}
		}
	}
	stats := s.Stats()
	got := []int64{stats.Requests, stats.OK, stats.TooMany, stats.InsideRetryAfter}
	if diff := cmp.Diff(got, []int64{10, 6, 4, 3}); diff != "" {
		t.Errorf("Requests, OK, TooMany, InsideRetryAfter (-got +want):\n%s", diff)
	}

	// SetLimit lifts the limit at once.
	s.SetLimit(0, 0)
	c.Set(t0.Add(50 * time.Second))
	if rec := get(s, tok, topTracks(artist)); rec.Code != 200 {
		t.Errorf("without a limit: status = %d, want 200", rec.Code)
	}
}

// TestInsideOwnRetryAfter: a Retry-After is counted against the token it
// was announced to, as well as against every call.
func TestInsideOwnRetryAfter(t *testing.T) {
	c := newClock()
	s := newServer(fakespotify.Config{Limit: 1, Window: 10 * time.Second, Clock: c.Now})
	told, other := token(t, s), token(t, s)
	for _, st := range []struct {
		at   time.Duration
		tok  string
		want int
	}{
		{0, told, 200},
		{time.Second, told, 429},      // Retry-After 9 s, announced to told
		{2 * time.Second, other, 429}, // inside it, but other was never told
		{3 * time.Second, told, 429},  // inside its own
	} {
		c.Set(t0.Add(st.at))
		if rec := get(s, st.tok, topTracks(artist)); rec.Code != st.want {
			t.Fatalf("at %v: status = %d, want %d", st.at, rec.Code, st.want)
		}
	}
	st := s.Stats()
	if st.InsideRetryAfter != 2 || st.InsideOwnRetryAfter != 1 {
		t.Errorf("InsideRetryAfter %d, InsideOwnRetryAfter %d; want 2 and 1", st.InsideRetryAfter, st.InsideOwnRetryAfter)
	}
}

func TestFailNext(t *testing.T) {
	s := newServer(fakespotify.Config{})
	tok := token(t, s)
	s.FailNext(2, http.StatusBadGateway)
	for i := range 2 {
		rec := get(s, tok, topTracks(artist))
		if rec.Code != 502 || !strings.Contains(rec.Body.String(), "<html>") {
			t.Errorf("call %d: %d %q, want 502 with HTML", i, rec.Code, rec.Body)
		}
	}
	s.FailNext(1, http.StatusTooManyRequests)
	rec := get(s, tok, topTracks(artist))
	if rec.Code != 429 || rec.Header().Get("Retry-After") != "" {
		t.Errorf("injected 429: %d, Retry-After %q; want 429 without Retry-After", rec.Code, rec.Header().Get("Retry-After"))
	}
	// Injected failures come before every check, authentication included.
	s.FailNext(1, http.StatusServiceUnavailable)
	if rec := get(s, "", topTracks("bad")); rec.Code != 503 {
		t.Errorf("injected 503: status = %d", rec.Code)
	}
	if rec := get(s, tok, topTracks(artist)); rec.Code != 200 {
		t.Errorf("after the failures: status = %d, want 200", rec.Code)
	}
	st := s.Stats()
	got := []int64{st.Requests, st.ServerErrors, st.TooMany, st.OK}
	if diff := cmp.Diff(got, []int64{5, 3, 1, 1}); diff != "" {
		t.Errorf("Requests, ServerErrors, TooMany, OK (-got +want):\n%s", diff)
	}
}

func TestErrorRate(t *testing.T) {
	statuses := func(rate float64, seed int64) []int {
		s := newServer(fakespotify.Config{ErrorRate: rate, Seed: seed})
		tok := token(t, s)
		var out []int
		for range 100 {
			out = append(out, get(s, tok, topTracks(artist)).Code)
		}
		return out
	}
	count := func(codes []int) (ok, failed int) {
		for _, c := range codes {
			switch c {
			case 200:
				ok++
			case 500, 502, 503:
				failed++
			default:
				t.Errorf("unexpected status %d", c)
			}
		}
		return ok, failed
	}

	if ok, _ := count(statuses(1, 1)); ok != 0 {
		t.Errorf("ErrorRate 1: %d OK answers, want 0", ok)
	}
	if _, failed := count(statuses(0, 1)); failed != 0 {
		t.Errorf("ErrorRate 0: %d failures, want 0", failed)
	}
	half := statuses(0.5, 7)
	if ok, failed := count(half); ok == 0 || failed == 0 {
		t.Errorf("ErrorRate 0.5: %d OK, %d failed; want some of each", ok, failed)
	}
	if diff := cmp.Diff(statuses(0.5, 7), half); diff != "" {
		t.Errorf("the same seed gave other failures (-got +want):\n%s", diff)
	}
}

func TestLatencyStopsWithTheRequest(t *testing.T) {
	s := newServer(fakespotify.Config{})
	tok := token(t, s)
	s.SetLatency(time.Hour)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	req := httptest.NewRequestWithContext(ctx, http.MethodGet, topTracks(artist), nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	rec := httptest.NewRecorder()
	s.ServeHTTP(rec, req) // returns without waiting an hour
	if rec.Body.Len() != 0 {
		t.Errorf("answered %q to a request that went away", rec.Body)
	}
}

func TestTracks(t *testing.T) {
	ids := func(tracks []spotify.Track) []string {
		var out []string
		for _, tr := range tracks {
			out = append(out, tr.ID)
		}
		return out
	}
	base := fakespotify.Tracks(artist, 0, 10)
	if diff := cmp.Diff(fakespotify.Tracks(artist, 0, 10), base); diff != "" {
		t.Errorf("Tracks is not deterministic (-got +want):\n%s", diff)
	}
	if len(base) != 10 {
		t.Fatalf("got %d tracks, want 10", len(base))
	}
	seen := map[string]bool{}
	for i, tr := range base {
		if !validID(tr.ID) || seen[tr.ID] {
			t.Errorf("track %d: ID %q is not a fresh 22-character base62 ID", i, tr.ID)
		}
		seen[tr.ID] = true
		if tr.URI != "spotify:track:"+tr.ID || tr.Artists[0].ID != artist || len(tr.Album.Images) != 3 ||
			tr.ExternalURLs["spotify"] == "" || tr.Name == "" || tr.DurationMS == 0 {
			t.Errorf("track %d is not realistic: %+v", i, tr)
		}
		if i > 0 && *tr.Popularity > *base[i-1].Popularity {
			t.Errorf("track %d is more popular than track %d", i, i-1)
		}
	}

	for _, gen := range []int{1, 2, -1} {
		other := fakespotify.Tracks(artist, gen, 10)
		if cmp.Equal(ids(other), ids(base)) {
			t.Errorf("generation %d has the same IDs as generation 0", gen)
		}
		shared := 0
		for _, id := range ids(other) {
			if seen[id] {
				shared++
			}
		}
		if shared != 7 {
			t.Errorf("generation %d shares %d tracks with generation 0, want 7", gen, shared)
		}
	}
	if cmp.Equal(ids(fakespotify.Tracks(artist, 1, 10)), ids(fakespotify.Tracks(artist, 2, 10))) {
		t.Error("generations 1 and 2 have the same IDs")
	}
	if one, other := fakespotify.Tracks(artist, 0, 1), fakespotify.Tracks(artist, 1, 1); one[0].ID == other[0].ID {
		t.Error("a one-track list does not change with the generation")
	}
	if got := fakespotify.Tracks(artist, 0, 0); got == nil || len(got) != 0 {
		t.Errorf("Tracks(…, 0) = %v, want an empty list", got)
	}

	// Across artists, some tracks have no preview and some have guests.
	var noPreview, guests int
	for i := range 20 {
		for _, tr := range fakespotify.Tracks(fmt.Sprintf("%022d", i+1), 0, 10) {
			if tr.PreviewURL == nil {
				noPreview++
			}
			if len(tr.Artists) > 1 {
				guests++
			}
		}
	}
	if noPreview == 0 || noPreview == 200 || guests == 0 {
		t.Errorf("%d of 200 tracks without preview, %d with guests", noPreview, guests)
	}
}

func TestConcurrentUse(t *testing.T) {
	s := newServer(fakespotify.Config{Limit: 1000, Window: time.Second})
	srv := httptest.NewServer(s)
	defer srv.Close()
	tok := token(t, s)

	var wg sync.WaitGroup
	for i := range 16 {
		wg.Go(func() {
			for j := range 10 {
				switch (i + j) % 5 {
				case 0:
					s.FailNext(1, 500)
				case 1:
					s.SetGeneration(artist, j)
				case 2:
					_ = s.Stats()
				case 3:
					s.SetLatency(0)
				}
				req, _ := http.NewRequest(http.MethodGet, srv.URL+topTracks(artist), nil)
				req.Header.Set("Authorization", "Bearer "+tok)
				resp, err := srv.Client().Do(req)
				if err != nil {
					t.Error(err)
					return
				}
				resp.Body.Close()
			}
		})
	}
	wg.Wait()
	if got := s.Stats().Requests; got != 160 {
		t.Errorf("Requests = %d, want 160", got)
	}
}

func validID(s string) bool {
	if len(s) != 22 {
		return false
	}
	for _, c := range s {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z') {
			return false
		}
	}
	return true
}

func TestCloseForAndOutages(t *testing.T) {
	c := newClock()
	s := newServer(fakespotify.Config{Limit: 2, Window: time.Second, CloseFor: 35 * time.Second, Clock: c.Now})
	tok := token(t, s)
	path := "/v1/artists/" + artist + "/top-tracks?market=US"
	get(s, tok, path)
	get(s, tok, path)
	if r := get(s, tok, path); r.Code != 429 || r.Header().Get("Retry-After") != "35" {
		t.Fatalf("the call over the limit = %d Retry-After %q, want 429 35", r.Code, r.Header().Get("Retry-After"))
	}
	c.Set(t0.Add(10 * time.Second))
	if r := get(s, tok, path); r.Code != 429 || r.Header().Get("Retry-After") != "25" {
		t.Fatalf("a call while closed = %d Retry-After %q, want 429 25", r.Code, r.Header().Get("Retry-After"))
	}
	c.Set(t0.Add(36 * time.Second))
	if r := get(s, tok, path); r.Code != 200 {
		t.Fatalf("after the penalty = %d, want 200", r.Code)
	}
	if st := s.Stats(); st.Penalties != 1 {
		t.Errorf("Penalties = %d, want 1", st.Penalties)
	}
	s.SetDown(503)
	if r := get(s, tok, path); r.Code != 503 {
		t.Errorf("during SetDown(503) = %d", r.Code)
	}
	s.SetDown(-1)
	srv := httptest.NewServer(s)
	defer srv.Close()
	req, _ := http.NewRequest(http.MethodGet, srv.URL+path, nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	if resp, err := srv.Client().Do(req); err == nil {
		resp.Body.Close()
		t.Errorf("during SetDown(-1) the call got an answer, %d", resp.StatusCode)
	}
	s.SetDown(0)
	s.SetTokenDown(503)
	req = httptest.NewRequest(http.MethodPost, "/api/token", strings.NewReader("grant_type=client_credentials"))
	rec := httptest.NewRecorder()
	s.ServeHTTP(rec, req)
	if rec.Code != 503 {
		t.Errorf("token endpoint during SetTokenDown(503) = %d", rec.Code)
	}
	if st := s.Stats(); st.DuringOutage != 2 {
		t.Errorf("DuringOutage = %d, want 2", st.DuringOutage)
	}
}

func withoutISRC(tracks []spotify.Track) []spotify.Track {
	for i := range tracks {
		tracks[i].ISRC = nil
	}
	return tracks
}

// TestFieldsRemoved: a Development Mode app's answer since February 2026
// has no popularity, available_markets or linked_from, and its albums no
// popularity, label or album_group; external_ids (restored in March) stays.
func TestFieldsRemoved(t *testing.T) {
	s := newServer(fakespotify.Config{})
	s.SetFieldsRemoved(true)
	rec := get(s, token(t, s), topTracks(artist))
	if rec.Code != 200 {
		t.Fatalf("status = %d: %s", rec.Code, rec.Body)
	}
	var raw struct {
		Tracks []map[string]json.RawMessage `json:"tracks"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &raw); err != nil {
		t.Fatal(err)
	}
	if len(raw.Tracks) != 10 {
		t.Fatalf("%d tracks, want 10", len(raw.Tracks))
	}
	for i, tr := range raw.Tracks {
		for _, gone := range []string{"popularity", "available_markets", "linked_from"} {
			if _, ok := tr[gone]; ok {
				t.Errorf("track %d has %s", i, gone)
			}
		}
		for _, kept := range []string{"id", "name", "duration_ms", "external_ids", "preview_url", "album"} {
			if _, ok := tr[kept]; !ok {
				t.Errorf("track %d has no %s", i, kept)
			}
		}
		var album map[string]json.RawMessage
		if err := json.Unmarshal(tr["album"], &album); err != nil {
			t.Fatal(err)
		}
		for _, gone := range []string{"popularity", "label", "album_group", "available_markets"} {
			if _, ok := album[gone]; ok {
				t.Errorf("track %d's album has %s", i, gone)
			}
		}
	}
	s.SetFieldsRemoved(false)
	rec = get(s, token(t, s), topTracks(artist))
	if !strings.Contains(rec.Body.String(), `"popularity":`) {
		t.Errorf("after SetFieldsRemoved(false) the answer has no popularity")
	}
}

// TestRefusals: the Development Mode app's 403 has Spotify's bare body; the
// Premium-lapsed one its own message; the token endpoint still answers.
func TestRefusals(t *testing.T) {
	for _, tt := range []struct {
		name string
		cfg  fakespotify.Config
		want string
	}{
		{"development mode", fakespotify.Config{DevelopmentMode: true}, `{"error":{"status":403,"message":"Forbidden"}}`},
		{"premium lapsed", fakespotify.Config{PremiumLapsed: true},
			`{"error":{"status":403,"message":"Active premium subscription required for the owner of the app"}}`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s := newServer(tt.cfg)
			rec := get(s, token(t, s), topTracks(artist))
			if rec.Code != http.StatusForbidden || strings.TrimSpace(rec.Body.String()) != tt.want {
				t.Errorf("answer %d %s, want 403 %s", rec.Code, rec.Body, tt.want)
			}
		})
	}
}
