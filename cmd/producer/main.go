// Command producer enqueues artists for the worker. See `producer --help`
// and the README.
package main

import (
	"context"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"

	"github.com/sixpotify/top-tracks/internal/export"
	"github.com/sixpotify/top-tracks/internal/producercmd"
)

func main() {
	// A soft memory limit keeps the garbage collector's headroom from
	// growing the heap past what the work needs: export holds one row group
	// being encoded (about 60 MB live), enqueue and reprocess far less.
	// GOMEMLIMIT overrides it.
	if _, set := os.LookupEnv("GOMEMLIMIT"); !set {
		debug.SetMemoryLimit(export.MemoryLimit)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	code := producercmd.Run(ctx, os.Args[1:], os.LookupEnv, os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
