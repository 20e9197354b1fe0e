package logging

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// Limit wraps h so that warnings and errors with the same message pass at
// most burst times per interval; the rest are dropped and counted, and the
// first such record of the next interval carries "suppressed" = how many were
// dropped. Messages are constant strings (details go in attributes), so the
// table stays small. Info and debug records always pass.
func Limit(h slog.Handler, burst int, interval time.Duration) slog.Handler {
	return &limitHandler{next: h, st: &limitState{burst: burst, interval: interval, now: time.Now, seen: map[string]*window{}}}
}

type limitHandler struct {
	next slog.Handler
	st   *limitState // shared by the handlers WithAttrs and WithGroup derive
}

type limitState struct {
	burst    int
	interval time.Duration
	now      func() time.Time
	mu       sync.Mutex
	seen     map[string]*window
}

type window struct {
	start      time.Time
	n          int
	suppressed int
}

func (h *limitHandler) Enabled(ctx context.Context, l slog.Level) bool { return h.next.Enabled(ctx, l) }

func (h *limitHandler) Handle(ctx context.Context, r slog.Record) error {
	if r.Level < slog.LevelWarn {
		return h.next.Handle(ctx, r)
	}
	st := h.st
	st.mu.Lock()
	key := r.Level.String() + "\x00" + r.Message
	w := st.seen[key]
	now := st.now()
	carried := 0
	if w == nil || now.Sub(w.start) >= st.interval {
		if w != nil {
			carried = w.suppressed
		}
		w = &window{start: now}
		st.seen[key] = w
	}
	w.n++
	if w.n > st.burst {
		w.suppressed++
		st.mu.Unlock()
		return nil
	}
	st.mu.Unlock()
	if carried > 0 {
		r = r.Clone()
		r.AddAttrs(slog.Int("suppressed", carried))
	}
	return h.next.Handle(ctx, r)
}

func (h *limitHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return &limitHandler{next: h.next.WithAttrs(as), st: h.st}
}

func (h *limitHandler) WithGroup(name string) slog.Handler {
	return &limitHandler{next: h.next.WithGroup(name), st: h.st}
}
