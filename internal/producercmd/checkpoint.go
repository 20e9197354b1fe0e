package producercmd

import (
	"bufio"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/sixpotify/top-tracks/internal/artistid"
	"github.com/sixpotify/top-tracks/producer"
)

// checkpoint is the --resume file: one artist ID per line, appended as the
// queue accepts them. A nil *checkpoint does nothing.
type checkpoint struct {
	mu   sync.Mutex
	f    *os.File
	w    *bufio.Writer
	done map[string]struct{}
	last time.Time
	err  error
}

func openCheckpoint(path string) (*checkpoint, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	ck := &checkpoint{f: f, w: bufio.NewWriter(f), done: map[string]struct{}{}}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// A line cut short by a crash is not a valid ID and is ignored: that
		// artist is enqueued again, which the worker absorbs.
		if id := strings.TrimSpace(sc.Text()); artistid.Valid(id) {
			ck.done[id] = struct{}{}
		}
	}
	if err := sc.Err(); err != nil {
		f.Close()
		return nil, err
	}
	return ck, nil
}

func (c *checkpoint) len() int {
	if c == nil {
		return 0
	}
	return len(c.done)
}

// has is called from the scan's one goroutine while add runs elsewhere:
// done is only read after openCheckpoint, never written.
func (c *checkpoint) has(id string) bool {
	if c == nil {
		return false
	}
	_, ok := c.done[id]
	return ok
}

// add appends msgs, flushing at most every second (and at close): a crash
// loses at most the last second's lines, which are enqueued again on resume.
func (c *checkpoint) add(msgs []producer.Message) {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, m := range msgs {
		c.w.WriteString(m.ArtistID + "\n")
	}
	if now := time.Now(); now.Sub(c.last) >= time.Second {
		c.last = now
		if err := c.w.Flush(); err != nil && c.err == nil {
			c.err = err
		}
	}
}

func (c *checkpoint) close() error {
	if c == nil {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.f == nil {
		return c.err
	}
	if err := c.w.Flush(); err != nil && c.err == nil {
		c.err = err
	}
	if err := c.f.Close(); err != nil && c.err == nil {
		c.err = err
	}
	c.f = nil
	return c.err
}
