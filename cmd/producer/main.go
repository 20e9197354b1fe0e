// Command producer enqueues artists for the worker. See `producer --help`
// and the README.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/sixpotify/top-tracks/internal/producercmd"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	code := producercmd.Run(ctx, os.Args[1:], os.LookupEnv, os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
