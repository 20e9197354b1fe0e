package worker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/singleflight"

	"github.com/sixpotify/top-tracks/internal/gate"
	"github.com/sixpotify/top-tracks/internal/metrics"
	"github.com/sixpotify/top-tracks/internal/queue"
	"github.com/sixpotify/top-tracks/internal/spotify"
	"github.com/sixpotify/top-tracks/internal/store"
)

// Aliases of the types the interfaces below speak, so that code outside this
// module can implement them.
type (
	Message    = queue.Message
	Attributes = queue.Attributes
	Result     = store.Result
	Artist     = store.Artist
	Track      = spotify.Track
)

// Queue is a lane the worker drains (the queue port's Consumer). A Queue
// that is also a queue.Attributer tells its visibility timeout and redrive
// policy; one that is also a queue.Sender postpones a message without
// spending one of its deliveries.
type Queue = queue.Consumer

// Store keeps the tracks and artists tables (the store port's Saver).
type Store = store.Saver

// Fetcher asks Spotify for an artist's top tracks. *spotify.Client is one.
type Fetcher interface {
	TopTracks(ctx context.Context, artistID, market string) ([]Track, error)
}

// timedFetcher is the optional capability of a Fetcher that tells when the
// answered request was sent (*spotify.Client has it). The worker stamps a
// result's fetched_at with it, so that a slow answer to an earlier request
// never counts as newer than the answer to a later one.
type timedFetcher interface {
	TopTracksAt(ctx context.Context, artistID, market string) ([]Track, time.Time, error)
}

// Lane names, used in logs and metrics.
const (
	LaneChatbot = "chatbot"
	LaneBulk    = "bulk"
)

// Options tune a Worker. The zero value of each field means its default.
type Options struct {
	// Concurrency is the most artists in flight at once (default 16).
	Concurrency int
	// Market is used when a message names none (default "US").
	Market string
	// FreshFor: an artist fetched less than this long ago is skipped unless
	// the message says force (default 1h; negative: never skip).
	FreshFor time.Duration
	// WaitTime is the long-poll wait of one receive (default 20s).
	WaitTime time.Duration
	// DrainTimeout bounds how long a stop waits for in-flight work before
	// cancelling it and giving the messages back (default 15s). The rest of
	// the stop ends within 7s more.
	DrainTimeout time.Duration
	// MaxReceives: on a queue with no dead-letter queue, a message that has
	// failed this many deliveries is deleted and logged (default 5).
	MaxReceives int
	// MaxRetries is how many times one delivery retries a transient Spotify
	// failure (default 4); throttled attempts are not counted.
	MaxRetries int
	// RetryBase and RetryCap shape the exponential backoff between retries
	// (defaults 250ms and 10s).
	RetryBase, RetryCap time.Duration
	// StopWhenIdle makes Run return by itself once a receive on every lane
	// came back empty with nothing in flight (for batch runs such as make run).
	StopWhenIdle bool
	// Logger receives the worker's logs (default: discard).
	Logger *slog.Logger
	// Registerer receives the worker's metrics (default: a private registry).
	Registerer prometheus.Registerer
	// Gate decides whether this process may call Spotify now; the Fetcher
	// must wait on the same one. The worker asks it before receiving, tells
	// it how store calls went (for its outage breaker), and gives back
	// without spending a delivery what a pause meets; the bulk lane takes at
	// most its BulkShare of the slots (default: an unlimited gate).
	Gate *gate.Gate
	// Clock returns the time (default time.Now).
	Clock func() time.Time
}

