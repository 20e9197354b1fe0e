package workercmd

import (
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/sixpotify/top-tracks/internal/testutil"
)

// gatherSignal tells when a Gather has read the counts: a tick's counts
// are read after the tick is received, so a test that moves a count before
// the read has ended races with it.
type gatherSignal struct {
	prometheus.Gatherer
	read chan struct{}
}

func (g gatherSignal) Gather() ([]*dto.MetricFamily, error) {
	mfs, err := g.Gatherer.Gather()
	g.read <- struct{}{}
	return mfs, err
}

// The progress line is logged after a tick only when a count moved.
func TestLogProgressOnlyWhenSomethingHappened(t *testing.T) {
	reg := prometheus.NewRegistry()
	processed := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sixpotify_messages_processed_total"}, []string{"lane", "outcome"})
	requests := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sixpotify_spotify_requests_total"}, []string{"code"})
	reg.MustRegister(processed, requests)
	var buf testutil.Buffer
	log := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
		if a.Key == slog.TimeKey {
			return slog.Attr{}
		}
		return a
	}}))
	tick := make(chan time.Time)
	g := gatherSignal{reg, make(chan struct{}, 1)}
	stop := logProgress(g, log, tick)
	<-g.read // the counts at the start

	tick <- time.Time{} // nothing happened
	<-g.read
	processed.WithLabelValues("chatbot", "ok").Add(3)
	processed.WithLabelValues("bulk", "skipped_fresh").Inc()
	requests.WithLabelValues("429").Add(2)
	tick <- time.Time{}
	<-g.read
	tick <- time.Time{} // nothing more happened
	<-g.read
	stop()

	want := "level=INFO msg=\"worker progress\" artists_done=3 artists_skipped=1 artists_not_found=0 messages_failed=0 spotify_429s=2 spotify_rate=0\n"
	if got := buf.String(); got != want {
		t.Errorf("log:\ngot  %q\nwant %q", got, want)
	}
	if strings.Count(buf.String(), "\n") != 1 {
		t.Errorf("want one line")
	}
}
