package worker_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/sixpotify/top-tracks/internal/fakespotify"
	"github.com/sixpotify/top-tracks/internal/gate"
	"github.com/sixpotify/top-tracks/internal/queue/sqlitequeue"
	"github.com/sixpotify/top-tracks/internal/store"
	"github.com/sixpotify/top-tracks/internal/testenv"
	"github.com/sixpotify/top-tracks/internal/testutil"
	"github.com/sixpotify/top-tracks/worker"
)

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
