package worker

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/sixpotify/top-tracks/internal/gate"
	"github.com/sixpotify/top-tracks/internal/metrics"
	"github.com/sixpotify/top-tracks/internal/queue"
)

// lane is one queue the worker drains, with its batching deleter.
type lane struct {
	w        *Worker
	name     string
	priority gate.Priority
	q        Queue
	log      *slog.Logger

	visibility  time.Duration // the queue's visibility timeout
	maxReceives int           // the redrive policy's, or 0 when the queue has no DLQ

	deletes chan deleteReq
	done    chan struct{}
}

type deleteReq struct {
	receipt string
	msgID   string
}

func (w *Worker) newLane(name string, p gate.Priority, q Queue) *lane {
	return &lane{
		w: w, name: name, priority: p, q: q,
		log:        w.log.With("lane", name),
		visibility: 30 * time.Second,
		deletes:    make(chan deleteReq, 4*queue.MaxBatch),
		done:       make(chan struct{}),
	}
}

// attributes reads the queue's visibility timeout and redrive policy when the
// queue can tell them, retrying until it answers or ctx ends: without them the
// worker cannot know whether a poison message would reach a dead-letter queue.
func (l *lane) attributes(ctx context.Context) {
	a, ok := l.q.(queue.Attributer)
	if !ok {
		return
	}
	backoff := 500 * time.Millisecond
	for {
		attrs, err := a.Attributes(ctx)
		if err == nil {
			if attrs.VisibilityTimeout > 0 {
				l.visibility = attrs.VisibilityTimeout
			}
			l.maxReceives = attrs.MaxReceiveCount
			l.log.Info("queue attributes", "visibility_timeout", l.visibility, "max_receive_count", l.maxReceives)
			return
		}
		l.log.Error("cannot read the queue's attributes; retrying", "err", err, "retry_in", backoff)
		if !sleep(ctx, backoff) {
			return
		}
		backoff = min(2*backoff, 30*time.Second)
	}
}

// receiveLoop receives while recvCtx lives, handing each message to a
// goroutine that holds one of the shared slots.
func (l *lane) receiveLoop(recvCtx, workCtx context.Context, slots chan struct{}, work *sync.WaitGroup, idle *idleTracker, stop context.CancelFunc) {
	w := l.w
	// The bulk lane takes at most the gate's bulk share of the slots, as of
	// the rate: the rest are kept for the chatbot's lane.
	limit := cap(slots)
	if l.priority == gate.Bulk && len(w.lanes) > 1 {
		limit = max(1, int(float64(cap(slots))*w.gate.BulkShare()))
	}
	held := newCounter()
	backoff := 250 * time.Millisecond
	for recvCtx.Err() == nil {
		// A pause (a cooldown, a refusal, an open outage breaker): what is
		// received now would only wait, or cycle towards the dead-letter
		// queue. Keep it in the queue, except the breaker's one probe.
		wait, _, endProbe := w.gate.Hold()
		if wait > 0 {
			if !sleep(recvCtx, min(wait, time.Second)) {
				break
			}
			continue
		}
		want := queue.MaxBatch
		if endProbe != nil {
			want = 1
		}
		n := acquire(recvCtx, slots, held, limit, want)
		if n == 0 {
			if endProbe != nil {
				endProbe()
			}
			break
		}
		w.metrics.ReceiveCalls.WithLabelValues(l.name).Inc()
		msgs, err := l.q.Receive(recvCtx, n, w.opts.WaitTime)
		for range n - len(msgs) {
			<-slots
			held.add(-1)
		}
		if err != nil || len(msgs) == 0 {
			if endProbe != nil {
				endProbe() // no message to probe with
			}
		}
		if err != nil {
			if recvCtx.Err() != nil {
				break
			}
			w.metrics.ReceiveErrors.WithLabelValues(l.name).Inc()
			w.receiving.Store(false)
			l.log.Error("receive failed; retrying", "err", err, "retry_in", backoff)
			if !sleep(recvCtx, backoff) {
				break
			}
			backoff = min(2*backoff, 20*time.Second)
			continue
		}
		backoff = 250 * time.Millisecond
		w.receiving.Store(true)
		if len(msgs) == 0 {
			w.metrics.EmptyReceives.WithLabelValues(l.name).Inc()
		}
		w.metrics.Received.WithLabelValues(l.name).Add(float64(len(msgs)))
		idle.add(len(msgs))
		for _, m := range msgs {
			work.Add(1)
			go func() {
				defer work.Done()
				defer func() { <-slots; held.add(-1); idle.add(-1) }()
				ctx := workCtx
				if endProbe != nil {
					defer endProbe()
					ctx = gate.WithProbe(ctx)
				}
				l.handle(ctx, m)
			}()
		}
		if w.opts.StopWhenIdle && idle.observe(l.name, len(msgs)) {
			l.log.Info("queues are empty and nothing is in flight: stopping")
			stop()
			break
		}
	}
}

