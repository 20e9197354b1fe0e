// Package progress shows how far a long command has come: a bar redrawn in
// place on a terminal, plain periodic lines anywhere else (logs, CI).
package progress

import (
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/sixpotify/top-tracks/internal/logging"
)

// Display reports a count, read through a function, until Stop.
type Display struct {
	w     io.Writer
	what  string     // the unit: "artists"
	total int        // 0: unknown
	count func() int // the count so far
	tty   bool       // redraw in place
	every time.Duration
	now   func() time.Time

	done  chan struct{}
	wg    sync.WaitGroup
	began time.Time
}

// Start begins reporting count() on w: every 150ms in place on a terminal,
// every 2s as a line elsewhere. total is the expected count, or 0 when unknown (then
// no bar and no ETA).
func Start(w io.Writer, what string, total int, count func() int) *Display {
	d := &Display{w: w, what: what, total: total, count: count, tty: logging.IsTerminal(w),
		every: 2 * time.Second, now: time.Now, done: make(chan struct{})}
	if d.tty {
		d.every = 150 * time.Millisecond
	}
	d.began = d.now()
	d.wg.Add(1)
	go d.loop()
	return d
}

func (d *Display) loop() {
	defer d.wg.Done()
	t := time.NewTicker(d.every)
	defer t.Stop()
	for {
		select {
		case <-d.done:
			if d.tty { // over the last redraw, and end its line
				fmt.Fprint(d.w, "\r"+d.Line()+" \n")
			}
			return
		case <-t.C:
			if d.tty {
				fmt.Fprint(d.w, "\r"+d.Line()+" ")
			} else {
				fmt.Fprintln(d.w, "progress: "+d.Line())
			}
		}
	}
}

// Stop ends the display (a last redraw on a terminal). It is safe to call twice.
func (d *Display) Stop() {
	select {
	case <-d.done:
		return
	default:
		close(d.done)
	}
	d.wg.Wait()
}

// Line is the current state in one line: bar (when the total is known),
// count, rate and ETA.
func (d *Display) Line() string {
	n := d.count()
	elapsed := d.now().Sub(d.began)
	rate := float64(n) / max(elapsed.Seconds(), 0.001)
	var b strings.Builder
	if d.total > 0 {
		const width = 30
		filled := min(width, max(0, n*width/d.total))
		fmt.Fprintf(&b, "[%s%s] %d/%d %s", strings.Repeat("#", filled), strings.Repeat(".", width-filled), n, d.total, d.what)
	} else {
		fmt.Fprintf(&b, "%d %s", n, d.what)
	}
	fmt.Fprintf(&b, "  %.1f/s", rate)
	if d.total > 0 && rate > 0 && n < d.total {
		eta := time.Duration(float64(d.total-n) / rate * float64(time.Second))
		fmt.Fprintf(&b, "  ETA %s", eta.Round(time.Second))
	}
	return b.String()
}
