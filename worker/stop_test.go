package worker_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/sixpotify/top-tracks/internal/fakespotify"
	"github.com/sixpotify/top-tracks/internal/gate"
	"github.com/sixpotify/top-tracks/internal/queue/sqlitequeue"
	"github.com/sixpotify/top-tracks/internal/store/storetest"
	"github.com/sixpotify/top-tracks/internal/testenv"
	"github.com/sixpotify/top-tracks/internal/testutil"
	"github.com/sixpotify/top-tracks/worker"
)

// TestAStopDuringAnyPauseLosesNothing stops a worker while each kind of
// pause holds it: a cooldown short enough to be slept through in Wait, a
// penalty (QUOTA_EXCEEDED, postponed), the refusal pause (403), and the
// outage breaker open for Spotify, the token endpoint and the store. Run must
// return nil (the command exits 0) within 25 s of the stop, nothing may be
// dead-lettered, and once the fault is gone a fresh worker (a new process:
// a new gate) must store every artist from what the first one left in the
// queue.
func TestAStopDuringAnyPauseLosesNothing(t *testing.T) {
	tests := []struct {
		name   string
		gate   gate.Options
		fake   fakespotify.Config
		drain  time.Duration // the worker's DrainTimeout; 0: its default
		fault  func(l *local, store *storetest.Outage)
		paused func(l *local, w *worker.Worker) bool
		clear  func(l *local, store *storetest.Outage)
	}{{
		name: "cooldown slept through",
		// Two calls per 12 s: the third is answered 429 with a Retry-After of
		// several seconds, under MaxWait, which Wait sleeps through.
		fake: fakespotify.Config{Limit: 2, Window: 12 * time.Second},
		// A drain shorter than the cooldown: the calls asleep in Wait are
		// cancelled at its end and their messages given back.
		drain:  3 * time.Second,
		fault:  func(*local, *storetest.Outage) {},
		paused: func(l *local, _ *worker.Worker) bool { return l.limiter.CooldownLeft() > time.Second },
		clear:  func(l *local, _ *storetest.Outage) { l.fake.SetLimit(0, 0) },
	}, {
		name:   "penalty",
		gate:   gate.Options{MaxWait: time.Second},
		fault:  func(l *local, _ *storetest.Outage) { l.fake.SetQuotaExceeded(12 * time.Second) },
		paused: func(l *local, _ *worker.Worker) bool { return l.limiter.CooldownLeft() > time.Second },
		clear:  func(l *local, _ *storetest.Outage) { l.fake.SetQuotaExceeded(0) },
	}, {
		name: "refusal",
		// The pause a 403 starts, shortened so that the next process gets
		// the postponed messages back within the test.
		gate:  gate.Options{ForbiddenPause: 8 * time.Second},
		fault: func(l *local, _ *storetest.Outage) { l.fake.SetEndpointRemoved(true) },
		paused: func(_ *local, w *worker.Worker) bool {
			err := w.Ready()
			return err != nil && strings.Contains(err.Error(), "403")
		},
		clear: func(l *local, _ *storetest.Outage) { l.fake.SetEndpointRemoved(false) },
	}, {
		name:   "spotify outage",
		gate:   gate.Options{ProbeCap: 2 * time.Second},
		fault:  func(l *local, _ *storetest.Outage) { l.fake.SetDown(503) },
		paused: func(l *local, _ *worker.Worker) bool { return l.limiter.BreakerOpen() },
		clear:  func(l *local, _ *storetest.Outage) { l.fake.SetDown(0) },
	}, {
		name:   "token outage",
		gate:   gate.Options{ProbeCap: 2 * time.Second},
		fault:  func(l *local, _ *storetest.Outage) { l.fake.SetTokenDown(503) },
		paused: func(l *local, _ *worker.Worker) bool { return l.limiter.BreakerOpen() },
		clear:  func(l *local, _ *storetest.Outage) { l.fake.SetTokenDown(0) },
	}, {
		name:   "store outage",
		gate:   gate.Options{ProbeCap: 2 * time.Second},
		fault:  func(_ *local, store *storetest.Outage) { store.Down.Store(true) },
		paused: func(l *local, _ *worker.Worker) bool { return l.limiter.BreakerOpen() },
		clear:  func(_ *local, store *storetest.Outage) { store.Down.Store(false) },
	}}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			opts := tt.gate
			opts.Rate = 50
			l := newLocal(t, sqlitequeue.Options{VisibilityTimeout: time.Second, MaxReceiveCount: 2}, tt.fake, gate.New(opts))
			store := &storetest.Outage{Store: l.store}
			tt.fault(l, store)
			artists := ids(24, fmt.Sprintf("stoppause%d-", i))
			l.enqueue(l.chatbot, artists...)
			w, stop := l.startOn(store, worker.Options{Concurrency: 8, DrainTimeout: tt.drain})
			testutil.Eventually(t, 30*time.Second, "the worker paused", func() bool { return tt.paused(l, w) })
			// Longer than visibility × maxReceiveCount: a worker that kept
			// receiving, or gave its messages back, would dead-letter them.
			time.Sleep(2500 * time.Millisecond)
			if !tt.paused(l, w) {
				t.Fatal("the pause ended before the stop: the test tests nothing")
			}
			began := time.Now()
			stop() // fails the test unless Run returns nil within 25 s
			t.Logf("Run returned %v after the stop", time.Since(began).Round(time.Millisecond))
			ctx := testenv.Context(t)
			visible, inflight, dead, err := l.chatbot.Len(ctx)
			if err != nil {
				t.Fatal(err)
			}
			stored := 0
			for _, id := range artists {
				if l.stored(id) {
					stored++
				}
			}
			if dead != 0 {
				t.Errorf("%d messages dead-lettered during the pause; want none", dead)
			}
			if stored+visible+inflight < len(artists) {
				t.Errorf("after the stop: %d stored, %d queued, %d in flight; want all %d artists kept",
					stored, visible, inflight, len(artists))
			}
			t.Logf("at the stop: %d stored, %d queued, %d in flight (postponed)", stored, visible, inflight)
			// Counted for this process only: the next one cannot know of a
			// Retry-After the stand-in announced to this one.
			if n := l.fake.Stats().InsideRetryAfter; n != 0 {
				t.Errorf("%d calls inside a Retry-After; want none", n)
			}

			// The next process: a new gate and client, the fault gone.
			tt.clear(l, store)
			l.connect(gate.New(gate.Options{Rate: 50}))
			_, stop = l.start(worker.Options{Concurrency: 8})
			testutil.Eventually(t, 30*time.Second, "every artist stored by the next process", func() bool { return l.allStored(artists) })
			stop()
			if _, _, dead, err := l.chatbot.Len(ctx); err != nil || dead != 0 {
				t.Errorf("dead-lettered after the restart: %d (%v); want none", dead, err)
			}
		})
	}
}