// acquire takes between 1 and want slots (blocking for the first), keeping
// this lane's holdings at most limit. It returns 0 when ctx ends.
func acquire(ctx context.Context, slots chan struct{}, held *counter, limit, want int) int {
	for held.get() >= limit {
		if !held.waitBelow(ctx, limit) {
			return 0
		}
	}
	select {
	case slots <- struct{}{}:
		held.add(1)
	case <-ctx.Done():
		return 0
	}
	n := 1
	for n < want && held.get() < limit {
		select {
		case slots <- struct{}{}:
			held.add(1)
			n++
		default:
			return n
		}
	}
	return n
}

// counter is a count another goroutine can wait on.
type counter struct {
	mu      sync.Mutex
	n       int
	changed chan struct{}
}

func newCounter() *counter { return &counter{changed: make(chan struct{})} }

func (c *counter) add(d int) {
	c.mu.Lock()
	c.n += d
	close(c.changed)
	c.changed = make(chan struct{})
	c.mu.Unlock()
}

func (c *counter) get() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n
}

func (c *counter) waitBelow(ctx context.Context, limit int) bool {
	for {
		c.mu.Lock()
		n, ch := c.n, c.changed
		c.mu.Unlock()
		if n < limit {
			return true
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return false
		}
	}
}

// startDeleter starts the goroutine that deletes finished messages in
// batches of up to ten.
func (l *lane) startDeleter() {
	go func() {
		defer close(l.done)
		batch := make([]deleteReq, 0, queue.MaxBatch)
		for {
			req, ok := <-l.deletes
			if !ok {
				return
			}
			batch = append(batch[:0], req)
			// Take whatever else is already waiting, up to a full batch; a
			// lone message is not held back waiting for company.
		fill:
			for len(batch) < queue.MaxBatch {
				select {
				case req, ok := <-l.deletes:
					if !ok {
						break fill
					}
					batch = append(batch, req)
				default:
					break fill
				}
			}
			l.deleteBatch(batch)
		}
	}()
}

func (l *lane) deleteBatch(batch []deleteReq) {
	receipts := make([]string, len(batch))
	for i, r := range batch {
		receipts[i] = r.receipt
	}
	// Deletes run on their own deadline: they must still happen during a
	// stop, but not past the stop's deadline.
	deadline := time.Now().Add(5 * time.Second)
	if by := l.w.stopBy.Load(); by != 0 && time.Unix(0, by).Before(deadline) {
		deadline = time.Unix(0, by)
	}
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	l.w.metrics.DeleteCalls.WithLabelValues(l.name).Inc()
	errs, err := l.q.DeleteBatch(ctx, receipts)
	if err != nil {
		l.w.metrics.DeleteFailures.WithLabelValues(l.name).Add(float64(len(batch)))
		l.log.Error("batch delete failed; the messages will be delivered again and found fresh", "err", err, "messages", len(batch))
		return
	}
	failed := 0
	for i, e := range errs {
		if e != nil {
			failed++
			l.log.Warn("delete failed; the message will be delivered again", "message_id", batch[i].msgID, "err", e)
		}
	}
	l.w.metrics.Deleted.WithLabelValues(l.name).Add(float64(len(batch) - failed))
	l.w.metrics.DeleteFailures.WithLabelValues(l.name).Add(float64(failed))
}

// delete queues m for the batch deleter.
func (l *lane) delete(m Message) {
	l.deletes <- deleteReq{receipt: m.Receipt, msgID: m.ID}
}

func (l *lane) stopDeleter() {
	close(l.deletes)
	<-l.done
}

// release gives m back to the queue, visible again after delay, and returns
// the outcome of a release.
func (l *lane) release(m Message, delay time.Duration, log *slog.Logger) string {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if err := l.q.ChangeVisibility(ctx, m.Receipt, delay); err != nil && !errors.Is(err, queue.ErrInvalidReceipt) {
		// The message comes back anyway when its visibility timeout ends.
		log.Warn("could not give the message back; it returns when its visibility timeout ends", "err", err)
	}
	return metrics.OutcomeReleased
}

// heartbeat keeps m invisible while its work runs longer than half the
// visibility timeout. The returned func stops it.
func (l *lane) heartbeat(m Message, log *slog.Logger) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(l.visibility / 2)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				cctx, ccancel := context.WithTimeout(ctx, 5*time.Second)
				err := l.q.ChangeVisibility(cctx, m.Receipt, l.visibility)
				ccancel()
				if err != nil && ctx.Err() == nil {
					log.Warn("could not extend the message's visibility", "err", err)
				}
			}
		}
	}()
	return func() { cancel(); <-done }
}

// sleep waits d or until ctx ends; it reports whether the full d passed.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
