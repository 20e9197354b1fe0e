// Command demo is `make run`: it enqueues a sample of artists into the
// embedded queue and drains it with the worker, with a progress display and a
// summary. Without Spotify credentials it uses the project's Spotify stand-in.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/sixpotify/top-tracks/internal/demo"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	err := demo.Run(ctx, os.Getenv, os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
}
