package worker

import (
	"context"
	"time"

	"github.com/sixpotify/top-tracks/internal/gate"
	"github.com/sixpotify/top-tracks/internal/store"
)

// The fleet's Spotify pause: a penalty Spotify announces to one process (a
// 429 with QUOTA_EXCEEDED, or a Retry-After longer than the gate sleeps
// through) is recorded in the store, and every process reads it before its
// first call and then every PausePoll, so that no other task spends a call
// to learn it.
const (
	// PausePoll is how often a worker reads the fleet's pause.
	PausePoll = 15 * time.Second
	// pauseTimeout bounds one read or write of it.
	pauseTimeout = 5 * time.Second
)

// sharePause records a penalty this process was told of, for the fleet.
func (w *Worker) sharePause(e gate.Event) {
	if w.pauses == nil || e.Shared || e.Pause != gate.ReasonPenalty {
		return
	}
	reason := e.Reason
	if reason == "" {
		reason = "Retry-After " + e.RetryAfter.String()
	}
	p := store.SpotifyPause{Until: e.Until, Since: w.opts.Clock(), Reason: reason}
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), pauseTimeout)
		defer cancel()
		if err := w.pauses.SetSpotifyPause(ctx, p); err != nil {
			w.log.Warn("could not record Spotify's pause for the fleet", "err", err, "until", p.Until.UTC().Format(time.RFC3339))
		}
	}()
}

// readPause imposes the fleet's recorded pause on the gate, if one runs.
func (w *Worker) readPause(ctx context.Context) {
	if w.pauses == nil {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, pauseTimeout)
	defer cancel()
	p, ok, err := w.pauses.SpotifyPause(ctx)
	if err != nil {
		if ctx.Err() == nil {
			w.log.Warn("could not read the fleet's Spotify pause", "err", err)
		}
		return
	}
	if ok && p.Until.After(w.opts.Clock()) {
		w.gate.Impose(p.Until, p.Reason)
	}
}

// watchPause reads the fleet's pause every PausePoll until ctx ends.
func (w *Worker) watchPause(ctx context.Context) {
	every(ctx, PausePoll, func() { w.readPause(ctx) })
}
