package sqlitequeue_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.uber.org/goleak"
	"golang.org/x/sync/errgroup"

	"github.com/sixpotify/top-tracks/internal/queue"
	"github.com/sixpotify/top-tracks/internal/queue/sqlitequeue"
	"github.com/sixpotify/top-tracks/internal/testutil"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// newFakeClock returns a clock that moves only when told to.
func newFakeClock() *testutil.Clock {
	return testutil.NewClock(time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC))
}

func dbPath(t *testing.T) string {
	t.Helper()
	return filepath.Join(t.TempDir(), "queue.db")
}

func open(t *testing.T, path, name string, opts sqlitequeue.Options) *sqlitequeue.Queue {
	t.Helper()
	q, err := sqlitequeue.Open(context.Background(), path, name, opts)
	if err != nil {
		t.Fatalf("Open(%q, %q): %v", path, name, err)
	}
	t.Cleanup(func() {
		if err := q.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return q
}

func send(t *testing.T, q *sqlitequeue.Queue, bodies ...string) {
	t.Helper()
	entries := make([]queue.Entry, len(bodies))
	for i, b := range bodies {
		entries[i] = queue.Entry{Body: []byte(b)}
	}
	errs, err := q.SendBatch(context.Background(), entries)
	if err != nil {
		t.Fatalf("SendBatch: %v", err)
	}
	if err := queue.FirstError(errs); err != nil {
		t.Fatalf("SendBatch entries: %v", err)
	}
}

func receive(t *testing.T, q *sqlitequeue.Queue, max int) []queue.Delivery {
	t.Helper()
	msgs, err := q.Receive(context.Background(), max, 0)
	if err != nil {
		t.Fatalf("Receive: %v", err)
	}
	return msgs
}

func bodies(msgs []queue.Delivery) []string {
	out := make([]string, len(msgs))
	for i, m := range msgs {
		out[i] = string(m.Body)
	}
	return out
}

func checkLen(t *testing.T, q *sqlitequeue.Queue, visible, inflight, dead int) {
	t.Helper()
	v, i, d, err := q.Len(context.Background())
	if err != nil {
		t.Fatalf("Len: %v", err)
	}
	if got, want := [3]int{v, i, d}, [3]int{visible, inflight, dead}; got != want {
		t.Errorf("Len() = visible, inflight, dead %v, want %v", got, want)
	}
}

func TestRoundTrip(t *testing.T) {
	clock := newFakeClock()
	q := open(t, dbPath(t), "default", sqlitequeue.Options{Clock: clock.Now})
	send(t, q, `{"artist_id":"a"}`, `{"artist_id":"b"}`, `{"artist_id":"c"}`)
	checkLen(t, q, 3, 0, 0)

	msgs := receive(t, q, 10)
	if diff := cmp.Diff(bodies(msgs), []string{`{"artist_id":"a"}`, `{"artist_id":"b"}`, `{"artist_id":"c"}`}); diff != "" {
		t.Fatalf("bodies (-got +want):\n%s", diff)
	}
	ids := map[string]bool{}
	receipts := make([]string, len(msgs))
	for i, m := range msgs {
		if m.ReceiveCount != 1 || !m.SentAt.Equal(clock.Now()) || m.ID == "" || m.Receipt == "" || ids[m.ID] {
			t.Errorf("message %d = %+v, want a fresh ID and receipt, ReceiveCount 1, SentAt %v", i, m, clock.Now())
		}
		ids[m.ID] = true
		receipts[i] = m.Receipt
	}
	checkLen(t, q, 0, 3, 0)
	if got := receive(t, q, 10); len(got) != 0 {
		t.Fatalf("second Receive got %d messages while all are invisible", len(got))
	}

	errs, err := q.DeleteBatch(context.Background(), receipts)
	if err != nil || queue.FirstError(errs) != nil {
		t.Fatalf("DeleteBatch: %v %v", err, errs)
	}
	checkLen(t, q, 0, 0, 0)
}

func TestReceiveMaxIsCappedAtTen(t *testing.T) {
	q := open(t, dbPath(t), "default", sqlitequeue.Options{})
	var bs []string
	for i := range 25 {
		bs = append(bs, fmt.Sprint(i))
	}
	send(t, q, bs...)
	if got := receive(t, q, 100); len(got) != queue.MaxBatch {
		t.Errorf("Receive(100) got %d messages, want %d", len(got), queue.MaxBatch)
	}
	if got := receive(t, q, 3); len(got) != 3 {
		t.Errorf("Receive(3) got %d messages, want 3", len(got))
	}
	if _, err := q.Receive(context.Background(), 0, 0); err == nil {
		t.Error("Receive(0) succeeded, want an error")
	}
}

func TestVisibilityExpiryRedelivers(t *testing.T) {
	clock := newFakeClock()
	q := open(t, dbPath(t), "default", sqlitequeue.Options{VisibilityTimeout: 30 * time.Second, Clock: clock.Now})
	send(t, q, "m")

	first := receive(t, q, 1)
	if len(first) != 1 {
		t.Fatalf("got %d messages, want 1", len(first))
	}
	clock.Advance(30*time.Second - time.Millisecond)
	if got := receive(t, q, 1); len(got) != 0 {
		t.Fatalf("message delivered again %v before its visibility timeout ran out", 30*time.Second-time.Millisecond)
	}
	clock.Advance(time.Millisecond)
	second := receive(t, q, 1)
	if len(second) != 1 {
		t.Fatalf("message not delivered again after its visibility timeout")
	}
	if second[0].ID != first[0].ID || second[0].ReceiveCount != 2 || second[0].Receipt == first[0].Receipt {
		t.Errorf("redelivery = %+v, want ID %s, ReceiveCount 2 and a new receipt", second[0], first[0].ID)
	}

	// The first delivery's receipt is stale now.
	errs, err := q.DeleteBatch(context.Background(), []string{first[0].Receipt})
	if err != nil || !errors.Is(errs[0], queue.ErrInvalidReceipt) {
		t.Errorf("DeleteBatch(stale receipt) = %v, %v; want an entry error wrapping ErrInvalidReceipt", errs, err)
	}
	if err := q.ChangeVisibility(context.Background(), first[0].Receipt, time.Minute); !errors.Is(err, queue.ErrInvalidReceipt) {
		t.Errorf("ChangeVisibility(stale receipt) = %v, want ErrInvalidReceipt", err)
	}
	checkLen(t, q, 0, 1, 0)
	errs, err = q.DeleteBatch(context.Background(), []string{second[0].Receipt})
	if err != nil || errs[0] != nil {
		t.Fatalf("DeleteBatch(current receipt) = %v, %v", errs, err)
	}
	checkLen(t, q, 0, 0, 0)
}

func TestDelay(t *testing.T) {
	clock := newFakeClock()
	q := open(t, dbPath(t), "default", sqlitequeue.Options{Clock: clock.Now})
	errs, err := q.SendBatch(context.Background(), []queue.Entry{
		{Body: []byte("later"), Delay: 10 * time.Second},
		{Body: []byte("now")},
	})
	if err != nil || queue.FirstError(errs) != nil {
		t.Fatalf("SendBatch: %v %v", err, errs)
	}
	if got := bodies(receive(t, q, 10)); !cmp.Equal(got, []string{"now"}) {
		t.Fatalf("Receive = %q, want only the undelayed message", got)
	}
	checkLen(t, q, 0, 2, 0)
	clock.Advance(10 * time.Second)
	if got := bodies(receive(t, q, 10)); !cmp.Equal(got, []string{"later"}) {
		t.Fatalf("Receive after the delay = %q, want the delayed message", got)
	}
}

func TestDeadLetterAfterMaxReceiveCount(t *testing.T) {
	clock := newFakeClock()
	vis := 10 * time.Second
	q := open(t, dbPath(t), "default", sqlitequeue.Options{VisibilityTimeout: vis, MaxReceiveCount: 3, Clock: clock.Now})
	send(t, q, "poison", "fine")

	for i := 1; i <= 3; i++ {
		msgs := receive(t, q, 10)
		if len(msgs) != 2-min(i-1, 1) {
			t.Fatalf("receive %d got %d messages", i, len(msgs))
		}
		for _, m := range msgs {
			if string(m.Body) == "fine" {
				if errs, err := q.DeleteBatch(context.Background(), []string{m.Receipt}); err != nil || errs[0] != nil {
					t.Fatalf("DeleteBatch: %v %v", err, errs)
				}
				continue
			}
			if m.ReceiveCount != i {
				t.Errorf("receive %d: ReceiveCount = %d", i, m.ReceiveCount)
			}
		}
		clock.Advance(vis)
	}
	checkLen(t, q, 0, 0, 1)
	if got := receive(t, q, 10); len(got) != 0 {
		t.Fatalf("receive 4 delivered %q, want the message moved to the dead-letter table", bodies(got))
	}
	dead, err := q.DeadLetters(context.Background())
	if err != nil {
		t.Fatalf("DeadLetters: %v", err)
	}
	if len(dead) != 1 || string(dead[0].Body) != "poison" || dead[0].ReceiveCount != 3 || dead[0].Receipt != "" {
		t.Errorf("DeadLetters = %+v, want the poison message with ReceiveCount 3 and no receipt", dead)
	}
	checkLen(t, q, 0, 0, 1)
	attrs, err := q.Attributes(context.Background())
	if err != nil || attrs != (queue.Attributes{VisibilityTimeout: vis, MaxReceiveCount: 3}) {
		t.Errorf("Attributes = %+v, %v", attrs, err)
	}
}

func TestDeadLetterDisabled(t *testing.T) {
	clock := newFakeClock()
	q := open(t, dbPath(t), "default", sqlitequeue.Options{MaxReceiveCount: -1, Clock: clock.Now})
	send(t, q, "again")
	for i := 1; i <= 2*sqlitequeue.DefaultMaxReceiveCount; i++ {
		msgs := receive(t, q, 1)
		if len(msgs) != 1 || msgs[0].ReceiveCount != i {
			t.Fatalf("receive %d = %+v", i, msgs)
		}
		clock.Advance(sqlitequeue.DefaultVisibilityTimeout)
	}
	checkLen(t, q, 1, 0, 0)
	attrs, err := q.Attributes(context.Background())
	if err != nil || attrs.MaxReceiveCount != 0 || attrs.VisibilityTimeout != sqlitequeue.DefaultVisibilityTimeout {
		t.Errorf("Attributes = %+v, %v; want the default visibility and MaxReceiveCount 0", attrs, err)
	}
}

func TestChangeVisibility(t *testing.T) {
	clock := newFakeClock()
	q := open(t, dbPath(t), "default", sqlitequeue.Options{VisibilityTimeout: 10 * time.Second, Clock: clock.Now})
	send(t, q, "m")
	m := receive(t, q, 1)[0]
	ctx := context.Background()

	// A heartbeat pushes the timeout out.
	clock.Advance(9 * time.Second)
	if err := q.ChangeVisibility(ctx, m.Receipt, time.Minute); err != nil {
		t.Fatalf("ChangeVisibility(1m): %v", err)
	}
	clock.Advance(59 * time.Second)
	if got := receive(t, q, 1); len(got) != 0 {
		t.Fatal("delivered again before the extended timeout ran out")
	}
	// Zero releases it at once.
	if err := q.ChangeVisibility(ctx, m.Receipt, 0); err != nil {
		t.Fatalf("ChangeVisibility(0): %v", err)
	}
	again := receive(t, q, 1)
	if len(again) != 1 || again[0].ReceiveCount != 2 {
		t.Fatalf("after release got %+v, want the message with ReceiveCount 2", again)
	}
	// A delivery whose timeout ran out is no longer in flight.
	clock.Advance(10 * time.Second)
	if err := q.ChangeVisibility(ctx, again[0].Receipt, time.Minute); !errors.Is(err, queue.ErrInvalidReceipt) {
		t.Errorf("ChangeVisibility after expiry = %v, want ErrInvalidReceipt", err)
	}
	for _, r := range []string{"", "nonsense", strings.Repeat("0", 32)} {
		if err := q.ChangeVisibility(ctx, r, time.Minute); !errors.Is(err, queue.ErrInvalidReceipt) {
			t.Errorf("ChangeVisibility(%q) = %v, want ErrInvalidReceipt", r, err)
		}
	}
}

func TestDeleteBatchWithBadReceipts(t *testing.T) {
	clock := newFakeClock()
	q := open(t, dbPath(t), "default", sqlitequeue.Options{Clock: clock.Now})
	send(t, q, "a", "b", "c")
	msgs := receive(t, q, 10)
	receipts := []string{msgs[0].Receipt, "garbage", msgs[1].Receipt, strings.Repeat("f", 32), msgs[1].Receipt}
	errs, err := q.DeleteBatch(context.Background(), receipts)
	if err != nil {
		t.Fatalf("DeleteBatch: %v", err)
	}
	want := []bool{false, true, false, true, true} // the repeated receipt was used up by its first entry
	if len(errs) != len(want) {
		t.Fatalf("DeleteBatch returned %d errors for %d receipts", len(errs), len(want))
	}
	for i, e := range errs {
		if got := errors.Is(e, queue.ErrInvalidReceipt); got != want[i] || (e != nil) != want[i] {
			t.Errorf("errs[%d] = %v, want invalid receipt: %v", i, e, want[i])
		}
	}
	checkLen(t, q, 0, 1, 0)
	if errs, err := q.DeleteBatch(context.Background(), nil); err != nil || len(errs) != 0 {
		t.Errorf("DeleteBatch(nil) = %v, %v", errs, err)
	}
}

func TestSendBatchRefusesBadBodies(t *testing.T) {
	q := open(t, dbPath(t), "default", sqlitequeue.Options{})
	entries := []queue.Entry{
		{Body: []byte("ok 1")},
		{Body: nil},
		{Body: []byte{0xff, 0xfe}},
		{Body: []byte("ctrl \x01")},
		{Body: []byte("ok 2 — ünïcødé 🎵")},
		{Body: make([]byte, 1<<20+1)},
	}
	errs, err := q.SendBatch(context.Background(), entries)
	if err != nil {
		t.Fatalf("SendBatch: %v", err)
	}
	for i, e := range errs {
		if wantErr := i != 0 && i != 4; (e != nil) != wantErr {
			t.Errorf("errs[%d] = %v, want an error: %v", i, e, wantErr)
		}
	}
	if got := bodies(receive(t, q, 10)); !cmp.Equal(got, []string{"ok 1", "ok 2 — ünïcødé 🎵"}) {
		t.Errorf("received %q", got)
	}
}

func TestLanesShareAFile(t *testing.T) {
	clock := newFakeClock()
	path := dbPath(t)
	opts := sqlitequeue.Options{MaxReceiveCount: 1, VisibilityTimeout: time.Second, Clock: clock.Now}
	chat := open(t, path, "default", opts)
	bulk := open(t, path, "bulk", opts)
	send(t, chat, "chat 1", "chat 2")
	send(t, bulk, "bulk 1")

	if got := bodies(receive(t, bulk, 10)); !cmp.Equal(got, []string{"bulk 1"}) {
		t.Errorf("bulk lane received %q", got)
	}
	chatMsgs := receive(t, chat, 10)
	if got := bodies(chatMsgs); !cmp.Equal(got, []string{"chat 1", "chat 2"}) {
		t.Errorf("chat lane received %q", got)
	}
	// A receipt of one lane means nothing in the other.
	errs, err := bulk.DeleteBatch(context.Background(), []string{chatMsgs[0].Receipt})
	if err != nil || !errors.Is(errs[0], queue.ErrInvalidReceipt) {
		t.Errorf("bulk.DeleteBatch(chat receipt) = %v, %v; want ErrInvalidReceipt", errs, err)
	}
	if err := bulk.ChangeVisibility(context.Background(), chatMsgs[0].Receipt, 0); !errors.Is(err, queue.ErrInvalidReceipt) {
		t.Errorf("bulk.ChangeVisibility(chat receipt) = %v; want ErrInvalidReceipt", err)
	}
	// Dead letters stay in their lane.
	clock.Advance(time.Second)
	if dead, err := bulk.DeadLetters(context.Background()); err != nil || !cmp.Equal(bodies(dead), []string{"bulk 1"}) {
		t.Errorf("bulk.DeadLetters = %q, %v", bodies(dead), err)
	}
	checkLen(t, chat, 0, 0, 2)
	checkLen(t, bulk, 0, 0, 1)
}

func TestReopenKeepsMessages(t *testing.T) {
	path := dbPath(t)
	ctx := context.Background()
	q, err := sqlitequeue.Open(ctx, path, "default", sqlitequeue.Options{})
	if err != nil {
		t.Fatal(err)
	}
	send(t, q, "durable")
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	if err := q.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if _, err := q.Receive(ctx, 1, 0); !errors.Is(err, sqlitequeue.ErrClosed) {
		t.Errorf("Receive after Close = %v, want ErrClosed", err)
	}
	q = open(t, path, "default", sqlitequeue.Options{})
	if got := bodies(receive(t, q, 10)); !cmp.Equal(got, []string{"durable"}) {
		t.Errorf("after reopening received %q", got)
	}
}

func TestLongPoll(t *testing.T) {
	path := dbPath(t)
	ctx := context.Background()
	worker := open(t, path, "default", sqlitequeue.Options{PollInterval: 10 * time.Millisecond})
	producer := open(t, path, "default", sqlitequeue.Options{PollInterval: time.Hour})

	t.Run("wakes on a send through the same handle", func(t *testing.T) {
		q := open(t, dbPath(t), "default", sqlitequeue.Options{PollInterval: time.Hour})
		got := make(chan []queue.Delivery, 1)
		go func() {
			msgs, err := q.Receive(ctx, 10, 20*time.Second)
			if err != nil {
				t.Errorf("Receive: %v", err)
			}
			got <- msgs
		}()
		send(t, q, "hello")
		if msgs := <-got; !cmp.Equal(bodies(msgs), []string{"hello"}) {
			t.Errorf("long poll got %q", bodies(msgs))
		}
	})
	t.Run("sees a send through another handle", func(t *testing.T) {
		got := make(chan []queue.Delivery, 1)
		go func() {
			msgs, err := worker.Receive(ctx, 10, 20*time.Second)
			if err != nil {
				t.Errorf("Receive: %v", err)
			}
			got <- msgs
		}()
		send(t, producer, "from afar")
		if msgs := <-got; !cmp.Equal(bodies(msgs), []string{"from afar"}) {
			t.Errorf("long poll got %q", bodies(msgs))
		}
	})
	t.Run("ends empty after the wait", func(t *testing.T) {
		start := time.Now()
		msgs, err := worker.Receive(ctx, 10, 50*time.Millisecond)
		if err != nil || len(msgs) != 0 {
			t.Errorf("Receive on an empty queue = %v, %v", msgs, err)
		}
		if elapsed := time.Since(start); elapsed < 50*time.Millisecond {
			t.Errorf("Receive returned after %v, before its wait of 50ms", elapsed)
		}
	})
	t.Run("ends when ctx does", func(t *testing.T) {
		ctx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() {
			_, err := worker.Receive(ctx, 10, 20*time.Second)
			done <- err
		}()
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Errorf("Receive after cancel = %v, want context.Canceled", err)
		}
	})
	t.Run("ends on Close", func(t *testing.T) {
		q, err := sqlitequeue.Open(ctx, path, "default", sqlitequeue.Options{PollInterval: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() {
			_, err := q.Receive(ctx, 10, 20*time.Second)
			done <- err
		}()
		if err := q.Close(); err != nil {
			t.Fatal(err)
		}
		if err := <-done; !errors.Is(err, sqlitequeue.ErrClosed) {
			t.Errorf("Receive during Close = %v, want ErrClosed", err)
		}
	})
}

// TestConcurrentHandles runs a producer and two worker handles on one file,
// as separate processes would: four receivers per worker and a sender at the
// same time. No message may be delivered twice while it is invisible, and
// none may be lost.
func TestConcurrentHandles(t *testing.T) {
	const total = 500
	path := dbPath(t)
	opts := sqlitequeue.Options{VisibilityTimeout: 10 * time.Minute, PollInterval: 5 * time.Millisecond}
	producer := open(t, path, "default", opts)
	workers := []*sqlitequeue.Queue{open(t, path, "default", opts), open(t, path, "default", opts)}

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var (
		mu       sync.Mutex
		received = map[string]int{} // body → deliveries
		ids      = map[string]bool{}
	)
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		for start := 0; start < total; start += queue.MaxBatch {
			var entries []queue.Entry
			for i := start; i < min(start+queue.MaxBatch, total); i++ {
				entries = append(entries, queue.Entry{Body: fmt.Appendf(nil, `{"n":%d}`, i)})
			}
			errs, err := producer.SendBatch(gctx, entries)
			if err == nil {
				err = queue.FirstError(errs)
			}
			if err != nil {
				return fmt.Errorf("send: %w", err)
			}
		}
		return nil
	})
	for r := range 8 {
		q := workers[r%2]
		g.Go(func() error {
			for {
				mu.Lock()
				done := len(received) == total
				mu.Unlock()
				if done {
					return nil
				}
				msgs, err := q.Receive(gctx, 1+r%queue.MaxBatch, 100*time.Millisecond)
				if err != nil {
					return fmt.Errorf("receiver %d: %w", r, err)
				}
				receipts := make([]string, len(msgs))
				mu.Lock()
				for i, m := range msgs {
					received[string(m.Body)]++
					if ids[m.ID] {
						t.Errorf("message %s (%s) delivered twice while invisible", m.ID, m.Body)
					}
					ids[m.ID] = true
					receipts[i] = m.Receipt
				}
				mu.Unlock()
				if len(receipts) == 0 {
					continue
				}
				errs, err := q.DeleteBatch(gctx, receipts)
				if err == nil {
					err = queue.FirstError(errs)
				}
				if err != nil {
					return fmt.Errorf("receiver %d: delete: %w", r, err)
				}
			}
		})
	}
	if err := g.Wait(); err != nil {
		t.Fatal(err)
	}
	for i := range total {
		if n := received[fmt.Sprintf(`{"n":%d}`, i)]; n != 1 {
			t.Errorf("message %d delivered %d times, want once", i, n)
		}
	}
	checkLen(t, producer, 0, 0, 0)
}

func TestOpenRejectsBadOptions(t *testing.T) {
	_, err := sqlitequeue.Open(context.Background(), dbPath(t), "no spaces", sqlitequeue.Options{
		VisibilityTimeout: -time.Second,
		PollInterval:      -time.Second,
	})
	if err == nil {
		t.Fatal("Open succeeded")
	}
	for _, want := range []string{"VisibilityTimeout", "PollInterval", "queue name"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Open error %q does not mention %s", err, want)
		}
	}
	if _, err := sqlitequeue.Open(context.Background(), ":memory:", "default", sqlitequeue.Options{}); err == nil {
		t.Error("Open(:memory:) succeeded")
	}
}

func TestPathWithSpecialCharacters(t *testing.T) {
	path := filepath.Join(t.TempDir(), "odd ?#% name.db")
	q := open(t, path, "default", sqlitequeue.Options{})
	send(t, q, "x")
	if got := bodies(receive(t, q, 1)); !cmp.Equal(got, []string{"x"}) {
		t.Errorf("received %q", got)
	}
	if _, err := os.Stat(path); err != nil {
		t.Errorf("the database is not at %q: %v", path, err)
	}
}
