// Package queuetest is the conformance suite every queue backend passes: the
// semantics the worker and the producer rely on, checked against a real
// backend (an emulator included), in the manner of Watermill's
// tests.TestPubSub and River's riverdrivertest.
//
// A backend's test calls Run with a constructor that makes a fresh queue for
// each case, and with Features describing where the backend honestly differs.
// The cases run in parallel; each one asserts on what it receives and gives
// the backend generous deadlines, so that a loaded machine slows the suite
// down rather than failing it.
package queuetest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/sixpotify/top-tracks/internal/clip"
	"github.com/sixpotify/top-tracks/internal/queue"
)

// QueueOptions configure the queue a case asks for.
type QueueOptions struct {
	// VisibilityTimeout is the queue's default visibility timeout.
	VisibilityTimeout time.Duration
	// MaxReceiveCount is the number of receives after which an unfinished
	// message moves to the dead-letter queue. Zero: no dead-letter queue.
	MaxReceiveCount int
}

// Instance is one fresh queue made for one case.
type Instance struct {
	Queue queue.Queue
	// DeadLetters removes and returns the bodies of the messages that reached
	// the queue's dead-letter queue since the last call. It is required when
	// QueueOptions.MaxReceiveCount is positive, and unused otherwise.
	DeadLetters func(ctx context.Context) ([][]byte, error)
}

// NewFunc makes a fresh, empty queue configured by opts. It registers the
// queue's removal with t.Cleanup and fails t when it cannot make one.
type NewFunc func(t *testing.T, opts QueueOptions) Instance

// Features are the honest differences between backends. The zero value
// describes Amazon SQS.
type Features struct {
	// ChangeVisibilityCountsAsReceive: every ChangeVisibility adds one to the
	// message's receive count (local-aws-sqs does; SQS does not).
	ChangeVisibilityCountsAsReceive bool
	// DeadLetterOnExpiry: an unfinished message moves to the dead-letter queue
	// as soon as the visibility timeout of its last allowed delivery expires
	// (local-aws-sqs). Without it the move may wait for the next Receive on
	// the queue (SQS), so the suite keeps receiving while it waits.
	DeadLetterOnExpiry bool
	// CountsVisibleIncludeInFlight: Counter's Visible counts the messages in
	// flight too (local-aws-sqs's ApproximateNumberOfMessages does).
	CountsVisibleIncludeInFlight bool
}

const (
	// pollWait is the wait of every Receive the suite polls with. Short,
	// because local-aws-sqs waits for the full MaxNumberOfMessages.
	pollWait = time.Second
	// patience bounds every wait for something that must happen.
	patience = 30 * time.Second
	// slack absorbs timer granularity when checking that something did not
	// happen too early.
	slack = 250 * time.Millisecond
)

// Run runs the suite against the queues newQueue makes.
func Run(t *testing.T, newQueue NewFunc, features Features) {
	s := &suite{newQueue: newQueue, features: features}
	cases := []struct {
		name string
		run  func(t *testing.T)
	}{
		{"SendReceiveRoundTrip", s.testSendReceiveRoundTrip},
		{"AttributesRoundTrip", s.testAttributesRoundTrip},
		{"EmptyBatches", s.testEmptyBatches},
		{"SendRejected", s.testSendRejected},
		{"ReceiveAtMostMax", s.testReceiveAtMostMax},
		{"EmptyReceiveReturnsWithinWait", s.testEmptyReceiveReturnsWithinWait},
		{"ReceiveCancelled", s.testReceiveCancelled},
		{"InvisibleUntilVisibilityExpires", s.testInvisibleUntilVisibilityExpires},
		{"ChangeVisibilityZeroReleases", s.testChangeVisibilityZeroReleases},
		{"ChangeVisibilityExtends", s.testChangeVisibilityExtends},
		{"ChangeVisibilityInvalidReceipt", s.testChangeVisibilityInvalidReceipt},
		{"DeleteBatch", s.testDeleteBatch},
		{"DeleteBatchInvalidReceipt", s.testDeleteBatchInvalidReceipt},
		{"DeleteBatchChunks", s.testDeleteBatchChunks},
		{"SendBatchChunks", s.testSendBatchChunks},
		{"DelayHonoured", s.testDelayHonoured},
		{"DeadLetterAfterMaxReceiveCount", s.testDeadLetterAfterMaxReceiveCount},
		{"Attributes", s.testAttributes},
		{"ConcurrentReceivers", s.testConcurrentReceivers},
		{"Counts", s.testCounts},
		{"NoDeadLetterQueue", s.testNoDeadLetterQueue},
		{"PeekAndRedrive", s.testPeekAndRedrive},
		{"RedriveCancelled", s.testRedriveCancelled},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			c.run(t)
		})
	}
}

