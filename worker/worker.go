package worker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sixpotify/top-tracks/internal/gate"
	"github.com/sixpotify/top-tracks/internal/metrics"
	"github.com/sixpotify/top-tracks/internal/queue"
	"github.com/sixpotify/top-tracks/internal/spotify"
	"github.com/sixpotify/top-tracks/internal/store"
)

// Aliases of the types the interfaces below speak, so that code outside this
// module can implement them.
type (
	Delivery   = queue.Delivery
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

// Worker drains its lanes. Create one with New; Run it once.
type Worker struct {
	opts    Options
	log     *slog.Logger
	metrics *metrics.Metrics
	gate    *gate.Gate
	lanes   []*lane
	pauses  store.PauseKeeper // the store's, when it keeps the fleet's pause

	ran       atomic.Bool
	receiving atomic.Bool // true while every lane can receive
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
	w := &Worker{opts: opts, log: opts.Logger, gate: opts.Gate, metrics: opts.Metrics}
	w.pauses, _ = s.(store.PauseKeeper)
	w.gate.OnEvent(w.gateEvent)
	fetch := &fetching{opts: &w.opts, store: s, fetcher: f, gate: w.gate, metrics: w.metrics}
	w.lanes = append(w.lanes, w.newLane(LaneChatbot, false, q, fetch))
	if bulk != nil {
		w.lanes = append(w.lanes, w.newLane(LaneBulk, true, bulk, fetch))
	}
	return w, nil
}

// Metrics returns the worker's metrics (Options.Metrics, or those New created).
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
		w.sharePause(e)
		if e.Shared {
			w.log.Warn("Spotify paused the fleet: pausing every Spotify call, as another process recorded", "pause", e.Pause,
				"reason", e.Reason, "until", e.Until.UTC().Format(time.RFC3339))
			return
		}
		w.metrics.Cooldowns.Inc()
		w.log.Warn("Spotify rate limit: pausing every Spotify call", "pause", e.Pause, "retry_after", e.RetryAfter,
			"reason", e.Reason, "until", e.Until.UTC().Format(time.RFC3339), "rate", fmt.Sprintf("%.2f/s", e.Rate))
	case gate.EventRefused:
		refusal := metrics.RefusalCredentials
		if r := spotify.RefusalOf(e.Err); r != "" {
			refusal = string(r)
		}
		w.metrics.Refusals.WithLabelValues(refusal).Inc()
		w.log.Error("Spotify refuses this app's calls: receiving is paused", "refusal", refusal, "err", e.Err,
			"paused_until", e.Until.UTC().Format(time.RFC3339))
	case gate.EventBreakerOpened:
		w.metrics.BreakerOpened.WithLabelValues(string(e.Cause)).Inc()
		w.log.Error("outage breaker opened: receiving stops, held messages are postponed, one probe at a time tests for recovery",
			"cause", e.Cause, "err", e.Err)
	case gate.EventBreakerClosed:
		w.metrics.BreakerClosed.WithLabelValues(string(e.Cause)).Inc()
		w.log.Info("outage breaker closed: a probe succeeded, receiving resumes", "cause", e.Cause, "open_for", e.Lasted.Round(time.Millisecond),
			"artists_blamed", e.Blamed)
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
	r := newRun(recvCtx, workCtx, stopReceiving, w.opts.Concurrency, len(w.lanes))

	// A pause the fleet recorded holds this process before its first call.
	w.readPause(recvCtx)
	var watch sync.WaitGroup
	watch.Go(func() { w.watchPause(recvCtx) })
	defer watch.Wait()

	var loops sync.WaitGroup
	for _, l := range w.lanes {
		l.startDeleter()
		loops.Go(func() {
			// Each lane learns its queue's attributes on its own: a bulk
			// queue that cannot be read never holds up the chatbot's lane.
			l.attributes(recvCtx)
			l.receive(r)
		})
	}
	w.receiving.Store(true)
	w.log.Info("worker started", "lanes", len(w.lanes), "concurrency", w.opts.Concurrency)

	loops.Wait()
	w.receiving.Store(false)
	// Everything a stop does ends by this deadline: the drain, then the
	// give-backs (in parallel), then the last deletes.
	stopBy := time.Now().Add(w.opts.DrainTimeout + StopMargin)
	for _, l := range w.lanes {
		l.stopBy.Store(stopBy.UnixNano())
	}
	w.log.Info("worker stopping: receiving stopped, draining in-flight work", "drain_timeout", w.opts.DrainTimeout)

	drained := make(chan struct{})
	go func() { r.work.Wait(); close(drained) }()
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
