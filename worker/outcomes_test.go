package worker_test

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/sixpotify/top-tracks/internal/fakespotify"
	"github.com/sixpotify/top-tracks/internal/gate"
	"github.com/sixpotify/top-tracks/internal/metrics"
	"github.com/sixpotify/top-tracks/internal/queue/sqlitequeue"
	"github.com/sixpotify/top-tracks/internal/store/storetest"
	"github.com/sixpotify/top-tracks/internal/testenv"
	"github.com/sixpotify/top-tracks/internal/testutil"
	"github.com/sixpotify/top-tracks/worker"
)

// TestEveryDeliveryEndsInExactlyOneOutcome runs one fate at a time on the
// embedded queue and checks, once Run has returned, that the deliveries each
// lane received are exactly the outcomes it counted: every delivery counted
// once, in the outcome of its fate, and postponed ones also once by reason.
func TestEveryDeliveryEndsInExactlyOneOutcome(t *testing.T) {
	noDLQ := sqlitequeue.Options{MaxReceiveCount: -1}
	cases := []struct {
		name      string
		qopts     sqlitequeue.Options
		fake      fakespotify.Config
		run       func(t *testing.T, l *local) *worker.Worker
		want      map[string]float64 // outcome: deliveries on the chatbot lane
		postponed map[string]float64 // reason: deliveries on the chatbot lane
	}{
		{
			name: "done", qopts: noDLQ,
			run: func(t *testing.T, l *local) *worker.Worker {
				l.enqueue(l.chatbot, ids(3, "outcome-done")...)
				return l.runUntilIdle(worker.Options{})
			},
			want: map[string]float64{metrics.OutcomeOK: 3},
		},
		{
			name: "skipped fresh", qopts: noDLQ,
			run: func(t *testing.T, l *local) *worker.Worker {
				artists := ids(2, "outcome-fresh")
				l.enqueue(l.chatbot, artists...)
				l.runUntilIdle(worker.Options{})
				l.enqueue(l.chatbot, artists...)
				return l.runUntilIdle(worker.Options{})
			},
			want: map[string]float64{metrics.OutcomeFresh: 2},
		},
		{
			name: "not found", qopts: noDLQ,
			run: func(t *testing.T, l *local) *worker.Worker {
				l.enqueue(l.chatbot, "0000"+storetest.ID("outcome-unknown")[4:])
				return l.runUntilIdle(worker.Options{})
			},
			want: map[string]float64{metrics.OutcomeNotFound: 1},
		},
		{
			name: "poison without a DLQ", qopts: noDLQ,
			run: func(t *testing.T, l *local) *worker.Worker {
				l.sendRaw(l.chatbot, `not json`, `{"artist_id":"short"}`)
				return l.runUntilIdle(worker.Options{})
			},
			want: map[string]float64{metrics.OutcomePoison: 2},
		},
		{
			// Released at once each time, until the third receive moves it
			// to the dead-letter table: two deliveries, two poison outcomes.
			name: "poison with a DLQ", qopts: sqlitequeue.Options{MaxReceiveCount: 2},
			run: func(t *testing.T, l *local) *worker.Worker {
				l.sendRaw(l.chatbot, `{"artist_id":"bad"}`)
				w := l.runUntilIdle(worker.Options{})
				if dead, err := l.chatbot.DeadLetters(testenv.Context(t)); err != nil || len(dead) != 1 {
					t.Errorf("dead letters = %d, %v; want the poison message", len(dead), err)
				}
				return w
			},
			want: map[string]float64{metrics.OutcomePoison: 2},
		},
		{
			name: "postponed", qopts: sqlitequeue.Options{MaxReceiveCount: 2},
			run: func(t *testing.T, l *local) *worker.Worker {
				l.fake.SetEndpointRemoved(true)
				l.enqueue(l.chatbot, ids(1, "outcome-postponed")...)
				w, stop := l.start(worker.Options{Concurrency: 4})
				// The 403 pauses receiving for minutes: nothing more is
				// received once the message is postponed.
				testutil.Eventually(t, 30*time.Second, "the delivery postponed", func() bool {
					return counterValue(w.Metrics().Postponed.WithLabelValues(worker.LaneChatbot, gate.ReasonRefused)) >= 1
				})
				stop()
				return w
			},
			want:      map[string]float64{metrics.OutcomeReleased: 1},
			postponed: map[string]float64{gate.ReasonRefused: 1},
		},
		{
			name: "released at stop", qopts: noDLQ, fake: fakespotify.Config{Latency: time.Hour},
			run: func(t *testing.T, l *local) *worker.Worker {
				l.enqueue(l.chatbot, ids(3, "outcome-stop")...)
				w, stop := l.start(worker.Options{Concurrency: 4, DrainTimeout: 100 * time.Millisecond})
				// One call goes first and the others wait for its answer
				// at the gate, which never comes.
				testutil.Eventually(t, 30*time.Second, "three artists in flight, one at the stand-in", func() bool {
					return counterValue(w.Metrics().Received.WithLabelValues(worker.LaneChatbot)) == 3 && l.fake.Stats().Requests >= 1
				})
				stop()
				return w
			},
			want: map[string]float64{metrics.OutcomeReleased: 3},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			l := newLocal(t, c.qopts, c.fake, gate.New(gate.Options{}))
			t.Cleanup(func() {
				if t.Failed() {
					t.Log(l.logs.String())
				}
			})
			w := c.run(t, l)
			for _, lane := range []string{worker.LaneChatbot, worker.LaneBulk} {
				got := outcomesOf(w, lane)
				var sum float64
				for _, n := range got {
					sum += n
				}
				if recv := counterValue(w.Metrics().Received.WithLabelValues(lane)); sum != recv {
					t.Errorf("lane %s: %v deliveries received, %v outcomes counted (%v); want one outcome each", lane, recv, sum, got)
				}
			}
			if diff := cmp.Diff(outcomesOf(w, worker.LaneChatbot), c.want); diff != "" {
				t.Errorf("outcomes (-got +want):\n%s", diff)
			}
			if diff := cmp.Diff(postponedOf(w, worker.LaneChatbot), c.postponed); diff != "" {
				t.Errorf("postponed by reason (-got +want):\n%s", diff)
			}
		})
	}
}

