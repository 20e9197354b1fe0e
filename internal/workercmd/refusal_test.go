package workercmd_test

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/sixpotify/top-tracks/internal/spotify"
	"github.com/sixpotify/top-tracks/internal/store/sqlitestore"
	"github.com/sixpotify/top-tracks/internal/testutil"
	"github.com/sixpotify/top-tracks/internal/workercmd"
)

// TestDevelopmentModeApp runs the worker against a stand-in answering as
// Spotify answers a Development Mode app since 9 March 2026: /readyz names
// the refusal, the metric counts it under its label, the log line says it
// once, and no message is dead-lettered or stored: they wait in the queue.
func TestDevelopmentModeApp(t *testing.T) {
	w := newWorld(t)
	w.spotify.SetEndpointRemoved(true)
	w.enqueue(t, artists...)
	base := w.listen(t)
	ctx, cancel := context.WithCancel(t.Context())
	var stderr testutil.Buffer
	done := make(chan int, 1)
	go func() { done <- workercmd.Run(ctx, nil, getenv(w.env), io.Discard, &stderr) }()
	stopped := false
	stop := func() {
		if !stopped {
			stopped = true
			cancel()
			<-done
		}
	}
	defer stop()

	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 5 * time.Second}
	var ready string
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if resp, err := client.Get(base + "/readyz"); err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusServiceUnavailable && strings.Contains(string(b), "refused") {
				ready = string(b)
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz never said the app is refused\nstderr: %s", stderr.String())
		}
	}
	for _, want := range []string{"Development Mode", "Extended Quota Mode", spotify.MigrationGuideURL} {
		if !strings.Contains(ready, want) {
			t.Errorf("/readyz = %q; want it to say %q", ready, want)
		}
	}
	m := scrape(t, client, base+"/metrics")
	if got := m[`sixpotify_spotify_refusals_total{refusal="development_mode"}`]; got != 1 {
		t.Errorf(`sixpotify_spotify_refusals_total{refusal="development_mode"} = %v, want 1`, got)
	}
	if got := m[`sixpotify_spotify_refusals_total{refusal="premium_lapsed"}`]; got != 0 {
		t.Errorf(`sixpotify_spotify_refusals_total{refusal="premium_lapsed"} = %v, want 0`, got)
	}
	stop()

	logs := stderr.String()
	if n := strings.Count(logs, `"msg":"Spotify refuses this app's calls: receiving is paused","refusal":"development_mode"`); n != 1 {
		t.Errorf("%d refusal log lines naming development_mode, want 1\nstderr: %s", n, logs)
	}
	if strings.Contains(logs, secret) {
		t.Error("the secret was logged")
	}
	visible, inflight, dead := queueLen(t, w.path)
	if dead != 0 || visible+inflight != len(artists) {
		t.Errorf("queue visible %d, in flight %d, dead %d; want all %d messages kept, none dead", visible, inflight, dead, len(artists))
	}
	st, err := sqlitestore.Open(t.Context(), w.path)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if n, err := st.CountArtists(t.Context()); err != nil || n != 0 {
		t.Errorf("%d artists stored, %v; want none", n, err)
	}
}

// TestRefusalLabelsAreSpotifys: every refusal the client tells apart has
// its series at 0 from the start.
func TestRefusalLabelsAreSpotifys(t *testing.T) {
	w := newWorld(t)
	base := w.listen(t)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan int, 1)
	go func() { done <- workercmd.Run(ctx, nil, getenv(w.env), io.Discard, io.Discard) }()
	defer func() { cancel(); <-done }()
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 5 * time.Second}
	var m map[string]float64
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if resp, err := client.Get(base + "/readyz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				m = scrape(t, client, base+"/metrics")
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("the worker never got ready")
		}
	}
	for _, r := range append(spotify.Refusals, "credentials") {
		key := `sixpotify_spotify_refusals_total{refusal="` + string(r) + `"}`
		if v, ok := m[key]; !ok || v != 0 {
			t.Errorf("%s = %v (present %v), want 0", key, v, ok)
		}
	}
}
