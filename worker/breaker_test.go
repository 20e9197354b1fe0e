package worker_test

import (
	"strings"
	"testing"
	"time"

	"github.com/sixpotify/top-tracks/internal/fakespotify"
	"github.com/sixpotify/top-tracks/internal/gate"
	"github.com/sixpotify/top-tracks/internal/queue/sqlitequeue"
	"github.com/sixpotify/top-tracks/internal/store/storetest"
	"github.com/sixpotify/top-tracks/internal/testutil"
	"github.com/sixpotify/top-tracks/worker"
)

// TestOutageBreakerHoldsTheQueue: an outage of Spotify, of its token
// endpoint or of the store, longer than visibility timeout × maxReceiveCount,
// sends nothing to the dead-letter queue; the breaker opens and closes once
// each, the worker says why it is not ready, and few calls reach Spotify
// while it is down.
func TestOutageBreakerHoldsTheQueue(t *testing.T) {
	for _, kind := range []string{"spotify 503", "spotify unreachable", "token endpoint", "store", "store writes"} {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			g := gate.New(gate.Options{Rate: 200, ProbeCap: 2 * time.Second})
			l := newLocal(t, sqlitequeue.Options{VisibilityTimeout: time.Second, MaxReceiveCount: 2}, fakespotify.Config{}, g)
			ds := &storetest.Outage{Store: l.store}
			artists := ids(40, "outage"+strings.ReplaceAll(kind, " ", ""))
			switch kind {
			case "spotify 503":
				l.fake.SetDown(503)
			case "spotify unreachable":
				l.fake.SetDown(-1)
			case "token endpoint":
				l.fake.SetTokenDown(503)
			case "store":
				ds.Down.Store(true)
			case "store writes": // reads work: each artist's read succeeds before its save fails
				ds.WritesDown.Store(true)
			}
			l.enqueue(l.chatbot, artists...)
			w, err := worker.New(l.chatbot, nil, ds, l.client, worker.Options{Concurrency: 8, Gate: g,
				WaitTime: 200 * time.Millisecond, RetryBase: 10 * time.Millisecond, Logger: testLogger(l.logs)})
			if err != nil {
				t.Fatal(err)
			}
			stop := runInBackground(t, w, 25*time.Second)
			testutil.Eventually(t, 30*time.Second, "the breaker open", g.BreakerOpen)
			if err := w.Ready(); err == nil || !strings.Contains(err.Error(), "outage") {
				t.Errorf("Ready during the outage = %v, want the outage named", err)
			}
			time.Sleep(3 * time.Second) // longer than visibility × maxReceiveCount
			during := l.fake.Stats()
			l.fake.SetDown(0)
			l.fake.SetTokenDown(0)
			ds.Down.Store(false)
			ds.WritesDown.Store(false)
			testutil.Eventually(t, 30*time.Second, "every artist stored", func() bool { return l.allStored(artists) })
			stop()
			l.noDeadLetters(t)
			// Without the breaker each of the 8 in flight retries 4 times per
			// delivery, and every delivery is retried: far more than this.
			if n := during.Requests + during.TokenRequests; n > 40 {
				t.Errorf("%d Spotify requests during the outage; want at most 40", n)
			}
			logs := l.logs.String()
			if o, c := strings.Count(logs, "outage breaker opened"), strings.Count(logs, "outage breaker closed"); o != 1 || c != 1 {
				t.Errorf("breaker logged opened %d times and closed %d times; want once each", o, c)
			}
		})
	}
}
