package spotify_test

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/sixpotify/top-tracks/internal/fakespotify"
	"github.com/sixpotify/top-tracks/internal/gate"
	"github.com/sixpotify/top-tracks/internal/spotify"
	"github.com/sixpotify/top-tracks/internal/testutil"
)

// Recognisable credentials: no error may contain them.
const (
	testClientID     = "sixpotify-test-client"
	testClientSecret = "SECRET-sixpotify-do-not-leak-8f3a"
)

// Artists the stand-in knows, and one it does not (its ID starts with 0000).
const (
	artistA       = "0TnOYISbd1XYRBk9myaseg"
	artistB       = "4Z8W4fKeB5YxbusRsdQVPb"
	artistUnknown = "0000YISbd1XYRBk9myaseg"
)

// env is a Client talking to a fakespotify.Server through httptest.
type env struct {
	fake   *fakespotify.Server
	srv    *httptest.Server
	client *spotify.Client

	tokenCalls atomic.Int64 // OnToken calls
	waits      atomic.Int64 // Limiter.Wait calls

	mu        sync.Mutex
	tokens    []string // access tokens the stand-in issued
	tokenErrs []error  // errors passed to OnToken
	statuses  []int    // statuses passed to OnResponse
	outcomes  []gate.Outcome
}

type envOptions struct {
	// api, if set, answers /v1/ instead of the stand-in.
	api http.HandlerFunc
	// token, if set, answers /api/token instead of the stand-in.
	token http.HandlerFunc
	// onAPI, if set, is called as each API request arrives.
	onAPI func(*http.Request)
	// secret overrides the client secret the Client sends.
	secret string
	// httpClient builds the Client's HTTP client from the test server's.
	httpClient func(*httptest.Server) *http.Client
	limiter    limiterFunc
	// stillClear, if set, answers the gate's StillClear (else true).
	stillClear func() bool
	// connState, if set, is the server's http.Server.ConnState.
	connState func(net.Conn, http.ConnState)
}

func newEnv(t *testing.T, fc fakespotify.Config, o envOptions) *env {
	t.Helper()
	fc.ClientID, fc.ClientSecret = testClientID, testClientSecret
	e := &env{fake: fakespotify.New(fc)}
	e.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path == "/api/token" && o.token != nil:
			o.token(w, r)
		case r.URL.Path == "/api/token":
			e.serveToken(w, r)
		default:
			if o.onAPI != nil {
				o.onAPI(r)
			}
			if o.api != nil {
				o.api(w, r)
				return
			}
			e.fake.ServeHTTP(w, r)
		}
	}))
	e.srv.Config.ConnState = o.connState
	e.srv.Start()
	t.Cleanup(e.srv.Close)

	secret := testClientSecret
	if o.secret != "" {
		secret = o.secret
	}
	hc := e.srv.Client()
	if o.httpClient != nil {
		hc = o.httpClient(e.srv)
	}
	lim := o.limiter
	if lim == nil {
		lim = limiterFunc(func(ctx context.Context) error { return nil })
	}
	c, err := spotify.New(spotify.Config{
		APIURL:       e.srv.URL + "/v1",
		TokenURL:     e.srv.URL + "/api/token",
		ClientID:     testClientID,
		ClientSecret: secret,
		HTTPClient:   hc,
		Gate: testGate{stillClear: o.stillClear, wait: func(ctx context.Context) (func(gate.Outcome), error) {
			e.waits.Add(1)
			if err := lim(ctx); err != nil {
				return nil, err
			}
			return func(o gate.Outcome) {
				e.mu.Lock()
				e.outcomes = append(e.outcomes, o)
				e.mu.Unlock()
			}, nil
		}},
		OnResponse: func(status int, _ time.Duration) {
			e.mu.Lock()
			e.statuses = append(e.statuses, status)
			e.mu.Unlock()
		},
		OnToken: func(err error) {
			e.tokenCalls.Add(1)
			e.mu.Lock()
			e.tokenErrs = append(e.tokenErrs, err)
			e.mu.Unlock()
		},
	})
	if err != nil {
		t.Fatalf("spotify.New: %v", err)
	}
	e.client = c
	return e
}

// serveToken forwards to the stand-in and records the token it issues.
func (e *env) serveToken(w http.ResponseWriter, r *http.Request) {
	rec := httptest.NewRecorder()
	e.fake.ServeHTTP(rec, r)
	var body struct {
		AccessToken string `json:"access_token"`
	}
	if json.Unmarshal(rec.Body.Bytes(), &body) == nil && body.AccessToken != "" {
		e.mu.Lock()
		e.tokens = append(e.tokens, body.AccessToken)
		e.mu.Unlock()
	}
	for k, v := range rec.Header() {
		w.Header()[k] = v
	}
	w.WriteHeader(rec.Code)
	_, _ = w.Write(rec.Body.Bytes())
}

// checkNoSecrets fails t if err's text holds the client secret or a token.
func (e *env) checkNoSecrets(t *testing.T, err error) {
	t.Helper()
	if err == nil {
		return
	}
	e.mu.Lock()
	secrets := append([]string{testClientSecret}, e.tokens...)
	e.mu.Unlock()
	for _, s := range secrets {
		if strings.Contains(err.Error(), s) {
			t.Errorf("error %q holds a secret", err)
		}
	}
}

func (e *env) responseStatuses() []int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]int(nil), e.statuses...)
}

// limiterFunc decides whether a Wait lets a call through.
type limiterFunc func(ctx context.Context) error

// testGate is a spotify.Gate: wait answers Wait, stillClear (if set)
// StillClear.
type testGate struct {
	wait       func(ctx context.Context) (func(gate.Outcome), error)
	stillClear func() bool
}

func (g testGate) Wait(ctx context.Context) (func(gate.Outcome), error) { return g.wait(ctx) }

func (g testGate) StillClear() bool { return g.stillClear == nil || g.stillClear() }

// gateOutcomes returns the outcomes the client reported to its gate.
func (e *env) gateOutcomes() []gate.Outcome {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]gate.Outcome(nil), e.outcomes...)
}

// newFakeClock returns a clock that moves only when told.
func newFakeClock() *testutil.Clock {
	return testutil.NewClock(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC))
}

// checkError checks an error as the tables of errors want it: it is each of
// wantIs (errors.Is), Temporary says wantTemporary, and its text says
// wantText.
func checkError(t *testing.T, err error, wantIs []error, wantTemporary bool, wantText string) {
	t.Helper()
	for _, target := range wantIs {
		if !errors.Is(err, target) {
			t.Errorf("error %q is not %q", err, target)
		}
	}
	if got := spotify.Temporary(err); got != wantTemporary {
		t.Errorf("Temporary(%q) = %v, want %v", err, got, wantTemporary)
	}
	if !strings.Contains(err.Error(), wantText) {
		t.Errorf("error %q does not say %q", err, wantText)
	}
}

// checkAs checks that err is a P (errors.As) exactly when want is not nil,
// and then that it equals want.
func checkAs[E any, P interface {
	*E
	error
}](t *testing.T, err error, want P) {
	t.Helper()
	var got P
	if errors.As(err, &got) != (want != nil) {
		t.Errorf("error %q: as %T = %v, want %v", err, got, got != nil, want != nil)
	} else if got != nil {
		if diff := cmp.Diff(got, want); diff != "" {
			t.Errorf("%T (-got +want):\n%s", got, diff)
		}
	}
}

// writeJSON answers status with body.
func writeJSON(w http.ResponseWriter, status int, body string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write([]byte(body))
}
