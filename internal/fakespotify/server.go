// Package fakespotify is a stand-in for the two Spotify endpoints the project
// calls: the client-credentials token endpoint (POST /api/token) and an
// artist's top tracks (GET /v1/artists/{id}/top-tracks?market=XX). It is an
// http.Handler, for tests with httptest, benchmarks, and cmd/fakespotify.
//
// It behaves as Spotify does where the project depends on it: tokens expire,
// calls over a rolling-window budget are answered 429 with a Retry-After,
// unknown artists are 404, malformed IDs 400, and tracks carry the fields
// Spotify sends, available_markets included. It also answers as Spotify does
// in 2026 when asked to: a Development Mode app's 403, a lapsed Premium's
// 403, tracks without the fields removed in February 2026, a spent quota
// (429 QUOTA_EXCEEDED with a long Retry-After) and 429s with no Retry-After.
// It adds knobs to inject faults and counters to check how a client behaved
// (Stats).
package fakespotify

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/json"
	mrand "math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/sixpotify/top-tracks/internal/artistid"
	"github.com/sixpotify/top-tracks/internal/spotify"
)

// Config configures a Server. The zero value is a server that accepts empty
// credentials and never limits.
type Config struct {
	ClientID, ClientSecret string
	// TokenTTL is how long an access token is accepted (default 1h).
	TokenTTL time.Duration
	// Limit and Window: at most Limit API calls in any Window (a rolling
	// window, as Spotify's 30-second one). Either 0 means no limit.
	Limit  int
	Window time.Duration
	// Latency delays every API answer (not token answers).
	Latency time.Duration
	// ErrorRate is the share of API calls, past the rate limit, answered
	// 500, 502 or 503.
	ErrorRate float64
	// Tracks is how many tracks an artist has (default 10; negative: none).
	Tracks int
	// Penalty, when set, is Spotify's long penalty: a call that arrives
	// before an announced Retry-After has passed is answered 429 with a
	// Retry-After of Penalty.
	Penalty time.Duration
	// CloseFor, when set, closes the API for this long after any call over
	// the limit: every call until then is answered 429 with the time left,
	// as Spotify answers repeat offenders (Stats.Penalties counts them).
	CloseFor time.Duration
	// Seed seeds the choice of the calls that fail under ErrorRate.
	Seed int64
	// Clock tells the time for tokens and the rate limit (default time.Now).
	// Latency is always real time.
	Clock func() time.Time
	// DevelopmentMode starts the server as Spotify answers a Development
	// Mode app since 9 March 2026 (see SetEndpointRemoved).
	DevelopmentMode bool
	// PremiumLapsed starts it as SetPremiumLapsed(true) does.
	PremiumLapsed bool
	// FieldsRemoved starts it as SetFieldsRemoved(true) does.
	FieldsRemoved bool
	// QuotaExceeded starts it as SetQuotaExceeded(QuotaExceeded) does.
	QuotaExceeded time.Duration
	// Throttled starts it as SetThrottled(true) does.
	Throttled bool
}

// Stats counts what a Server has seen. Requests counts API calls, every
// answer included; TokenRequests counts calls to the token endpoint.
type Stats struct {
	Requests         int64
	OK               int64
	TooMany          int64 // 429
	NotFound         int64 // 404
	ServerErrors     int64 // 5xx
	Unauthorized     int64 // 401
	BadRequests      int64 // 400, InvalidIDs included
	InvalidIDs       int64 // artist IDs that are not 22 characters of [0-9A-Za-z]
	InsideRetryAfter int64 // calls that came before an announced Retry-After had passed
	// InsideOwnRetryAfter counts the calls made with an access token before
	// a Retry-After announced to a call with that same token had passed:
	// what one process (one token) could have known and still sent. In a
	// fleet, InsideRetryAfter also counts calls of processes that were never
	// told.
	InsideOwnRetryAfter int64
	Penalties           int64 // times CloseFor closed the API
	DuringOutage        int64 // API calls that met SetDown
	TokenRequests       int64
	PerArtist           map[string]int // OK answers per artist ID
}

