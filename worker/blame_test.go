package worker_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/sixpotify/top-tracks/internal/fakespotify"
	"github.com/sixpotify/top-tracks/internal/gate"
	"github.com/sixpotify/top-tracks/internal/queue/sqlitequeue"
	"github.com/sixpotify/top-tracks/internal/testenv"
	"github.com/sixpotify/top-tracks/internal/testutil"
	"github.com/sixpotify/top-tracks/worker"
)

// brokenFor answers the artists in broken with a broken 200 (or a 500) of
// their own, and passes every other request to next.
func brokenFor(next http.Handler, broken map[string]string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for id, kind := range broken {
			if !strings.Contains(r.URL.Path, "/artists/"+id+"/") {
				continue
			}
			switch kind {
			case "truncated":
				w.Header().Set("Content-Type", "application/json")
				_, _ = w.Write([]byte(`{"tracks": [{"id": "4uLU6hMCjMI75M1A2tKUQC", "name": "Never Gonna`))
			case "null":
				w.Header().Set("Content-Type", "application/json")
				_, _ = w.Write([]byte(`{"tracks": null}`))
			case "html":
				w.Header().Set("Content-Type", "text/html")
				_, _ = w.Write([]byte(`<html><body><h1>Upstream error</h1></body></html>`))
			case "no ids":
				w.Header().Set("Content-Type", "application/json")
				_, _ = w.Write([]byte(`{"tracks": [{"name": "nameless"}]}`))
			case "500":
				http.Error(w, `{"error":{"status":500,"message":"Server error"}}`, http.StatusInternalServerError)
			}
			return
		}
		next.ServeHTTP(w, r)
	})
}

// TestBrokenAnswersAreTheArtistsOwn: five artists whose answers are broken,
// each in its own way, among 55 that Spotify answers: the five end in the
// dead-letter queue within the redrive policy, the 55 are stored, nothing
// circulates, and the outage breaker is closed at the end (it may open when
// the five are all that is left, and its probe then finds Spotify
// answering another artist).
func TestBrokenAnswersAreTheArtistsOwn(t *testing.T) {
	t.Parallel() // about 40 s of retry delays, in a world of its own
	g := gate.New(gate.Options{Rate: 200, ProbeCap: 2 * time.Second})
	l := newLocal(t, sqlitequeue.Options{VisibilityTimeout: time.Second, MaxReceiveCount: 3}, fakespotify.Config{}, g)
	good := ids(55, "blame-good")
	bad := ids(5, "blame-bad")
	broken := map[string]string{bad[0]: "truncated", bad[1]: "null", bad[2]: "html", bad[3]: "no ids", bad[4]: "500"}
	srv := httptest.NewServer(brokenFor(l.fake, broken))
	t.Cleanup(srv.Close)
	l.apiURL = srv.URL + "/v1"
	l.connect(g)

	l.enqueue(l.chatbot, append(append([]string{}, good...), bad...)...)
	_, stop := l.start(worker.Options{Concurrency: 8})
	testutil.Eventually(t, 30*time.Second, "the 55 stored", func() bool { return l.allStored(good) })
	ctx := testenv.Context(t)
	testutil.Eventually(t, 60*time.Second, "the five broken artists in the dead-letter queue", func() bool {
		dead, err := l.chatbot.DeadLetters(ctx)
		return err == nil && len(dead) == len(bad)
	})
	stop()
	dead, err := l.chatbot.DeadLetters(ctx)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for _, d := range dead {
		for _, id := range bad {
			if strings.Contains(string(d.Body), id) {
				got[id] = true
			}
		}
	}
	if len(got) != len(bad) {
		t.Errorf("the dead-letter queue holds %d of the five broken artists (%d messages); want each once", len(got), len(dead))
	}
	if g.BreakerOpen() {
		t.Error("the outage breaker is open at the end; five artists' own failures must not hold it")
	}
	visible, inflight, _, err := l.chatbot.Len(ctx)
	if err != nil || visible+inflight != 0 {
		t.Errorf("queue Len = %d visible, %d in flight, %v; want empty", visible, inflight, err)
	}
}

// TestPostponementIsBounded: a message that meets pause after pause (here
// Spotify refuses every call) is postponed MaxPostpones times, counted in a
// message attribute, then spends its deliveries and ends in the dead-letter
// queue: it does not circulate forever.
func TestPostponementIsBounded(t *testing.T) {
	t.Parallel()
	g := gate.New(gate.Options{Rate: 200, ForbiddenPause: 300 * time.Millisecond})
	l := newLocal(t, sqlitequeue.Options{VisibilityTimeout: time.Second, MaxReceiveCount: 2}, fakespotify.Config{}, g)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.Contains(r.URL.Path, "/artists/") {
			http.Error(w, `{"error":{"status":403,"message":"Forbidden"}}`, http.StatusForbidden)
			return
		}
		l.fake.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	l.apiURL, l.tokenURL = srv.URL+"/v1", srv.URL+"/api/token"
	l.connect(g)

	id := ids(1, "bounded")
	l.enqueue(l.chatbot, id...)
	w, stop := l.start(worker.Options{MaxPostpones: 2})
	ctx := testenv.Context(t)
	testutil.Eventually(t, 60*time.Second, "the message in the dead-letter queue", func() bool {
		dead, err := l.chatbot.DeadLetters(ctx)
		return err == nil && len(dead) == 1
	})
	stop()
	dead, _ := l.chatbot.DeadLetters(ctx)
	if got := dead[0].Attributes[worker.PostponedAttribute]; got != "2" {
		t.Errorf("the dead letter's %s attribute = %q, want \"2\"", worker.PostponedAttribute, got)
	}
	if got := counterValue(w.Metrics().Postponed.WithLabelValues(worker.LaneChatbot, gate.ReasonRefused)); got != 2 {
		t.Errorf("postponed %v times, want 2", got)
	}
}
