package workercmd

import (
	"log/slog"
	"time"

	"github.com/sixpotify/top-tracks/internal/metrics"
)

// attrs are the log attributes of a worker's totals.
func attrs(t metrics.Totals) []any {
	return []any{"artists_done", t.Done, "artists_skipped", t.Skipped, "artists_not_found", t.NotFound,
		"messages_failed", t.Failed, "spotify_429s", t.Throttled, "spotify_rate", t.Rate}
}

// logProgress logs the totals read at each tick after which they changed,
// until the returned func is called.
func logProgress(read func() metrics.Totals, log *slog.Logger, tick <-chan time.Time) (stop func()) {
	done := make(chan struct{})
	finished := make(chan struct{})
	last := read()
	go func() {
		defer close(finished)
		for {
			select {
			case <-done:
				return
			case <-tick:
				t := read()
				if t.Done != last.Done || t.Skipped != last.Skipped || t.NotFound != last.NotFound ||
					t.Failed != last.Failed || t.Throttled != last.Throttled {
					log.Info("worker progress", attrs(t)...)
				}
				last = t
			}
		}
	}()
	return func() {
		close(done)
		<-finished
	}
}