// Server is the stand-in. It is safe for concurrent use; so are its knobs.
type Server struct {
	clientID, clientSecret string
	ttl                    time.Duration
	tracks                 int
	errorRate              float64
	clock                  func() time.Time

	mu         sync.Mutex
	rng        *mrand.Rand
	tokens     map[string]time.Time // access token → expiry
	limit      int
	window     time.Duration
	latency    time.Duration
	calls      []time.Time          // accepted calls in the window, oldest first
	retryAfter time.Time            // end of the latest Retry-After announced
	retryFor   map[string]time.Time // access token → end of the latest Retry-After announced to it
	failN      int
	failStatus int
	penalty    time.Duration
	closeFor   time.Duration
	closedTill time.Time
	down       int           // SetDown's status (-1: drop the connection)
	tokenDown  int           // SetTokenDown's status
	quota      time.Duration // while set, every call is answered 429 QUOTA_EXCEEDED
	removed    bool          // while set, top-tracks answers 403, as to a Development Mode app
	lapsed     bool          // while set, every call answers 403: the owner's Premium lapsed
	fields     bool          // while set, tracks come without the fields removed in February 2026
	throttled  bool          // while set, every call is answered 429 without Retry-After
	gens       map[string]int
	stats      Stats
}

// New returns a Server for cfg.
func New(cfg Config) *Server {
	s := &Server{
		clientID:     cfg.ClientID,
		clientSecret: cfg.ClientSecret,
		ttl:          cfg.TokenTTL,
		tracks:       cfg.Tracks,
		errorRate:    cfg.ErrorRate,
		clock:        cfg.Clock,
		rng:          mrand.New(mrand.NewPCG(uint64(cfg.Seed), 0x5eed)),
		tokens:       make(map[string]time.Time),
		retryFor:     make(map[string]time.Time),
		limit:        cfg.Limit,
		window:       cfg.Window,
		latency:      cfg.Latency,
		penalty:      cfg.Penalty,
		closeFor:     cfg.CloseFor,
		gens:         make(map[string]int),
		stats:        Stats{PerArtist: make(map[string]int)},
		removed:      cfg.DevelopmentMode,
		lapsed:       cfg.PremiumLapsed,
		fields:       cfg.FieldsRemoved,
		quota:        cfg.QuotaExceeded,
		throttled:    cfg.Throttled,
	}
	if s.ttl <= 0 {
		s.ttl = time.Hour
	}
	switch {
	case s.tracks == 0:
		s.tracks = 10
	case s.tracks < 0:
		s.tracks = 0
	}
	if s.clock == nil {
		s.clock = time.Now
	}
	return s
}

// set stores v in *field, one of the knobs, holding s.mu as every answer
// does when it reads them.
func set[T any](s *Server, field *T, v T) {
	s.mu.Lock()
	defer s.mu.Unlock()
	*field = v
}

// SetQuotaExceeded makes every API call answer 429 with the reason
// QUOTA_EXCEEDED and a Retry-After of retryAfter, as Spotify answers a
// development-mode app whose quota is spent; 0 ends it.
func (s *Server) SetQuotaExceeded(retryAfter time.Duration) { set(s, &s.quota, retryAfter) }

// SetThrottled makes every API call answer 429 with no Retry-After header,
// as users report Spotify sometimes answers.
func (s *Server) SetThrottled(throttled bool) { set(s, &s.throttled, throttled) }

// SetEndpointRemoved makes top-tracks answer 403 with Spotify's bare body,
// {"error":{"status":403,"message":"Forbidden"}}, as Spotify answers a
// Development Mode app since it removed the endpoint for them (new apps
// since 11 February 2026, every one since 9 March 2026).
func (s *Server) SetEndpointRemoved(removed bool) { set(s, &s.removed, removed) }

// SetPremiumLapsed makes every API call answer 403 "Active premium
// subscription required for the owner of the app", as reported of a
// Development Mode app whose owner's Premium lapsed. Tokens are still issued.
func (s *Server) SetPremiumLapsed(lapsed bool) { set(s, &s.lapsed, lapsed) }

// SetFieldsRemoved makes tracks come as Spotify sends them to a Development
// Mode app since February 2026: without popularity, available_markets and
// linked_from (and, in albums, without popularity, label and album_group).
// external_ids stays, as Spotify restored it in March 2026.
func (s *Server) SetFieldsRemoved(removed bool) { set(s, &s.fields, removed) }

// SetDown makes every API call fail until SetDown(0): answered status
// (such as 503), or, for -1, the connection dropped without an answer.
func (s *Server) SetDown(status int) { set(s, &s.down, status) }

// SetTokenDown makes the token endpoint answer status (such as 503) until
// SetTokenDown(0).
func (s *Server) SetTokenDown(status int) { set(s, &s.tokenDown, status) }

// FailNext makes the next n API calls answer status, before any other check.
// A 429 answered so has no Retry-After; a 502 has an HTML body, as Spotify's
// gateway sends.
func (s *Server) FailNext(n, status int) {
	s.mu.Lock()
	s.failN, s.failStatus = n, status
	s.mu.Unlock()
}

