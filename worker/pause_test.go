package worker_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/sixpotify/top-tracks/internal/fakespotify"
	"github.com/sixpotify/top-tracks/internal/gate"
	"github.com/sixpotify/top-tracks/internal/queue/sqlitequeue"
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