type suite struct {
	newQueue NewFunc
	features Features
}

func (s *suite) queue(t *testing.T, opts QueueOptions) Instance {
	t.Helper()
	inst := s.newQueue(t, opts)
	if inst.Queue == nil {
		t.Fatal("newQueue returned no Queue")
	}
	if opts.MaxReceiveCount > 0 && inst.DeadLetters == nil {
		t.Fatal("newQueue returned no DeadLetters for a queue with a dead-letter queue")
	}
	return inst
}

// visibilityBump is what ChangeVisibility adds to the receive count.
func (s *suite) visibilityBump() int {
	if s.features.ChangeVisibilityCountsAsReceive {
		return 1
	}
	return 0
}

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func (s *suite) testSendReceiveRoundTrip(t *testing.T) {
	ctx := testContext(t)
	q := s.queue(t, QueueOptions{VisibilityTimeout: 30 * time.Second}).Queue
	bodies := []string{
		`{"artist_id": "0TnOYISbd1XYRBk9myaseg", "market": "US", "force": false}`,
		"Beyoncé · Sigur Rós · 坂本龍一 · Мумий Тролль · 🎸🎶 · ñ ü ø",
		"line\nbreaks\r\n\ttabs \"quotes\" \\backslashes <xml> &amp; 'apostrophes' %s %%",
		strings.Repeat("é🎵 ", 3000),
		strings.Repeat("0123456789abcdef", 8192), // 128 KiB
	}
	before := time.Now()
	send(ctx, t, q, bodies...)

	got, dups := collect(ctx, t, q, len(bodies))
	if dups != 0 {
		t.Errorf("%d messages were delivered twice within the visibility timeout", dups)
	}
	after := time.Now()
	var gotBodies []string
	for _, m := range got {
		gotBodies = append(gotBodies, string(m.Body))
		if m.ID == "" || m.Receipt == "" {
			t.Errorf("message %q: ID %q, Receipt %q; want both set", clip.String(string(m.Body), 60), m.ID, m.Receipt)
		}
		if m.ReceiveCount != 1 {
			t.Errorf("message %q: ReceiveCount = %d, want 1", clip.String(string(m.Body), 60), m.ReceiveCount)
		}
		if m.SentAt.Before(before.Add(-time.Minute)) || m.SentAt.After(after.Add(time.Minute)) {
			t.Errorf("message %q: SentAt = %v, want about %v", clip.String(string(m.Body), 60), m.SentAt, before)
		}
	}
	if diff := cmp.Diff(sorted(gotBodies), sorted(bodies)); diff != "" {
		t.Errorf("received bodies (-got +want):\n%s", diff)
	}
}