// ExpireTokens makes every access token issued so far expired.
func (s *Server) ExpireTokens() {
	s.mu.Lock()
	clear(s.tokens)
	s.mu.Unlock()
}

// SetLatency sets the delay of API answers.
func (s *Server) SetLatency(d time.Duration) { set(s, &s.latency, d) }

// SetLimit sets the rate limit: at most limit calls in any window (0: none).
// Calls already accepted still count.
func (s *Server) SetLimit(limit int, window time.Duration) {
	s.mu.Lock()
	s.limit, s.window = limit, window
	s.mu.Unlock()
}

// SetGeneration changes the artist's top tracks to those of Tracks(id, gen, n).
func (s *Server) SetGeneration(id string, gen int) {
	s.mu.Lock()
	s.gens[id] = gen
	s.mu.Unlock()
}

// Stats returns a copy of the counters.
func (s *Server) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.stats
	st.PerArtist = make(map[string]int, len(s.stats.PerArtist))
	for id, n := range s.stats.PerArtist {
		st.PerArtist[id] = n
	}
	return st
}

// ServeHTTP answers POST /api/token and GET /v1/artists/{id}/top-tracks.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p := r.URL.EscapedPath()
	switch {
	case p == "/api/token":
		s.serveToken(w, r)
	case strings.HasPrefix(p, "/v1/"):
		s.serveAPI(w, r)
	default:
		writeError(w, answer{status: http.StatusNotFound, message: "Service not found"})
	}
}

func (s *Server) serveToken(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.stats.TokenRequests++
	down := s.tokenDown
	s.mu.Unlock()
	if down != 0 {
		w.WriteHeader(down)
		return
	}

	oauthError := func(status int, code, desc string) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_ = json.NewEncoder(w).Encode(map[string]string{"error": code, "error_description": desc})
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		oauthError(http.StatusMethodNotAllowed, "invalid_request", "POST only")
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	if err := r.ParseForm(); err != nil {
		oauthError(http.StatusBadRequest, "invalid_request", "unreadable form")
		return
	}
	if r.PostForm.Get("grant_type") != "client_credentials" {
		oauthError(http.StatusBadRequest, "unsupported_grant_type", "grant_type must be client_credentials")
		return
	}
	id, secret := r.PostForm.Get("client_id"), r.PostForm.Get("client_secret")
	if u, p, ok := r.BasicAuth(); ok {
		// RFC 6749 2.3.1: both are form-encoded before Basic auth.
		id, secret = formUnescape(u), formUnescape(p)
	}
	if !equal(id, s.clientID) || !equal(secret, s.clientSecret) {
		oauthError(http.StatusBadRequest, "invalid_client", "Invalid client")
		return
	}

	tok := rand.Text()
	s.mu.Lock()
	now := s.clock()
	for t, exp := range s.tokens {
		if !now.Before(exp) {
			delete(s.tokens, t)
		}
	}
	s.tokens[tok] = now.Add(s.ttl)
	s.mu.Unlock()

	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_ = json.NewEncoder(w).Encode(struct {
		AccessToken string `json:"access_token"`
		TokenType   string `json:"token_type"`
		ExpiresIn   int64  `json:"expires_in"`
	}{tok, "Bearer", int64((s.ttl + time.Second - 1) / time.Second)})
}

// answer is what the server decided to send to an API call.
type answer struct {
	status     int
	message    string
	retryAfter int // seconds; 0: no header
	reason     string
	artistID   string
	gen        int
}

