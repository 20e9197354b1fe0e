// Package producercmd is the producer command: enqueue, reprocess, export,
// and the operator's status and dlq.
package producercmd

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"time"

	"github.com/alecthomas/kong"

	"github.com/sixpotify/top-tracks/internal/backend"
	"github.com/sixpotify/top-tracks/internal/backend/queues"
	"github.com/sixpotify/top-tracks/internal/cli"
	"github.com/sixpotify/top-tracks/internal/exportcmd"
	"github.com/sixpotify/top-tracks/internal/store"
	"github.com/sixpotify/top-tracks/internal/telemetry"
)

const description = `Enqueues Spotify artists for the worker. Every flag with a variable beside it
can be given as that environment variable; a flag overrides its variable.`

// grammar is the producer's command line.
type grammar struct {
	Version      kong.VersionFlag `help:"Print the version and exit."`
	QueueURL     string           `name:"queue-url" envvar:"QUEUE_URL" default:"${embedded_url}" help:"The chatbot's lane: an SQS queue URL, or sqlite:PATH[?queue=NAME]."`
	BulkQueueURL string           `name:"bulk-queue-url" envvar:"BULK_QUEUE_URL" help:"The bulk lane, same forms as QUEUE_URL (empty: one lane)."`

	Enqueue   enqueueCmd    `cmd:"" help:"Enqueue artists named on the command line or in files (-f)."`
	Reprocess reprocessCmd  `cmd:"" help:"Enqueue, on the bulk lane, every artist the store holds, or those fetched longer ago than --stale-after."`
	Export    exportcmd.Cmd `cmd:"" help:"Write a snapshot of the store as Parquet to the data lake: PREFIX/top_tracks/dt=DATE/ and PREFIX/artists/dt=DATE/."`
	Status    statusCmd     `cmd:"" help:"For each lane and its dead-letter queue, messages visible, in flight and delayed; the store's artists by status; with --watch, the drain rate and an estimated time to empty."`
	DLQ       dlqCmd        `cmd:"" name:"dlq" help:"Look into a lane's dead-letter queue (list) and send its messages back (redrive)."`
	Help      cli.Help      `cmd:"" help:"Show help for a command."`
}

// defaults are the values the flags' default tags name.
var defaults = map[string]string{
	"embedded_url":  backend.EmbeddedURL,
	"artists_table": backend.DefaultArtistsTable,
	"fresh_for":     cli.Duration(store.DefaultFreshFor),
}

// Run is the producer command. lookup reads the environment (os.LookupEnv).
// It returns the process's exit code: 0, 1 when an artist was not enqueued
// or the run failed, 2 for a usage or configuration error.
func Run(ctx context.Context, args []string, lookup cli.Lookup, stdin io.Reader, stdout, stderr io.Writer) int {
	var g grammar
	p, err := cli.Parse("producer", description, &g, defaults, args, lookup, nil, stdout, stderr)
	if errors.Is(err, cli.ErrHelp) {
		return 0
	}
	if err == nil {
		if err = p.Err(); err != nil {
			err = cli.Usage(err)
		}
	}
	if err == nil {
		var stopTracing func(*slog.Logger)
		if stopTracing, err = telemetry.Start(ctx, "sixpotify-producer"); err != nil {
			err = cli.Usage(err)
		} else {
			defer stopTracing(nil)
		}
	}
	if err == nil {
		switch p.Ctx.Selected().Name {
		case "enqueue":
			err = g.Enqueue.execute(ctx, &g, p, stdin, stdout, stderr)
		case "reprocess":
			err = g.Reprocess.run(ctx, &g, stdout, stderr)
		case "export":
			err = g.Export.Execute(ctx, time.Now(), stdout, stderr)
		case "status":
			err = g.Status.run(ctx, &g, stdout)
		case "list":
			err = g.DLQ.List.run(ctx, &g, stdout)
		case "redrive":
			err = g.DLQ.Redrive.run(ctx, &g, stdout, stderr)
		}
	} else if !cli.IsUsage(err) {
		err = cli.Usage(err)
	}
	if err == nil {
		return 0
	}
	return cli.Fail(stderr, "producer", err)
}

// lane returns the queue URL to send to, and the variable naming it.
func (g *grammar) lane(bulk, fallback bool) (string, error) {
	u, env := g.QueueURL, "QUEUE_URL"
	if bulk && g.BulkQueueURL != "" {
		u, env = g.BulkQueueURL, "BULK_QUEUE_URL"
	} else if bulk && !fallback {
		return "", cli.VarErrorf("BULK_QUEUE_URL", "is required by --bulk: set it to the bulk lane's queue URL")
	}
	if u == "" {
		return "", cli.VarErrorf(env, "is empty")
	}
	if err := queues.ValidateURL(u); err != nil {
		return "", cli.VarErrorf(env, "%v", err)
	}
	return u, nil
}
