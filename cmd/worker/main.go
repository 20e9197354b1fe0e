// Command worker drains the artist queue into the top-tracks store. See
// `worker --help` and the README.
package main

import (
	"context"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"

	"github.com/sixpotify/top-tracks/internal/workercmd"
)

func main() {
	// A soft memory limit keeps the garbage collector's headroom from
	// growing the heap past what the work needs (the live heap is about
	// 80 KB per artist in flight). GOMEMLIMIT overrides it.
	if _, set := os.LookupEnv("GOMEMLIMIT"); !set {
		debug.SetMemoryLimit(32 << 20)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	code := workercmd.Run(ctx, os.Args[1:], os.LookupEnv, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
