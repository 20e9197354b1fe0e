package worker_test

// Pauses, outages and the artist's own failures. A pause or an outage holds
// the queue without spending a message's deliveries, and a stop during one
// keeps every message; a message is postponed a bounded number of times. A
// failure that is the artist's own follows the redrive policy to the
// dead-letter queue without opening the outage breaker, and the store is
// told why.

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/sixpotify/top-tracks/internal/fakespotify"
	"github.com/sixpotify/top-tracks/internal/gate"
	"github.com/sixpotify/top-tracks/internal/queue/sqlitequeue"
	"github.com/sixpotify/top-tracks/internal/store"
	"github.com/sixpotify/top-tracks/internal/store/storetest"
	"github.com/sixpotify/top-tracks/internal/testenv"
	"github.com/sixpotify/top-tracks/internal/testutil"
	"github.com/sixpotify/top-tracks/producer"
	"github.com/sixpotify/top-tracks/worker"
)

// TestAPenaltyIsKnownByTheFleet: Spotify answers one process QUOTA_EXCEEDED
// with a day-long Retry-After. The process records the pause in the store;
// a second process reads it before its first call and makes none; and a
// chatbot's ask answers in under a second with the time calls resume,
// instead of waiting out its deadline.
func TestAPenaltyIsKnownByTheFleet(t *testing.T) {
	l := newLocal(t, sqlitequeue.Options{VisibilityTimeout: 10 * time.Second, MaxReceiveCount: 3},
		fakespotify.Config{QuotaExceeded: 24 * time.Hour}, gate.New(gate.Options{Rate: 50}))
	ctx := testenv.Context(t)
	artists := ids(2, "fleet-pause")
	l.enqueue(l.chatbot, artists[0])
	_, stop := l.start(worker.Options{})
	testutil.Eventually(t, 30*time.Second, "the pause recorded in the store", func() bool {
		p, ok, err := l.store.SpotifyPause(ctx)
		return err == nil && ok && p.Until.After(time.Now().Add(23*time.Hour))
	})
	stop()
	calls := l.fake.Stats().Requests

	// A second process, with a gate, client and token of its own.
	l.connect(gate.New(gate.Options{Rate: 50}))
	l.enqueue(l.chatbot, artists[1])
	_, stop = l.start(worker.Options{})
	testutil.Eventually(t, 30*time.Second, "the second process paused by the fleet's record", func() bool {
		return strings.Contains(l.logs.String(), "Spotify paused the fleet")
	})
	stop()
	if got := l.fake.Stats().Requests; got != calls {
		t.Errorf("the second process made %d Spotify calls during the recorded pause; want none", got-calls)
	}

	asker := producer.NewAsker(producer.New(l.chatbot, producer.Options{}), l.store, producer.AskOptions{})
	start := time.Now()
	_, err := asker.Ask(ctx, ids(1, "fleet-pause-ask")[0])
	took := time.Since(start)
	var pe *producer.SpotifyPausedError
	if !errors.As(err, &pe) || !errors.Is(err, producer.ErrNoAnswer) {
		t.Fatalf("Ask during the pause = %v; want a *producer.SpotifyPausedError wrapping ErrNoAnswer", err)
	}
	if took > time.Second {
		t.Errorf("Ask during the pause took %v; want under a second", took)
	}
	if !pe.Until.After(time.Now().Add(23 * time.Hour)) {
		t.Errorf("Ask's resume time = %v; want about a day from now", pe.Until)
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

// rejecting is a store that refuses the results of the artists in bad as
// DynamoDB refuses an item over 400 KB: their own fault, not an outage.
type rejecting struct {
	worker.Store
	bad map[string]bool
}

func (r *rejecting) Save(ctx context.Context, res store.Result) error {
	if r.bad[res.ArtistID] {
		return fmt.Errorf("save %s: %w: item size has exceeded the maximum allowed size", res.ArtistID, store.ErrRejected)
	}
	return r.Store.Save(ctx, res)
}

// TestARejectedResultIsTheArtistsOwnFault queues artists whose results the
// store refuses ahead of artists it takes. The refusals are the artists' own
// fault: they follow the redrive policy to the dead-letter queue, and the
// outage breaker, which five store failures in a row over three artists
// would open, stays closed, so the others are stored without a pause. The
// worker never skips fresh artists here (FreshFor < 0, as for messages that
// say force): with no read of the artists row between saves, the refusals
// come in a row.
func TestARejectedResultIsTheArtistsOwnFault(t *testing.T) {
	g := gate.New(gate.Options{Rate: 100})
	l := newLocal(t, sqlitequeue.Options{VisibilityTimeout: time.Second, MaxReceiveCount: 2}, fakespotify.Config{}, g)
	bad, good := ids(8, "rejected"), ids(12, "accepted")
	rs := &rejecting{Store: l.store, bad: map[string]bool{}}
	for _, id := range bad {
		rs.bad[id] = true
	}
	l.enqueue(l.chatbot, bad...)
	l.enqueue(l.chatbot, good...)
	opened := false
	_, stop := l.startOn(rs, worker.Options{Concurrency: 4, FreshFor: -1})
	ctx := testenv.Context(t)
	testutil.Eventually(t, 30*time.Second, "every accepted artist stored and every rejected one dead-lettered", func() bool {
		opened = opened || g.BreakerOpen()
		_, _, dead, err := l.chatbot.Len(ctx)
		return l.allStored(good) && err == nil && dead == len(bad)
	})
	stop()
	if opened || strings.Contains(l.logs.String(), "outage breaker opened") {
		t.Errorf("the outage breaker opened on results the store rejected; want it closed")
	}
	for _, id := range bad {
		if l.stored(id) {
			t.Errorf("rejected artist %s stored", id)
		}
	}
}

// recording is rejecting that records failures through rec (nil: it
// cannot record).
type recording struct {
	*rejecting
	rec func(ctx context.Context, id, reason string, at time.Time) error
}

func (r *recording) RecordFailure(ctx context.Context, id, reason string, at time.Time) error {
	return r.rec(ctx, id, reason, at)
}

// TestTheReasonOfAFailureIsRecorded: results the store rejects follow the
// redrive policy to the dead-letter queue, and each artist's row tells why
// and when; a body that is no message is dead-lettered too, with nothing
// recorded. A store that fails to record changes no message's fate.
func TestTheReasonOfAFailureIsRecorded(t *testing.T) {
	for _, recordFails := range []bool{false, true} {
		name := "recorded"
		if recordFails {
			name = "the record fails"
		}
		t.Run(name, func(t *testing.T) {
			l := newLocal(t, sqlitequeue.Options{VisibilityTimeout: time.Second, MaxReceiveCount: 2}, fakespotify.Config{}, gate.New(gate.Options{Rate: 100}))
			bad := ids(3, "reason-"+name)
			rs := &recording{rejecting: &rejecting{Store: l.store, bad: map[string]bool{}}, rec: l.store.RecordFailure}
			if recordFails {
				rs.rec = func(context.Context, string, string, time.Time) error {
					return errors.New("the store is read-only today")
				}
			}
			for _, id := range bad {
				rs.bad[id] = true
			}
			l.enqueue(l.chatbot, bad...)
			l.sendRaw(l.chatbot, `not a message`)
			before := time.Now()
			_, stop := l.startOn(rs, worker.Options{Concurrency: 2, FreshFor: -1})
			ctx := testenv.Context(t)
			testutil.Eventually(t, 30*time.Second, "every message dead-lettered", func() bool {
				_, _, dead, err := l.chatbot.Len(ctx)
				return err == nil && dead == len(bad)+1
			})
			stop()
			for _, id := range bad {
				f, ok, err := l.store.LastFailure(ctx, id)
				if err != nil {
					t.Fatal(err)
				}
				if recordFails {
					if ok {
						t.Errorf("LastFailure(%s) = %+v, though recording failed", id, f)
					}
					continue
				}
				if !ok {
					t.Errorf("LastFailure(%s): none recorded", id)
					continue
				}
				if !strings.Contains(f.Reason, "item size has exceeded") || !strings.Contains(f.Reason, "lane chatbot, delivery ") {
					t.Errorf("LastFailure(%s).Reason = %q; want the store's refusal, the lane and the delivery", id, f.Reason)
				}
				if f.At.Before(before.Add(-time.Second)) || f.At.After(time.Now()) {
					t.Errorf("LastFailure(%s).At = %v; want during the run", id, f.At)
				}
				if _, ok, _ := l.store.Artist(ctx, id); ok {
					t.Errorf("Artist(%s) is an artist after failures only", id)
				}
			}
			warned := strings.Contains(l.logs.String(), "could not record why the message failed")
			if warned != recordFails {
				t.Errorf("a warning that the reason was not recorded: %v; want %v", warned, recordFails)
			}
		})
	}
}

var _ store.FailureRecorder = (*recording)(nil)
