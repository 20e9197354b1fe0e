package worker

import (
	"context"
	"sync"
	"time"

	"github.com/sixpotify/top-tracks/internal/ctxsleep"
	"github.com/sixpotify/top-tracks/internal/queue"
)

// run is the state of one Run that its lanes' receive loops share.
type run struct {
	recvCtx       context.Context    // ends when receiving stops
	workCtx       context.Context    // ends when the drain times out
	stopReceiving context.CancelFunc // for StopWhenIdle
	slots         chan struct{}      // one per artist in flight, across the lanes
	lanes         int
	work          sync.WaitGroup // the deliveries in flight
	idle          idleTracker
}

func newRun(recvCtx, workCtx context.Context, stopReceiving context.CancelFunc, concurrency, lanes int) *run {
	return &run{
		recvCtx: recvCtx, workCtx: workCtx, stopReceiving: stopReceiving,
		slots: make(chan struct{}, concurrency),
		lanes: lanes,
		idle:  idleTracker{lanes: lanes},
	}
}

// Backoffs of a receive that failed.
const (
	receiveBackoff    = 250 * time.Millisecond
	maxReceiveBackoff = 20 * time.Second
)

// receive is the receiving room's door: it receives while the run's
// receiving lives, handing each delivery to a goroutine that holds one of
// the shared slots and settles it (handle).
func (l *lane) receive(r *run) {
	ctx := r.recvCtx
	// The bulk lane takes at most the gate's bulk share of the slots, as of
	// the rate: the rest are kept for the chatbot's lane.
	limit := cap(r.slots)
	if l.bulk && r.lanes > 1 {
		limit = max(1, int(float64(cap(r.slots))*l.gate.BulkShare()))
	}
	held := newCounter()
	backoff := receiveBackoff
	for ctx.Err() == nil {
		// A pause (a cooldown, a refusal, an open outage breaker): what is
		// received now would only wait, or cycle towards the dead-letter
		// queue. Keep it in the queue, except the breaker's one probe.
		wait, _, probe := l.gate.Hold()
		if wait > 0 {
			if !ctxsleep.For(ctx, min(wait, time.Second)) {
				break
			}
			continue
		}
		want := queue.MaxBatch
		if probe != nil {
			want = 1
		}
		n := acquire(ctx, r.slots, held, limit, want)
		if n == 0 {
			if probe != nil {
				probe.End()
			}
			break
		}
		l.metrics.ReceiveCalls.WithLabelValues(l.name).Inc()
		msgs, err := l.q.Receive(ctx, n, l.opts.WaitTime)
		for range n - len(msgs) {
			<-r.slots
			held.add(-1)
		}
		if err != nil || len(msgs) == 0 {
			if probe != nil {
				probe.End() // no message to probe with
			}
		}
		if err != nil {
			if ctx.Err() != nil {
				break
			}
			l.metrics.ReceiveErrors.WithLabelValues(l.name).Inc()
			l.receiving.Store(false)
			l.log.Error("receive failed; retrying", "err", err, "retry_in", backoff)
			if !ctxsleep.For(ctx, backoff) {
				break
			}
			backoff = min(2*backoff, maxReceiveBackoff)
			continue
		}
		backoff = receiveBackoff
		l.receiving.Store(true)
		if len(msgs) == 0 {
			l.metrics.EmptyReceives.WithLabelValues(l.name).Inc()
		}
		l.metrics.Received.WithLabelValues(l.name).Add(float64(len(msgs)))
		r.idle.add(len(msgs))
		for _, d := range msgs {
			r.work.Go(func() {
				defer func() { <-r.slots; held.add(-1); r.idle.add(-1) }()
				wctx := r.workCtx
				if probe != nil {
					defer probe.End()
					wctx = probe.Context(wctx)
				}
				l.handle(wctx, d)
			})
		}
		if l.opts.StopWhenIdle && r.idle.observe(l.name, len(msgs)) {
			l.log.Info("queues are empty and nothing is in flight: stopping")
			r.stopReceiving()
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

// idleTracker notices, for StopWhenIdle, when every lane's last receive came
// back empty while nothing was in flight.
type idleTracker struct {
	mu       sync.Mutex
	lanes    int
	empty    map[string]bool
	inFlight int
}

func (t *idleTracker) add(n int) {
	t.mu.Lock()
	t.inFlight += n
	t.mu.Unlock()
}

// observe records a receive of n messages on lane and reports whether the
// worker is idle.
func (t *idleTracker) observe(lane string, n int) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.empty == nil {
		t.empty = map[string]bool{}
	}
	t.empty[lane] = n == 0
	if t.inFlight > 0 || len(t.empty) < t.lanes {
		return false
	}
	for _, e := range t.empty {
		if !e {
			return false
		}
	}
	return true
}
