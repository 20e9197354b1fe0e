package workercmd

import (
	"bytes"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// The progress line is logged after a tick only when a count moved.
func TestLogProgressOnlyWhenSomethingHappened(t *testing.T) {
	reg := prometheus.NewRegistry()
	processed := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sixpotify_messages_processed_total"}, []string{"lane", "outcome"})
	requests := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sixpotify_spotify_requests_total"}, []string{"code"})
	reg.MustRegister(processed, requests)
	var buf syncBuffer
	log := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
		if a.Key == slog.TimeKey {
			return slog.Attr{}
		}
		return a
	}}))
	tick := make(chan time.Time) // unbuffered: a send returns once the loop has it
	stop := logProgress(reg, log, tick)

	tick <- time.Time{} // nothing happened
	processed.WithLabelValues("chatbot", "ok").Add(3)
	processed.WithLabelValues("bulk", "skipped_fresh").Inc()
	requests.WithLabelValues("429").Add(2)
	tick <- time.Time{}
	tick <- time.Time{} // nothing more happened
	stop()

	want := "level=INFO msg=\"worker progress\" artists_done=3 artists_skipped=1 artists_not_found=0 messages_failed=0 spotify_429s=2 spotify_rate=0\n"
	if got := buf.String(); got != want {
		t.Errorf("log:\ngot  %q\nwant %q", got, want)
	}
	if strings.Count(buf.String(), "\n") != 1 {
		t.Errorf("want one line")
	}
}
