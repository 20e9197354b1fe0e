package workercmd

import (
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sixpotify/top-tracks/internal/metrics"
)

// counts are the worker's totals, read from its metrics.
type counts struct {
	done, skipped, notFound, failed, throttled float64
	rate                                       float64
}

func (c counts) attrs() []any {
	return []any{"artists_done", c.done, "artists_skipped", c.skipped, "artists_not_found", c.notFound,
		"messages_failed", c.failed, "spotify_429s", c.throttled, "spotify_rate", c.rate}
}

// readCounts sums the worker's metrics over lanes.
func readCounts(g prometheus.Gatherer) counts {
	var c counts
	mfs, _ := g.Gather()
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			switch mf.GetName() {
			case "sixpotify_messages_processed_total":
				v := m.GetCounter().GetValue()
				switch labels["outcome"] {
				case metrics.OutcomeOK:
					c.done += v
				case metrics.OutcomeFresh, metrics.OutcomeStale:
					c.skipped += v
				case metrics.OutcomeNotFound:
					c.notFound += v
				case metrics.OutcomePoison, metrics.OutcomeReleased:
					c.failed += v
				}
			case "sixpotify_spotify_requests_total":
				if labels["code"] == "429" {
					c.throttled += m.GetCounter().GetValue()
				}
			case "sixpotify_spotify_rate_limit_requests_per_second":
				c.rate = m.GetGauge().GetValue()
			}
		}
	}
	return c
}

// logProgress logs the counts at each tick after which they changed,
// until the returned func is called.
func logProgress(g prometheus.Gatherer, log *slog.Logger, tick <-chan time.Time) (stop func()) {
	done := make(chan struct{})
	finished := make(chan struct{})
	last := readCounts(g)
	go func() {
		defer close(finished)
		for {
			select {
			case <-done:
				return
			case <-tick:
				c := readCounts(g)
				if c.done != last.done || c.skipped != last.skipped || c.notFound != last.notFound ||
					c.failed != last.failed || c.throttled != last.throttled {
					log.Info("worker progress", c.attrs()...)
				}
				last = c
			}
		}
	}()
	return func() {
		close(done)
		<-finished
	}
}
