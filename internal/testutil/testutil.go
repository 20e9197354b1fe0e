// Package testutil holds the helpers the tests of several packages share: a
// clock moved by hand, a poll with a deadline and a buffer safe for
// concurrent writes. It imports nothing of the project, so that any
// package's internal tests can use it. Clients of the local AWS emulators
// live in internal/testenv, beside the emulators; the Spotify stand-in and
// its client in internal/fakespotify/fakespotifytest.
package testutil

import (
	"bytes"
	"sync"
	"testing"
	"time"
)

// Clock is a clock that moves only when told: pass its Now where code takes
// a func() time.Time. It is safe for concurrent use.
type Clock struct {
	mu  sync.Mutex
	now time.Time
}

// NewClock returns a Clock that reads start until moved.
func NewClock(start time.Time) *Clock { return &Clock{now: start} }

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Advance moves the clock on by d.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// Set puts the clock at t.
func (c *Clock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = t
}

// Eventually polls cond every 20ms until it holds, failing tb with "after
// <within>, still not: <what>" once within has passed.
func Eventually(tb testing.TB, within time.Duration, what string, cond func() bool) {
	tb.Helper()
	for deadline := time.Now().Add(within); !cond(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			tb.Fatalf("after %s, still not: %s", within, what)
		}
	}
}

// Buffer is a bytes.Buffer safe for the writes of several goroutines (a
// process's output, a logger's) while the test reads it.
type Buffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// String returns what was written so far.
func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
