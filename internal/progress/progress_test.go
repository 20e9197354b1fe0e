package progress

import (
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sixpotify/top-tracks/internal/testutil"
)

func TestLine(t *testing.T) {
	now := time.Unix(0, 0)
	var n atomic.Int64
	d := &Display{what: "artists", total: 100, count: func() int { return int(n.Load()) }, now: func() time.Time { return now }}
	d.began = now
	now = now.Add(10 * time.Second)
	n.Store(25)
	if got, want := d.Line(), "[#######.......................] 25/100 artists  2.5/s  ETA 30s"; got != want {
		t.Errorf("Line() = %q, want %q", got, want)
	}
	d.total = 0
	if got, want := d.Line(), "25 artists  2.5/s"; got != want {
		t.Errorf("Line() without a total = %q, want %q", got, want)
	}
}

func TestPlainLinesOffATerminal(t *testing.T) {
	var buf testutil.Buffer
	var n atomic.Int64
	d := Start(&buf, "artists", 10, func() int { return int(n.Load()) })
	n.Store(10)
	d.Stop()
	d.Stop()
	if strings.Contains(buf.String(), "\r") {
		t.Errorf("a non-terminal got carriage returns: %q", buf.String())
	}
}

// The last draw on a terminal overwrites the redrawn line and ends it, so
// that what follows starts on a line of its own.
func TestLastDrawEndsItsLine(t *testing.T) {
	var buf testutil.Buffer
	now := time.Unix(0, 0)
	d := &Display{w: &buf, what: "artists", total: 4, count: func() int { return 4 }, tty: true,
		every: time.Hour, now: func() time.Time { return now }, done: make(chan struct{})}
	d.began = now
	d.wg.Add(1)
	go d.loop()
	d.Stop()
	if got, want := buf.String(), "\r[##############################] 4/4 artists  4000.0/s \n"; got != want {
		t.Errorf("last draw: got %q, want %q", got, want)
	}
}
