package queuetest

import (
	"context"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/sixpotify/top-tracks/internal/queue"
)

// The cases of the optional capabilities (queue.Counter,
// queue.DeadLetterer): a backend without one skips its case.

// capability returns q as a C (queue.Counter, queue.DeadLetterer), failing
// t when q is none.
func capability[C any](t *testing.T, q queue.Queue) C {
	t.Helper()
	c, ok := q.(C)
	if !ok {
		t.Fatalf("%T is no %v", q, reflect.TypeFor[C]())
	}
	return c
}

// eventually polls cond until it holds, failing t after patience with what
// it last saw.
func eventually(t *testing.T, what string, cond func() (bool, any)) {
	t.Helper()
	deadline := time.Now().Add(patience)
	for {
		ok, last := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %v, still not %s (last seen: %+v)", patience, what, last)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// testCounts: visible, in flight and delayed messages are told apart.
func (s *suite) testCounts(t *testing.T) {
	ctx := testContext(t)
	q := s.queue(t, QueueOptions{VisibilityTimeout: time.Minute}).Queue
	c := capability[queue.Counter](t, q)
	send(ctx, t, q, "ready-1", "ready-2")
	errs, err := q.SendBatch(ctx, []queue.Entry{{Body: []byte("later"), Delay: 10 * time.Minute}})
	if err := errors.Join(append(errs, err)...); err != nil {
		t.Fatal(err)
	}
	count := func(want queue.Counts) func() (bool, any) {
		return func() (bool, any) {
			got, err := c.Counts(ctx)
			if err != nil {
				t.Fatalf("Counts: %v", err)
			}
			return got == want, got
		}
	}
	eventually(t, "2 visible and 1 delayed", count(queue.Counts{Visible: 2, Delayed: 1}))
	collect(ctx, t, q, 1)
	want := queue.Counts{Visible: 1, InFlight: 1, Delayed: 1}
	if s.features.CountsVisibleIncludeInFlight {
		want.Visible = 2
	}
	eventually(t, "1 visible, 1 in flight and 1 delayed", count(want))
}

// testNoDeadLetterQueue: a queue with no dead-letter queue says so.
func (s *suite) testNoDeadLetterQueue(t *testing.T) {
	ctx := testContext(t)
	d := capability[queue.DeadLetterer](t, s.queue(t, QueueOptions{VisibilityTimeout: time.Minute}).Queue)
	if _, err := d.DeadLetterCounts(ctx); !errors.Is(err, queue.ErrNoDeadLetterQueue) {
		t.Errorf("DeadLetterCounts = %v; want ErrNoDeadLetterQueue", err)
	}
	if _, err := d.PeekDeadLetters(ctx, 10); !errors.Is(err, queue.ErrNoDeadLetterQueue) {
		t.Errorf("PeekDeadLetters = %v; want ErrNoDeadLetterQueue", err)
	}
	if _, err := d.Redrive(ctx, queue.RedriveOptions{}); !errors.Is(err, queue.ErrNoDeadLetterQueue) {
		t.Errorf("Redrive = %v; want ErrNoDeadLetterQueue", err)
	}
}

// testPeekAndRedrive: dead letters are counted and peeked at without being
// consumed, and a redrive moves each back to the queue once.
func (s *suite) testPeekAndRedrive(t *testing.T) {
	ctx := testContext(t)
	q := s.queue(t, QueueOptions{VisibilityTimeout: time.Second, MaxReceiveCount: 1}).Queue
	d := capability[queue.DeadLetterer](t, q)
	bodies := []string{"dead-1", "dead-2", "dead-3"}
	send(ctx, t, q, bodies...)
	msgs, _ := collect(ctx, t, q, len(bodies))
	for _, m := range msgs {
		if err := q.ChangeVisibility(ctx, m.Receipt, 0); err != nil {
			t.Fatalf("ChangeVisibility 0: %v", err)
		}
	}
	dlqHolds := func(n int) func() (bool, any) {
		return func() (bool, any) {
			// A receive moves what is out of receives (SQS, the embedded
			// queue); none may come back.
			if got := receive(ctx, t, q, 1); len(got) != 0 {
				t.Fatalf("a message out of receives was delivered again: %q", got[0].Body)
			}
			c, err := d.DeadLetterCounts(ctx)
			if err != nil {
				t.Fatalf("DeadLetterCounts: %v", err)
			}
			return c.Total() == n && c.InFlight == 0, c
		}
	}
	eventually(t, "3 messages in the dead-letter queue", dlqHolds(len(bodies)))

	peeked, err := d.PeekDeadLetters(ctx, 10)
	if err != nil {
		t.Fatalf("PeekDeadLetters: %v", err)
	}
	if diff := cmp.Diff(sorted(bodiesOf(peeked)), bodies); diff != "" {
		t.Errorf("peeked bodies (-got +want):\n%s", diff)
	}
	for _, m := range peeked {
		if m.ID == "" || m.Receipt != "" || m.SentAt.IsZero() {
			t.Errorf("peeked %q: ID %q, Receipt %q, SentAt %v; want an ID, no receipt, the send time", m.Body, m.ID, m.Receipt, m.SentAt)
		}
	}
	if two, err := d.PeekDeadLetters(ctx, 2); err != nil || len(two) != 2 {
		t.Errorf("PeekDeadLetters(2) = %d messages, %v; want 2", len(two), err)
	}
	eventually(t, "the peeked messages still in the dead-letter queue", dlqHolds(len(bodies)))

	p, err := d.Redrive(ctx, queue.RedriveOptions{Poll: 100 * time.Millisecond})
	if err != nil || p.Status != queue.RedriveCompleted || p.Moved != len(bodies) {
		t.Fatalf("Redrive = %+v, %v; want all 3 moved, COMPLETED", p, err)
	}
	back, dups := collect(ctx, t, q, len(bodies))
	if diff := cmp.Diff(sorted(bodiesOf(back)), bodies); diff != "" || dups != 0 {
		t.Errorf("bodies back in the queue (-got +want), %d delivered twice:\n%s", dups, diff)
	}
	deleteAll(ctx, t, q, receipts(back)...)
	eventually(t, "the dead-letter queue empty", dlqHolds(0))
	expectNone(ctx, t, q, 2*time.Second)

	if p, err := d.Redrive(ctx, queue.RedriveOptions{Poll: 100 * time.Millisecond}); err != nil || p.Status != queue.RedriveCompleted || p.Moved != 0 {
		t.Errorf("Redrive of an empty dead-letter queue = %+v, %v; want nothing moved, COMPLETED", p, err)
	}
}

// testRedriveCancelled: a redrive whose context ends stops, says so, and
// leaves every message in exactly one of the queue and its dead-letter
// queue; another moves the rest.
func (s *suite) testRedriveCancelled(t *testing.T) {
	ctx := testContext(t)
	q := s.queue(t, QueueOptions{VisibilityTimeout: time.Second, MaxReceiveCount: 1}).Queue
	d := capability[queue.DeadLetterer](t, q)
	bodies := numbered("slow", 4)
	send(ctx, t, q, bodies...)
	msgs, _ := collect(ctx, t, q, len(bodies))
	for _, m := range msgs {
		if err := q.ChangeVisibility(ctx, m.Receipt, 0); err != nil {
			t.Fatalf("ChangeVisibility 0: %v", err)
		}
	}
	eventually(t, "4 messages in the dead-letter queue", func() (bool, any) {
		receive(ctx, t, q, 1)
		c, err := d.DeadLetterCounts(ctx)
		return err == nil && c.Total() == len(bodies), c
	})
	rctx, cancel := context.WithCancel(ctx)
	p, err := d.Redrive(rctx, queue.RedriveOptions{MaxPerSecond: 1, Poll: 50 * time.Millisecond, Progress: func(p queue.RedriveProgress) {
		if p.Moved > 0 {
			cancel() // half-way: one moved at one a second
		}
	}})
	cancel()
	if !errors.Is(err, context.Canceled) || p.Moved == 0 || p.Moved >= len(bodies) {
		t.Fatalf("cancelled Redrive = %+v, %v; want some moved and context.Canceled", p, err)
	}
	p2, err := d.Redrive(ctx, queue.RedriveOptions{Poll: 100 * time.Millisecond})
	if err != nil || p2.Status != queue.RedriveCompleted || p.Moved+p2.Moved != len(bodies) {
		t.Fatalf("Redrive after the cancelled one = %+v, %v; want the other %d moved", p2, err, len(bodies)-p.Moved)
	}
	back, dups := collect(ctx, t, q, len(bodies))
	if diff := cmp.Diff(sorted(bodiesOf(back)), sorted(bodies)); diff != "" || dups != 0 {
		t.Errorf("bodies back in the queue (-got +want), %d delivered twice:\n%s", dups, diff)
	}
}
