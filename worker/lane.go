package worker

import (
	"context"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/sixpotify/top-tracks/internal/ctxsleep"
	"github.com/sixpotify/top-tracks/internal/gate"
	"github.com/sixpotify/top-tracks/internal/metrics"
	"github.com/sixpotify/top-tracks/internal/queue"
)

// lane is one queue the worker drains: what it knows of the queue, and what
// its receiving and its settling share (the batching deleter, the stop's
// deadline).
type lane struct {
	name string
	// bulk is true for the bulk lane: it yields to the chatbot's lane at the
	// gate and takes at most the gate's BulkShare of the slots.
	bulk bool
	q    Queue
	log  *slog.Logger

	opts      *Options // the worker's, read-only
	metrics   *metrics.Metrics
	gate      *gate.Gate
	fetch     *fetching
	receiving *atomic.Bool // the worker's: false while a receive fails

	visibility time.Duration // the queue's visibility timeout
	// redriveCount is the redrive policy's maxReceiveCount, or 0 when the
	// queue has no dead-letter queue (then Options.MaxReceives bounds the
	// deliveries of a failing message).
	redriveCount int

	deletes chan deleteReq
	done    chan struct{}
	// stopBy (Unix ns, 0 until a stop begins) bounds the last deletes.
	stopBy atomic.Int64
}

func (w *Worker) newLane(name string, bulk bool, q Queue, fetch *fetching) *lane {
	return &lane{
		name: name, bulk: bulk, q: q,
		log:  w.log.With("lane", name),
		opts: &w.opts, metrics: w.metrics, gate: w.gate, fetch: fetch, receiving: &w.receiving,
		visibility: 30 * time.Second,
		deletes:    make(chan deleteReq, 4*queue.MaxBatch),
		done:       make(chan struct{}),
	}
}

// priority is the lane's place at the gate.
func (l *lane) priority() gate.Priority {
	if l.bulk {
		return gate.Bulk
	}
	return gate.Chatbot
}

// Backoffs of the calls that learn a queue's attributes.
const (
	attributesBackoff    = 500 * time.Millisecond
	maxAttributesBackoff = 30 * time.Second
)

// attributes reads the queue's visibility timeout and redrive policy when the
// queue can tell them, retrying until it answers or ctx ends: without them the
// worker cannot know whether a poison message would reach a dead-letter queue.
func (l *lane) attributes(ctx context.Context) {
	a, ok := l.q.(queue.Attributer)
	if !ok {
		return
	}
	backoff := attributesBackoff
	for {
		attrs, err := a.Attributes(ctx)
		if err == nil {
			if attrs.VisibilityTimeout > 0 {
				l.visibility = attrs.VisibilityTimeout
			}
			l.redriveCount = attrs.MaxReceiveCount
			l.log.Info("queue attributes", "visibility_timeout", l.visibility, "max_receive_count", l.redriveCount)
			return
		}
		l.log.Error("cannot read the queue's attributes; retrying", "err", err, "retry_in", backoff)
		if !ctxsleep.For(ctx, backoff) {
			return
		}
		backoff = min(2*backoff, maxAttributesBackoff)
	}
}