func (s *Server) serveAPI(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	if down := s.down; down != 0 {
		s.stats.Requests++
		s.stats.DuringOutage++
		s.mu.Unlock()
		if down < 0 {
			if hj, ok := w.(http.Hijacker); ok {
				if conn, _, err := hj.Hijack(); err == nil {
					_ = conn.Close()
					return
				}
			}
			down = http.StatusServiceUnavailable
		}
		s.mu.Lock()
		s.stats.ServerErrors++
		s.mu.Unlock()
		writeError(w, answer{status: down, message: http.StatusText(down)})
		return
	}
	a := s.decide(r, s.clock())
	latency, removedFields := s.latency, s.fields
	s.mu.Unlock()

	if latency > 0 {
		t := time.NewTimer(latency)
		defer t.Stop()
		select {
		case <-t.C:
		case <-r.Context().Done():
			return
		}
	}
	if a.status != http.StatusOK {
		writeError(w, a)
		if a.retryAfter > 0 {
			// The Retry-After counts from when the client can read it: once
			// the answer is on its way, after the latency, not when the call
			// was decided. A call the client sent before that was already on
			// its way too, and is not one sent inside the Retry-After.
			_ = http.NewResponseController(w).Flush()
			s.mu.Lock()
			until := s.clock().Add(time.Duration(a.retryAfter) * time.Second)
			if until.After(s.retryAfter) {
				s.retryAfter = until
			}
			if tok := bearer(r); until.After(s.retryFor[tok]) {
				s.retryFor[tok] = until
			}
			s.mu.Unlock()
		}
		return
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	tracks := Tracks(a.artistID, a.gen, s.tracks)
	if removedFields {
		tracks = WithoutRemovedFields(tracks)
	}
	body := struct {
		Tracks []wireTrack `json:"tracks"`
	}{Tracks: []wireTrack{}}
	for _, t := range tracks {
		body.Tracks = append(body.Tracks, wire(t, removedFields))
	}
	_ = json.NewEncoder(w).Encode(body)
}

// bearer is the access token a call carries ("" for none).
func bearer(r *http.Request) string {
	tok, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if tok == r.Header.Get("Authorization") {
		return ""
	}
	return tok
}

// decide answers one API call; s.mu is held.
func (s *Server) decide(r *http.Request, now time.Time) answer {
	s.stats.Requests++
	if now.Before(s.retryAfter) {
		s.stats.InsideRetryAfter++
	}
	if until, ok := s.retryFor[bearer(r)]; ok && now.Before(until) {
		s.stats.InsideOwnRetryAfter++
	}
	a := s.check(r, now)
	switch {
	case a.status == http.StatusOK:
		s.stats.OK++
		s.stats.PerArtist[a.artistID]++
	case a.status == http.StatusTooManyRequests:
		s.stats.TooMany++
	case a.status == http.StatusNotFound:
		s.stats.NotFound++
	case a.status == http.StatusUnauthorized:
		s.stats.Unauthorized++
	case a.status == http.StatusBadRequest:
		s.stats.BadRequests++
	case a.status >= 500:
		s.stats.ServerErrors++
	}
	return a
}

func (s *Server) check(r *http.Request, now time.Time) answer {
	if s.failN > 0 {
		s.failN--
		return answer{status: s.failStatus, message: http.StatusText(s.failStatus)}
	}
	if r.Method != http.MethodGet {
		return answer{status: http.StatusMethodNotAllowed, message: "Method not allowed"}
	}

	tok := bearer(r)
	if tok == "" {
		return answer{status: http.StatusUnauthorized, message: "No token provided"}
	}
	exp, known := s.tokens[tok]
	if !known {
		return answer{status: http.StatusUnauthorized, message: "Invalid access token"}
	}
	if !now.Before(exp) {
		return answer{status: http.StatusUnauthorized, message: "The access token expired"}
	}

	if s.lapsed {
		return answer{status: http.StatusForbidden, message: "Active premium subscription required for the owner of the app"}
	}
	if s.removed {
		return answer{status: http.StatusForbidden, message: "Forbidden"}
	}
	if s.throttled {
		return answer{status: http.StatusTooManyRequests, message: "API rate limit exceeded"}
	}
	if s.quota > 0 {
		return answer{status: http.StatusTooManyRequests, message: "Quota exceeded", reason: "QUOTA_EXCEEDED", retryAfter: seconds(s.quota)}
	}
	if now.Before(s.closedTill) {
		return answer{status: http.StatusTooManyRequests, message: "API rate limit exceeded", retryAfter: seconds(s.closedTill.Sub(now))}
	}
	if s.penalty > 0 && now.Before(s.retryAfter) {
		return answer{status: http.StatusTooManyRequests, message: "API rate limit exceeded", retryAfter: seconds(s.penalty)}
	}
	if s.limit > 0 && s.window > 0 {
		i := 0
		for i < len(s.calls) && now.Sub(s.calls[i]) >= s.window {
			i++
		}
		s.calls = s.calls[i:]
		if len(s.calls) >= s.limit {
			if s.closeFor > 0 {
				s.stats.Penalties++
				s.closedTill = now.Add(s.closeFor)
				return answer{status: http.StatusTooManyRequests, message: "API rate limit exceeded", retryAfter: seconds(s.closeFor)}
			}
			wait := s.calls[0].Add(s.window).Sub(now)
			secs := max(1, int((wait+time.Second-1)/time.Second))
			return answer{status: http.StatusTooManyRequests, message: "API rate limit exceeded", retryAfter: secs}
		}
		s.calls = append(s.calls, now)
	}

	rest, ok1 := strings.CutPrefix(r.URL.EscapedPath(), "/v1/artists/")
	id, ok2 := strings.CutSuffix(rest, "/top-tracks")
	if !ok1 || !ok2 {
		return answer{status: http.StatusNotFound, message: "Service not found"}
	}
	if !artistid.Valid(id) {
		s.stats.InvalidIDs++
		return answer{status: http.StatusBadRequest, message: "invalid id"}
	}
	q := r.URL.Query()
	if !q.Has("market") {
		return answer{status: http.StatusBadRequest, message: "Missing market parameter"}
	}
	if m := q.Get("market"); len(m) != 2 || m[0] < 'A' || m[0] > 'Z' || m[1] < 'A' || m[1] > 'Z' {
		return answer{status: http.StatusBadRequest, message: "Invalid market code"}
	}
	if strings.HasPrefix(id, "0000") {
		return answer{status: http.StatusNotFound, message: "Resource not found"}
	}
	if s.errorRate > 0 && s.rng.Float64() < s.errorRate {
		status := []int{http.StatusInternalServerError, http.StatusBadGateway, http.StatusServiceUnavailable}[s.rng.IntN(3)]
		return answer{status: status, message: http.StatusText(status)}
	}
	return answer{status: http.StatusOK, artistID: id, gen: s.gens[id]}
}

// writeError writes Spotify's error body, or for a 502 the HTML page of a
// gateway.
func writeError(w http.ResponseWriter, a answer) {
	if a.retryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(a.retryAfter))
	}
	if a.status == http.StatusBadGateway {
		w.Header().Set("Content-Type", "text/html")
		w.WriteHeader(a.status)
		_, _ = w.Write([]byte("<html><body><h1>502 Bad Gateway</h1></body></html>\n"))
		return
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(a.status)
	var body struct {
		Error struct {
			Status  int    `json:"status"`
			Message string `json:"message"`
			Reason  string `json:"reason,omitempty"`
		} `json:"error"`
	}
	body.Error.Status, body.Error.Message, body.Error.Reason = a.status, a.message, a.reason
	_ = json.NewEncoder(w).Encode(body)
}

