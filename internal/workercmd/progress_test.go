package workercmd

import (
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sixpotify/top-tracks/internal/metrics"
	"github.com/sixpotify/top-tracks/internal/testutil"
)

// The progress line is logged after a tick only when a count moved.
func TestLogProgressOnlyWhenSomethingHappened(t *testing.T) {
	m := metrics.New(prometheus.NewRegistry(), func() time.Duration { return 0 }, func() float64 { return 0 })
	var buf testutil.Buffer
	log := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
		if a.Key == slog.TimeKey {
			return slog.Attr{}
		}
		return a
	}}))
	tick := make(chan time.Time)
	// read tells when the totals were read: a tick's are read after the
	// tick is received, so a test that moves a count before the read has
	// ended races with it.
	readDone := make(chan struct{}, 1)
	read := func() metrics.Totals {
		t := m.Totals()
		readDone <- struct{}{}
		return t
	}
	stop := logProgress(read, log, tick)
	<-readDone // the totals at the start

	tick <- time.Time{} // nothing happened
	<-readDone
	m.Processed.WithLabelValues("chatbot", "ok").Add(3)
	m.Processed.WithLabelValues("bulk", "skipped_fresh").Inc()
	m.SpotifyRequests.WithLabelValues("429").Add(2)
	tick <- time.Time{}
	<-readDone
	tick <- time.Time{} // nothing more happened
	<-readDone
	stop()

	want := "level=INFO msg=\"worker progress\" artists_done=3 artists_skipped=1 artists_not_found=0 messages_failed=0 spotify_429s=2 spotify_rate=0\n"
	if got := buf.String(); got != want {
		t.Errorf("log:\ngot  %q\nwant %q", got, want)
	}
	if strings.Count(buf.String(), "\n") != 1 {
		t.Errorf("want one line")
	}
}
