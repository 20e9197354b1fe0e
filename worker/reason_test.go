package worker_test

import (
	"context"
	"errors"
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
