// Package ctxsleep waits under a context: the one sleep the worker, the
// producer's waits and the benchmarks share.
package ctxsleep

import (
	"context"
	"time"
)

// For waits d or until ctx ends; it reports whether the full d passed.
func For(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