// testAttributesRoundTrip: a message's attributes come back with each of its
// deliveries, a message without any has none, and attributes a queue would
// refuse are the entry's own fault.
func (s *suite) testAttributesRoundTrip(t *testing.T) {
	ctx := testContext(t)
	q := s.queue(t, QueueOptions{VisibilityTimeout: 30 * time.Second}).Queue
	want := map[string]string{"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "postponed": "3", "note": "Sigur Rós 🎸"}
	tooMany := map[string]string{}
	for i := range queue.MaxAttributes + 1 {
		tooMany[fmt.Sprintf("a%d", i)] = "v"
	}
	errs, err := q.SendBatch(ctx, []queue.Entry{
		{Body: []byte("with"), Attributes: want},
		{Body: []byte("without")},
		{Body: []byte("too many"), Attributes: tooMany},
		{Body: []byte("empty value"), Attributes: map[string]string{"x": ""}},
	})
	if err != nil {
		t.Fatalf("SendBatch: %v", err)
	}
	if errs[0] != nil || errs[1] != nil {
		t.Fatalf("SendBatch errs = %v, want the first two sent", errs)
	}
	for i := 2; i < 4; i++ {
		if !errors.Is(errs[i], queue.ErrRejected) {
			t.Errorf("SendBatch entry %d error = %v, want one wrapping queue.ErrRejected", i, errs[i])
		}
	}
	got, _ := collect(ctx, t, q, 2)
	for _, m := range got {
		switch string(m.Body) {
		case "with":
			if diff := cmp.Diff(m.Attributes, want); diff != "" {
				t.Errorf("attributes (-got +want):\n%s", diff)
			}
		case "without":
			if len(m.Attributes) != 0 {
				t.Errorf("a message sent without attributes came back with %v", m.Attributes)
			}
		default:
			t.Errorf("received %q, which was refused", m.Body)
		}
	}
}

func (s *suite) testEmptyBatches(t *testing.T) {
	ctx := testContext(t)
	q := s.queue(t, QueueOptions{VisibilityTimeout: 30 * time.Second}).Queue
	errs, err := q.SendBatch(ctx, nil)
	if err != nil || len(errs) != 0 {
		t.Errorf("SendBatch(nil) = %v, %v; want no entries and no error", errs, err)
	}
	errs, err = q.DeleteBatch(ctx, nil)
	if err != nil || len(errs) != 0 {
		t.Errorf("DeleteBatch(nil) = %v, %v; want no entries and no error", errs, err)
	}
}

// testSendRejected: an entry the queue refuses (an empty body) fails alone,
// wrapping queue.ErrRejected, so that a sender does not send it again; the
// other entries of the batch are sent.
func (s *suite) testSendRejected(t *testing.T) {
	ctx := testContext(t)
	q := s.queue(t, QueueOptions{VisibilityTimeout: 30 * time.Second}).Queue
	errs, err := q.SendBatch(ctx, []queue.Entry{{Body: []byte("kept")}, {Body: nil}})
	if err != nil || len(errs) != 2 {
		t.Fatalf("SendBatch = %v, %v; want two entry results and no error", errs, err)
	}
	if errs[0] != nil || !errors.Is(errs[1], queue.ErrRejected) {
		t.Errorf("entry errors = %v; want nil, then one wrapping queue.ErrRejected", errs)
	}
	m, _ := receiveOne(ctx, t, q)
	if string(m.Body) != "kept" {
		t.Errorf("received %q; want the entry that was not refused", m.Body)
	}
}

func (s *suite) testReceiveAtMostMax(t *testing.T) {
	ctx := testContext(t)
	q := s.queue(t, QueueOptions{VisibilityTimeout: 30 * time.Second}).Queue
	bodies := numbered("max", 15)
	send(ctx, t, q, bodies...)

	seen := map[string]bool{}
	deadline := time.Now().Add(patience)
	for len(seen) == 0 && time.Now().Before(deadline) {
		msgs := receive(ctx, t, q, 3)
		if len(msgs) > 3 {
			t.Errorf("Receive(max 3) returned %d messages", len(msgs))
		}
		record(t, seen, msgs)
	}
	for len(seen) < len(bodies) && time.Now().Before(deadline) {
		msgs := receive(ctx, t, q, 25)
		if len(msgs) > queue.MaxBatch {
			t.Errorf("Receive(max 25) returned %d messages, want at most %d", len(msgs), queue.MaxBatch)
		}
		record(t, seen, msgs)
	}
	if len(seen) != len(bodies) {
		t.Errorf("received %d distinct messages within %v, want %d", len(seen), patience, len(bodies))
	}
}

func (s *suite) testEmptyReceiveReturnsWithinWait(t *testing.T) {
	ctx := testContext(t)
	q := s.queue(t, QueueOptions{VisibilityTimeout: 30 * time.Second}).Queue
	for _, wait := range []time.Duration{0, pollWait} {
		for _, n := range []int{1, queue.MaxBatch} {
			start := time.Now()
			msgs, err := q.Receive(ctx, n, wait)
			elapsed := time.Since(start)
			if err != nil {
				t.Fatalf("Receive(max %d, wait %v) on an empty queue: %v", n, wait, err)
			}
			if len(msgs) != 0 {
				t.Errorf("Receive(max %d, wait %v) on an empty queue returned %d messages", n, wait, len(msgs))
			}
			if limit := wait + 10*time.Second; elapsed > limit {
				t.Errorf("Receive(max %d, wait %v) on an empty queue took %v, want at most %v", n, wait, elapsed, limit)
			}
		}
	}
}

func (s *suite) testReceiveCancelled(t *testing.T) {
	ctx := testContext(t)
	q := s.queue(t, QueueOptions{VisibilityTimeout: time.Second}).Queue

	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	msgs, err := q.Receive(cancelled, queue.MaxBatch, pollWait)
	if !errors.Is(err, context.Canceled) || len(msgs) != 0 {
		t.Errorf("Receive(cancelled context) = %d messages, %v; want none and context.Canceled", len(msgs), err)
	}

	// A long poll cancelled midway returns at once.
	const wait = 4 * time.Second
	polling, cancel := context.WithCancel(ctx)
	timer := time.AfterFunc(100*time.Millisecond, cancel)
	defer timer.Stop()
	start := time.Now()
	msgs, err = q.Receive(polling, queue.MaxBatch, wait)
	elapsed := time.Since(start)
	cancel()
	if !errors.Is(err, context.Canceled) || len(msgs) != 0 {
		t.Errorf("Receive cancelled during its wait = %d messages, %v; want none and context.Canceled", len(msgs), err)
	}
	if elapsed > wait-time.Second {
		t.Errorf("Receive cancelled 100ms into a %v wait returned after %v", wait, elapsed)
	}

	// A message sent just after the cancellation is not lost, even if the
	// abandoned poll went on and took it: it comes back once invisible no more.
	send(ctx, t, q, "sent after the cancellation")
	got, _ := collect(ctx, t, q, 1)
	if string(got[0].Body) != "sent after the cancellation" {
		t.Errorf("received %q, want the message sent after the cancellation", clip.String(string(got[0].Body), 60))
	}
}

func (s *suite) testInvisibleUntilVisibilityExpires(t *testing.T) {
	ctx := testContext(t)
	const visibility = 2 * time.Second
	q := s.queue(t, QueueOptions{VisibilityTimeout: visibility}).Queue
	send(ctx, t, q, "comes back")

	first, firstAsked := receiveOne(ctx, t, q)
	second, _ := receiveOne(ctx, t, q)
	// The second delivery can be no earlier than the visibility timeout after
	// the call that made the first one started.
	if early := firstAsked.Add(visibility - slack); time.Now().Before(early) {
		t.Errorf("message received again %v after it was first asked for, within its visibility timeout %v",
			time.Since(firstAsked), visibility)
	}
	if second.ID != first.ID || string(second.Body) != string(first.Body) {
		t.Errorf("redelivered message %s %q, want %s %q", second.ID, clip.String(string(second.Body), 60), first.ID, clip.String(string(first.Body), 60))
	}
	if second.Receipt == first.Receipt {
		t.Errorf("redelivery has the receipt of the first delivery; want a new receipt per delivery")
	}
	if first.ReceiveCount != 1 || second.ReceiveCount != 2 {
		t.Errorf("ReceiveCount of the deliveries = %d, %d; want 1, 2", first.ReceiveCount, second.ReceiveCount)
	}
}

func (s *suite) testChangeVisibilityZeroReleases(t *testing.T) {
	const visibility = time.Minute
	// receiveOne gives up after patience, well within the visibility timeout.
	if after := s.receiveAfterChangeVisibility(t, visibility, 0, "released"); after >= visibility {
		t.Fatalf("message came back only after its visibility timeout")
	}
}

func (s *suite) testChangeVisibilityExtends(t *testing.T) {
	const visibility, extended = time.Second, 4 * time.Second
	if after := s.receiveAfterChangeVisibility(t, visibility, extended, "extended"); after < extended-slack {
		t.Errorf("message received again %v after its visibility was extended to %v", after, extended)
	}
}

// receiveAfterChangeVisibility sends body to a fresh queue of the given
// visibility timeout, receives it, changes its visibility to d and receives
// it again, checking that the same message came back with one more receive
// counted (and what the backend's ChangeVisibility adds). It returns how
// long after the change it came back.
func (s *suite) receiveAfterChangeVisibility(t *testing.T, visibility, d time.Duration, body string) time.Duration {
	t.Helper()
	ctx := testContext(t)
	q := s.queue(t, QueueOptions{VisibilityTimeout: visibility}).Queue
	send(ctx, t, q, body)

	first, _ := receiveOne(ctx, t, q)
	changed := time.Now()
	if err := q.ChangeVisibility(ctx, first.Receipt, d); err != nil {
		t.Fatalf("ChangeVisibility(%v): %v", d, err)
	}
	second, _ := receiveOne(ctx, t, q)
	after := time.Since(changed)
	if second.ID != first.ID {
		t.Errorf("received %s, want the %s message %s", second.ID, body, first.ID)
	}
	if want := 2 + s.visibilityBump(); second.ReceiveCount != want {
		t.Errorf("ReceiveCount after ChangeVisibility(%v) = %d, want %d", d, second.ReceiveCount, want)
	}
	return after
}

func (s *suite) testChangeVisibilityInvalidReceipt(t *testing.T) {
	ctx := testContext(t)
	q := s.queue(t, QueueOptions{VisibilityTimeout: 30 * time.Second}).Queue
	if err := q.ChangeVisibility(ctx, "not-a-receipt-handle", 10*time.Second); !errors.Is(err, queue.ErrInvalidReceipt) {
		t.Errorf("ChangeVisibility(garbage receipt) = %v, want queue.ErrInvalidReceipt", err)
	}

	send(ctx, t, q, "deleted")
	m, _ := receiveOne(ctx, t, q)
	deleteAll(ctx, t, q, m.Receipt)
	if err := q.ChangeVisibility(ctx, m.Receipt, 10*time.Second); !errors.Is(err, queue.ErrInvalidReceipt) {
		t.Errorf("ChangeVisibility(receipt of a deleted message) = %v, want queue.ErrInvalidReceipt", err)
	}
}

func (s *suite) testDeleteBatch(t *testing.T) { s.deleteReceived(t, time.Second, 3) }

// testDeleteBatchChunks deletes more receipts than one batch call takes.
func (s *suite) testDeleteBatchChunks(t *testing.T) { s.deleteReceived(t, 2*time.Second, 25) }

// deleteReceived receives n messages from a fresh queue of the given
// visibility timeout, deletes them with one DeleteBatch, and checks that
// none comes back once their visibility timeout is over.
func (s *suite) deleteReceived(t *testing.T, visibility time.Duration, n int) {
	ctx := testContext(t)
	q, got := s.received(ctx, t, visibility, n)
	deleteAll(ctx, t, q, receipts(got)...)
	expectNone(ctx, t, q, visibility+2*time.Second)
}

// received sends n messages to a fresh queue of the given visibility
// timeout, and returns it with a delivery of each.
func (s *suite) received(ctx context.Context, t *testing.T, visibility time.Duration, n int) (queue.Queue, []queue.Delivery) {
	t.Helper()
	q := s.queue(t, QueueOptions{VisibilityTimeout: visibility}).Queue
	send(ctx, t, q, numbered("delete", n)...)
	got, _ := collect(ctx, t, q, n)
	return q, got
}

func (s *suite) testDeleteBatchInvalidReceipt(t *testing.T) {
	ctx := testContext(t)
	const visibility = time.Second
	q, got := s.received(ctx, t, visibility, 3)
	batch := []string{got[0].Receipt, "not-a-receipt-handle", got[1].Receipt, got[2].Receipt}
	errs, err := q.DeleteBatch(ctx, batch)
	if err != nil {
		t.Fatalf("DeleteBatch: %v", err)
	}
	if len(errs) != len(batch) {
		t.Fatalf("DeleteBatch of %d receipts returned %d errors", len(batch), len(errs))
	}
	for i, err := range errs {
		switch {
		case i == 1 && !errors.Is(err, queue.ErrInvalidReceipt):
			t.Errorf("DeleteBatch entry %d (garbage receipt): %v, want queue.ErrInvalidReceipt", i, err)
		case i != 1 && err != nil:
			t.Errorf("DeleteBatch entry %d: %v", i, err)
		}
	}
	expectNone(ctx, t, q, visibility+2*time.Second)
}

func (s *suite) testSendBatchChunks(t *testing.T) {
	ctx := testContext(t)
	q := s.queue(t, QueueOptions{VisibilityTimeout: time.Minute}).Queue
	bodies := numbered("chunk", 25)
	send(ctx, t, q, bodies...)

	got, dups := collect(ctx, t, q, len(bodies))
	if dups != 0 {
		t.Errorf("%d messages were delivered twice within the visibility timeout", dups)
	}
	if diff := cmp.Diff(sorted(bodiesOf(got)), sorted(bodies)); diff != "" {
		t.Errorf("received bodies (-got +want):\n%s", diff)
	}
}

func (s *suite) testDelayHonoured(t *testing.T) {
	ctx := testContext(t)
	const delay = 3 * time.Second
	q := s.queue(t, QueueOptions{VisibilityTimeout: time.Minute}).Queue
	sentAt := time.Now()
	errs, err := q.SendBatch(ctx, []queue.Entry{
		{Body: []byte("delayed"), Delay: delay},
		{Body: []byte("prompt")},
	})
	if err != nil || queue.FirstError(errs) != nil {
		t.Fatalf("SendBatch = %v, %v", errs, err)
	}

	got := map[string]bool{}
	deadline := time.Now().Add(patience)
	for len(got) < 2 && time.Now().Before(deadline) {
		for _, m := range receive(ctx, t, q, 2) {
			body := string(m.Body)
			if got[body] {
				t.Errorf("%q delivered twice", body)
			}
			got[body] = true
			if body == "delayed" && time.Now().Before(sentAt.Add(delay-slack)) {
				t.Errorf("delayed message received %v after it was sent, want at least %v", time.Since(sentAt), delay)
			}
		}
	}
	if !got["delayed"] || !got["prompt"] {
		t.Errorf("received %v within %v, want both messages", got, patience)
	}
}

func (s *suite) testDeadLetterAfterMaxReceiveCount(t *testing.T) {
	ctx := testContext(t)
	const maxReceives = 2
	inst := s.queue(t, QueueOptions{VisibilityTimeout: time.Second, MaxReceiveCount: maxReceives})
	q := inst.Queue
	send(ctx, t, q, "poison")

	receives := 0
	deadline := time.Now().Add(patience)
	for {
		if time.Now().After(deadline) {
			t.Fatalf("message not in the dead-letter queue %v after it was sent (received %d times)", patience, receives)
		}
		if receives < maxReceives || !s.features.DeadLetterOnExpiry {
			for _, m := range receive(ctx, t, q, 1) {
				receives++
				if receives > maxReceives {
					t.Fatalf("message received %d times, want it dead-lettered after %d", receives, maxReceives)
				}
				if m.ReceiveCount != receives {
					t.Errorf("ReceiveCount = %d on receive %d", m.ReceiveCount, receives)
				}
			}
		} else {
			pause(ctx, t, 100*time.Millisecond)
		}
		dead, err := inst.DeadLetters(ctx)
		if err != nil {
			t.Fatalf("DeadLetters: %v", err)
		}
		if len(dead) > 0 {
			if diff := cmp.Diff(bodyStrings(dead), []string{"poison"}); diff != "" {
				t.Errorf("dead letters (-got +want):\n%s", diff)
			}
			break
		}
	}
	if receives != maxReceives {
		t.Errorf("message dead-lettered after %d receives, want %d", receives, maxReceives)
	}
	if msgs := receive(ctx, t, q, 1); len(msgs) != 0 {
		t.Errorf("dead-lettered message still received from the queue: %q", clip.String(string(msgs[0].Body), 60))
	}
}

func (s *suite) testAttributes(t *testing.T) {
	for _, opts := range []QueueOptions{
		{VisibilityTimeout: 7 * time.Second, MaxReceiveCount: 4},
		{VisibilityTimeout: 3 * time.Second},
	} {
		t.Run(fmt.Sprintf("%v-%d", opts.VisibilityTimeout, opts.MaxReceiveCount), func(t *testing.T) {
			ctx := testContext(t)
			q := s.queue(t, opts).Queue
			got, err := q.Attributes(ctx)
			if err != nil {
				t.Fatalf("Attributes: %v", err)
			}
			want := queue.Attributes{VisibilityTimeout: opts.VisibilityTimeout, MaxReceiveCount: opts.MaxReceiveCount}
			if diff := cmp.Diff(got, want); diff != "" {
				t.Errorf("Attributes (-got +want):\n%s", diff)
			}
		})
	}
}

func (s *suite) testConcurrentReceivers(t *testing.T) {
	ctx := testContext(t)
	const (
		receivers  = 8
		messages   = 200
		visibility = 2 * time.Minute
	)
	q := s.queue(t, QueueOptions{VisibilityTimeout: visibility}).Queue
	bodies := numbered("concurrent", messages)
	send(ctx, t, q, bodies...)

	// Every message must be delivered once well before the visibility
	// timeout could expire.
	recvCtx, cancel := context.WithTimeout(ctx, visibility/2)
	defer cancel()
	var (
		mu         sync.Mutex
		deliveries = map[string][]string{} // ID → bodies delivered
		total      int
		wg         sync.WaitGroup
	)
	for range receivers {
		wg.Go(func() {
			for {
				mu.Lock()
				done := total >= messages
				mu.Unlock()
				if done || recvCtx.Err() != nil {
					return
				}
				msgs, err := q.Receive(recvCtx, queue.MaxBatch, pollWait)
				if err != nil {
					if recvCtx.Err() == nil {
						t.Errorf("Receive: %v", err)
					}
					return
				}
				mu.Lock()
				for _, m := range msgs {
					deliveries[m.ID] = append(deliveries[m.ID], string(m.Body))
					total++
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()

	var got []string
	for id, bs := range deliveries {
		if len(bs) > 1 {
			t.Errorf("message %s delivered %d times within its visibility timeout", id, len(bs))
		}
		got = append(got, bs[0])
	}
	if diff := cmp.Diff(sorted(got), sorted(bodies)); diff != "" {
		t.Errorf("bodies delivered to %d concurrent receivers (-got +want):\n%s", receivers, diff)
	}
	if msgs := receive(ctx, t, q, queue.MaxBatch); len(msgs) != 0 {
		t.Errorf("%d messages received again within their visibility timeout", len(msgs))
	}
}

// send sends bodies (in batches of any size) and fails t unless all were sent.
func send(ctx context.Context, t *testing.T, q queue.Queue, bodies ...string) {
	t.Helper()
	entries := make([]queue.Entry, len(bodies))
	for i, b := range bodies {
		entries[i] = queue.Entry{Body: []byte(b)}
	}
	errs, err := q.SendBatch(ctx, entries)
	if err != nil {
		t.Fatalf("SendBatch of %d entries: %v", len(entries), err)
	}
	if len(errs) != len(entries) {
		t.Fatalf("SendBatch of %d entries returned %d errors", len(entries), len(errs))
	}
	if err := queue.FirstError(errs); err != nil {
		t.Fatalf("SendBatch of %d entries: %v", len(entries), err)
	}
}

// deleteAll deletes receipts and fails t unless all were deleted.
func deleteAll(ctx context.Context, t *testing.T, q queue.Queue, receipts ...string) {
	t.Helper()
	errs, err := q.DeleteBatch(ctx, receipts)
	if err != nil {
		t.Fatalf("DeleteBatch of %d receipts: %v", len(receipts), err)
	}
	if len(errs) != len(receipts) {
		t.Fatalf("DeleteBatch of %d receipts returned %d errors", len(receipts), len(errs))
	}
	for i, err := range errs {
		if err != nil {
			t.Errorf("DeleteBatch entry %d: %v", i, err)
		}
	}
}

// receive is one Receive of at most n messages with the suite's short wait.
func receive(ctx context.Context, t *testing.T, q queue.Queue, n int) []queue.Delivery {
	t.Helper()
	msgs, err := q.Receive(ctx, n, pollWait)
	if err != nil {
		t.Fatalf("Receive(max %d): %v", n, err)
	}
	return msgs
}

// receiveOne polls until it receives one message, and returns it with the
// time the Receive call that got it started.
func receiveOne(ctx context.Context, t *testing.T, q queue.Queue) (queue.Delivery, time.Time) {
	t.Helper()
	deadline := time.Now().Add(patience)
	for time.Now().Before(deadline) {
		asked := time.Now()
		msgs := receive(ctx, t, q, 1)
		switch len(msgs) {
		case 0:
			continue
		case 1:
			return msgs[0], asked
		default:
			t.Fatalf("Receive(max 1) returned %d messages", len(msgs))
		}
	}
	t.Fatalf("no message received within %v", patience)
	return queue.Delivery{}, time.Time{}
}

// collect polls until it has received n distinct messages, and returns the
// latest delivery of each, in the order they were first received, with the
// number of deliveries beyond the first.
func collect(ctx context.Context, t *testing.T, q queue.Queue, n int) (msgs []queue.Delivery, dups int) {
	t.Helper()
	index := map[string]int{}
	deadline := time.Now().Add(patience)
	for len(msgs) < n && time.Now().Before(deadline) {
		// Ask for no more than is missing: local-aws-sqs waits for the full
		// count.
		for _, m := range receive(ctx, t, q, min(n-len(msgs), queue.MaxBatch)) {
			if i, ok := index[m.ID]; ok {
				msgs[i] = m
				dups++
				continue
			}
			index[m.ID] = len(msgs)
			msgs = append(msgs, m)
		}
	}
	if len(msgs) < n {
		t.Fatalf("received %d distinct messages within %v, want %d", len(msgs), patience, n)
	}
	if len(msgs) > n {
		t.Errorf("received %d distinct messages, want %d", len(msgs), n)
	}
	return msgs, dups
}

// expectNone polls the queue for d and fails t if anything is received.
func expectNone(ctx context.Context, t *testing.T, q queue.Queue, d time.Duration) {
	t.Helper()
	for end := time.Now().Add(d); time.Now().Before(end); {
		if msgs := receive(ctx, t, q, queue.MaxBatch); len(msgs) != 0 {
			t.Fatalf("received %d messages that should be gone, the first %q (ReceiveCount %d)",
				len(msgs), clip.String(string(msgs[0].Body), 60), msgs[0].ReceiveCount)
		}
	}
}

// record adds msgs to seen by ID and fails t on a second delivery.
func record(t *testing.T, seen map[string]bool, msgs []queue.Delivery) {
	t.Helper()
	for _, m := range msgs {
		if seen[m.ID] {
			t.Errorf("message %s delivered twice within its visibility timeout", m.ID)
		}
		seen[m.ID] = true
	}
}

// pause waits for d or the end of ctx. It paces polls; it asserts nothing.
func pause(ctx context.Context, t *testing.T, d time.Duration) {
	t.Helper()
	select {
	case <-ctx.Done():
		t.Fatalf("context ended: %v", ctx.Err())
	case <-time.After(d):
	}
}

func numbered(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s-%03d", prefix, i)
	}
	return out
}

func receipts(msgs []queue.Delivery) []string {
	out := make([]string, len(msgs))
	for i, m := range msgs {
		out[i] = m.Receipt
	}
	return out
}

func bodiesOf(msgs []queue.Delivery) []string {
	out := make([]string, len(msgs))
	for i, m := range msgs {
		out[i] = string(m.Body)
	}
	return out
}

func bodyStrings(bodies [][]byte) []string {
	out := make([]string, len(bodies))
	for i, b := range bodies {
		out[i] = string(b)
	}
	return out
}

func sorted(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}