func (o *Options) setDefaults() {
	if o.Concurrency <= 0 {
		o.Concurrency = 16
	}
	if o.Market == "" {
		o.Market = "US"
	}
	if o.FreshFor == 0 {
		o.FreshFor = time.Hour
	}
	if o.WaitTime <= 0 {
		o.WaitTime = 20 * time.Second
	}
	if o.DrainTimeout <= 0 {
		o.DrainTimeout = 15 * time.Second
	}
	if o.MaxReceives <= 0 {
		o.MaxReceives = 5
	}
	if o.MaxRetries <= 0 {
		o.MaxRetries = 4
	}
	if o.RetryBase <= 0 {
		o.RetryBase = 250 * time.Millisecond
	}
	if o.RetryCap <= 0 {
		o.RetryCap = 10 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Registerer == nil {
		o.Registerer = prometheus.NewRegistry()
	}
	if o.Gate == nil {
		o.Gate = gate.New(gate.Options{})
	}
	if o.Clock == nil {
		o.Clock = time.Now
	}
}

// StopMargin is the most a stop takes past DrainTimeout: giving back the
// unfinished messages (3s, in parallel) and the last deletes, which end by
// this deadline. With the largest DrainTimeout the worker command accepts
// (15s) and its health server's shutdown, a stop ends within 25s.
const StopMargin = 7 * time.Second

// Worker drains its lanes. Create one with New or Open; Run it once.
type Worker struct {
	opts    Options
	log     *slog.Logger
	metrics *metrics.Metrics
	store   Store
	fetcher Fetcher
	gate    *gate.Gate
	lanes   []*lane

	flights singleflight.Group

	ran       atomic.Bool
	receiving atomic.Bool // true while every lane can receive
	// stopBy (Unix ns, 0 until a stop begins) bounds the last deletes.
	stopBy atomic.Int64
}

// New returns a Worker for the chatbot lane q, an optional bulk lane (nil for
// one lane), store s and Spotify fetcher f.
func New(q, bulk Queue, s Store, f Fetcher, opts Options) (*Worker, error) {
	var errs []error
	if q == nil {
		errs = append(errs, errors.New("worker: the queue is required"))
	}
	if s == nil {
		errs = append(errs, errors.New("worker: the store is required"))
	}
	if f == nil {
		errs = append(errs, errors.New("worker: the Spotify fetcher is required"))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	opts.setDefaults()
	w := &Worker{
		opts:    opts,
		log:     opts.Logger,
		store:   s,
		fetcher: f,
		gate:    opts.Gate,
	}
	w.metrics = metrics.New(opts.Registerer, w.gate.CooldownLeft, w.gate.Rate)
	w.gate.OnEvent(w.gateEvent)
	w.lanes = append(w.lanes, w.newLane(LaneChatbot, gate.Chatbot, q))
	if bulk != nil {
		w.lanes = append(w.lanes, w.newLane(LaneBulk, gate.Bulk, bulk))
	}
	return w, nil
}

// Metrics returns the worker's metrics, for hooks such as spotify.Config's.
func (w *Worker) Metrics() *metrics.Metrics { return w.metrics }

// Ready returns nil while the worker can take work, or why it cannot.
func (w *Worker) Ready() error {
	if err := w.gate.Ready(); err != nil {
		return err
	}
	if !w.receiving.Load() {
		return errors.New("not receiving")
	}
	return nil
}

// gateEvent logs and counts, once each, the gate's pauses and the outage
// breaker's openings and closings.
func (w *Worker) gateEvent(e gate.Event) {
	switch e.Kind {
	case gate.EventCooldown:
		w.metrics.Cooldowns.Inc()
		w.log.Warn("Spotify rate limit: pausing every Spotify call", "retry_after", e.RetryAfter,
			"reason", e.Reason, "until", e.Until.UTC().Format(time.RFC3339), "rate", fmt.Sprintf("%.2f/s", e.Rate))
	case gate.EventRefused:
		w.log.Error("Spotify refuses this app's calls: receiving is paused", "err", e.Err, "paused_until", e.Until.UTC().Format(time.RFC3339))
	case gate.EventBreakerOpened:
		w.metrics.BreakerOpened.WithLabelValues(string(e.Cause)).Inc()
		w.log.Error("outage breaker opened: receiving stops, held messages are postponed, one probe at a time tests for recovery",
			"cause", e.Cause, "err", e.Err)
	case gate.EventBreakerClosed:
		w.metrics.BreakerClosed.WithLabelValues(string(e.Cause)).Inc()
		w.log.Info("outage breaker closed: a probe succeeded, receiving resumes", "cause", e.Cause, "open_for", e.Lasted.Round(time.Millisecond))
	}
}

// Run drains the lanes until ctx ends (or, with StopWhenIdle, until they are
// empty), then stops gracefully: no new receives, in-flight work finishes
// within DrainTimeout, and what does not is cancelled and given back to the
// queue. It returns nil after a graceful stop.
func (w *Worker) Run(ctx context.Context) error {
	if w.ran.Swap(true) {
		return errors.New("worker: Run called twice")
	}
	// Work runs on a context of its own: a stop ends receiving at once but
	// gives in-flight artists DrainTimeout to finish.
	workCtx, cancelWork := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelWork()
	recvCtx, stopReceiving := context.WithCancel(ctx)
	defer stopReceiving()

	slots := make(chan struct{}, w.opts.Concurrency)
	var work sync.WaitGroup
	var idle idleTracker
	idle.lanes = len(w.lanes)

	var loops sync.WaitGroup
	for _, l := range w.lanes {
		l.startDeleter()
		loops.Add(1)
		go func() {
			defer loops.Done()
			// Each lane learns its queue's attributes on its own: a bulk
			// queue that cannot be read never holds up the chatbot's lane.
			l.attributes(recvCtx)
			l.receiveLoop(recvCtx, workCtx, slots, &work, &idle, stopReceiving)
		}()
	}
	w.receiving.Store(true)
	w.log.Info("worker started", "lanes", len(w.lanes), "concurrency", w.opts.Concurrency)

	loops.Wait()
	w.receiving.Store(false)
	// Everything a stop does ends by this deadline: the drain, then the
	// give-backs (3s each, in parallel), then the last deletes.
	w.stopBy.Store(time.Now().Add(w.opts.DrainTimeout + StopMargin).UnixNano())
	w.log.Info("worker stopping: receiving stopped, draining in-flight work", "drain_timeout", w.opts.DrainTimeout)

	drained := make(chan struct{})
	go func() { work.Wait(); close(drained) }()
	select {
	case <-drained:
	case <-time.After(w.opts.DrainTimeout):
		w.log.Warn("drain timeout: cancelling in-flight work; its messages are given back to the queue")
		cancelWork()
		<-drained
	}
	for _, l := range w.lanes {
		l.stopDeleter()
	}
	w.log.Info("worker stopped")
	return nil
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
