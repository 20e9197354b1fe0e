package spotify_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/sixpotify/top-tracks/internal/fakespotify"
	"github.com/sixpotify/top-tracks/internal/gate"
	"github.com/sixpotify/top-tracks/internal/spotify"
)

// TestRefusals tells the 403s of top-tracks apart by their bodies: each is a
// *RefusedError of its kind that still matches ErrForbidden, says what to
// do, and is what the gate is told (so that /readyz prints it).
func TestRefusals(t *testing.T) {
	tests := []struct {
		name     string
		fake     fakespotify.Config
		body     string // answered by a handler of the test's own when set
		want     spotify.Refusal
		wantText []string
	}{
		{
			name:     "Development Mode app (the stand-in)",
			fake:     fakespotify.Config{DevelopmentMode: true},
			want:     spotify.RefusalDevelopmentMode,
			wantText: []string{`"Forbidden"`, "Extended Quota Mode", spotify.MigrationGuideURL, "9 March 2026"},
		},
		{
			name:     "Premium lapsed (the stand-in)",
			fake:     fakespotify.Config{PremiumLapsed: true},
			want:     spotify.RefusalPremiumLapsed,
			wantText: []string{"Active premium subscription required for the owner of the app", "resubscribes"},
		},
		{
			name:     "Spotify's bare body",
			body:     `{"error":{"status":403,"message":"Forbidden"}}`,
			want:     spotify.RefusalDevelopmentMode,
			wantText: []string{"Extended Quota Mode"},
		},
		{
			name:     "another message",
			body:     `{"error":{"status":403,"message":"Insufficient client scope"}}`,
			want:     spotify.RefusalOther,
			wantText: []string{"Insufficient client scope", "refuses top-tracks"},
		},
		{
			name:     "no JSON body",
			body:     `<html>403</html>`,
			want:     spotify.RefusalOther,
			wantText: []string{"HTTP 403"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var o envOptions
			if tt.body != "" {
				o.api = func(w http.ResponseWriter, r *http.Request) {
					writeJSON(w, http.StatusForbidden, tt.body)
				}
			}
			e := newEnv(t, tt.fake, o)
			_, err := e.client.TopTracks(context.Background(), artistA, "US")
			if !errors.Is(err, spotify.ErrForbidden) {
				t.Fatalf("error %v does not match ErrForbidden", err)
			}
			var re *spotify.RefusedError
			if !errors.As(err, &re) {
				t.Fatalf("error %v is not a *RefusedError", err)
			}
			if re.Kind != tt.want || spotify.RefusalOf(err) != tt.want {
				t.Errorf("refusal = %q (RefusalOf %q), want %q", re.Kind, spotify.RefusalOf(err), tt.want)
			}
			for _, w := range tt.wantText {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
			if spotify.Temporary(err) {
				t.Errorf("Temporary(%v) = true; a refusal is not", err)
			}
			e.mu.Lock()
			outcomes := e.outcomes
			e.mu.Unlock()
			if len(outcomes) != 1 || outcomes[0].Fault != gate.Forbidden || spotify.RefusalOf(outcomes[0].Err) != tt.want {
				t.Errorf("the gate was told %+v; want one Forbidden outcome carrying the %q refusal", outcomes, tt.want)
			}
			e.checkNoSecrets(t, err)
		})
	}
}

// TestRefusalHidesTheToken: a 403 body that quotes the access token does not
// put it in the error.
func TestRefusalHidesTheToken(t *testing.T) {
	e := newEnv(t, fakespotify.Config{}, envOptions{api: func(w http.ResponseWriter, r *http.Request) {
		tok := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
		writeJSON(w, http.StatusForbidden, `{"error":{"status":403,"message":"token `+tok+` may not"}}`)
	}})
	_, err := e.client.TopTracks(context.Background(), artistA, "US")
	if spotify.RefusalOf(err) != spotify.RefusalOther {
		t.Fatalf("error %v: refusal %q, want other", err, spotify.RefusalOf(err))
	}
	e.checkNoSecrets(t, err)
	e.mu.Lock()
	outcomes := e.outcomes
	e.mu.Unlock()
	if len(outcomes) != 1 {
		t.Fatalf("%d outcomes, want 1", len(outcomes))
	}
	e.checkNoSecrets(t, outcomes[0].Err)
}

func TestRefusalOf(t *testing.T) {
	if got := spotify.RefusalOf(errors.New("x")); got != "" {
		t.Errorf("RefusalOf(another error) = %q, want \"\"", got)
	}
	if got := spotify.RefusalOf(spotify.ErrForbidden); got != spotify.RefusalOther {
		t.Errorf("RefusalOf(ErrForbidden) = %q, want other", got)
	}
}