// wireTrack is a track as Spotify sends it, with the fields the client
// drops. Its ISRC hides the Track's top-level "isrc" (Spotify sends the
// ISRC in external_ids only); preview_url is sent, null included. The
// fields Spotify no longer sends to a Development Mode app are left out
// when empty (see wire).
type wireTrack struct {
	spotify.Track
	ISRC             *string           `json:"isrc,omitempty"`
	PreviewURL       *string           `json:"preview_url"`
	Album            wireAlbum         `json:"album"`
	AvailableMarkets []string          `json:"available_markets,omitempty"`
	DiscNumber       int               `json:"disc_number"`
	ExternalIDs      map[string]string `json:"external_ids"`
	Href             string            `json:"href"`
	IsLocal          bool              `json:"is_local"`
	Type             string            `json:"type"`
}

type wireAlbum struct {
	spotify.Album
	AlbumGroup       string   `json:"album_group,omitempty"`
	Label            string   `json:"label,omitempty"`
	Popularity       int      `json:"popularity,omitempty"`
	AvailableMarkets []string `json:"available_markets,omitempty"`
	Href             string   `json:"href"`
	Type             string   `json:"type"`
}

// wire returns t as Spotify sends it. With fieldsRemoved, as Spotify sends
// it to a Development Mode app since February 2026: the track's
// available_markets and linked_from are gone, and so are the album's
// popularity, label, album_group and available_markets (the caller drops
// the track's popularity, so that the field is left out).
func wire(t spotify.Track, fieldsRemoved bool) wireTrack {
	w := wireTrack{
		Track:       t,
		PreviewURL:  t.PreviewURL,
		Album:       wireAlbum{Album: t.Album, Href: "https://api.spotify.com/v1/albums/" + t.Album.ID, Type: "album"},
		DiscNumber:  1,
		ExternalIDs: externalIDs(t),
		Href:        "https://api.spotify.com/v1/tracks/" + t.ID,
		Type:        "track",
	}
	if !fieldsRemoved {
		w.AvailableMarkets, w.Album.AvailableMarkets = markets, markets
		w.Album.AlbumGroup, w.Album.Label, w.Album.Popularity = t.Album.AlbumType, "Sixpotify Records", 50
	}
	return w
}

func externalIDs(t spotify.Track) map[string]string {
	if t.ISRC == nil {
		return map[string]string{}
	}
	return map[string]string{"isrc": *t.ISRC}
}

func formUnescape(s string) string {
	if u, err := url.QueryUnescape(s); err == nil {
		return u
	}
	return s
}

func equal(a, b string) bool { return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1 }

// seconds rounds d up to whole seconds, at least one.
func seconds(d time.Duration) int {
	return max(1, int((d+time.Second-1)/time.Second))
}