// outcomesOf returns the lane's non-zero outcome counts (nil when none).
func outcomesOf(w *worker.Worker, lane string) map[string]float64 {
	var got map[string]float64
	for _, o := range []string{metrics.OutcomeOK, metrics.OutcomeFresh, metrics.OutcomeNotFound, metrics.OutcomeStale,
		metrics.OutcomePoison, metrics.OutcomeReleased} {
		if n := counterValue(w.Metrics().Processed.WithLabelValues(lane, o)); n != 0 {
			if got == nil {
				got = map[string]float64{}
			}
			got[o] = n
		}
	}
	return got
}

// postponedOf returns the lane's non-zero postponement counts by reason.
func postponedOf(w *worker.Worker, lane string) map[string]float64 {
	var got map[string]float64
	for _, r := range []string{gate.ReasonCooldown, gate.ReasonPenalty, gate.ReasonRefused, gate.ReasonOutage} {
		if n := counterValue(w.Metrics().Postponed.WithLabelValues(lane, r)); n != 0 {
			if got == nil {
				got = map[string]float64{}
			}
			got[r] = n
		}
	}
	return got
}

// runUntilIdle runs a worker until both lanes are empty and nothing is in
// flight, and returns it.
func (l *local) runUntilIdle(opts worker.Options) *worker.Worker {
	l.t.Helper()
	opts.StopWhenIdle = true
	w := l.newWorker(opts)
	runToIdle(l.t, w)
	return w
}
