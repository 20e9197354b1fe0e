// Package producercmd is the producer command: enqueue, reprocess, export,
// and the operator's status and dlq.
package producercmd

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"iter"
	"log/slog"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/alecthomas/kong"

	"github.com/sixpotify/top-tracks/internal/backend"
	"github.com/sixpotify/top-tracks/internal/backend/queues"
	"github.com/sixpotify/top-tracks/internal/cli"
	"github.com/sixpotify/top-tracks/internal/exportcmd"
	"github.com/sixpotify/top-tracks/internal/market"
	"github.com/sixpotify/top-tracks/internal/progress"
	"github.com/sixpotify/top-tracks/internal/store"
	"github.com/sixpotify/top-tracks/internal/telemetry"
	"github.com/sixpotify/top-tracks/producer"
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

type enqueueCmd struct {
	Artists []string `arg:"" optional:"" name:"artist" help:"A bare ID, spotify:artist:ID or https://open.spotify.com/artist/ID[?…]."`
	File    []string `short:"f" name:"file" placeholder:"FILE" help:"Read artists from FILE, one per line (- for standard input); may be repeated."`
	Force   bool     `help:"Set \"force\": true: fetch even if the artist is fresh."`
	Bulk    bool     `help:"Send to the bulk lane (BULK_QUEUE_URL, which must be set)."`
	Market  string   `placeholder:"CC" help:"Market (ISO 3166-1 alpha-2) for these artists (default: the worker's SPOTIFY_MARKET)."`
	waitFlags
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
			if g.Enqueue.Wait {
				err = g.Enqueue.runWait(ctx, &g, p, stdin, stdout, stderr)
			} else if err = g.Enqueue.checkNoWait(p); err == nil {
				err = g.Enqueue.run(ctx, &g, stdin, stdout, stderr)
			}
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
	for _, line := range strings.Split(err.Error(), "\n") {
		fmt.Fprintln(stderr, "producer: "+line)
	}
	if cli.IsUsage(err) {
		return cli.ExitUsage
	}
	return 1
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

// source names where an input came from, for a reject: the positions
// from start on are its lines (or arguments).
type source struct {
	start int // 1-based position of its first input
	name  string
}

// where names the input at position pos.
func where(sources []source, pos int) string {
	for i := len(sources) - 1; i >= 0; i-- {
		if s := sources[i]; pos >= s.start {
			if s.name == "" {
				return fmt.Sprintf("argument %d", pos-s.start+1)
			}
			return fmt.Sprintf("%s line %d", s.name, pos-s.start+1)
		}
	}
	return fmt.Sprintf("input %d", pos)
}

func (c *enqueueCmd) run(ctx context.Context, g *grammar, stdin io.Reader, stdout, stderr io.Writer) error {
	u, err := g.lane(c.Bulk, false)
	if err != nil {
		return err
	}
	mkt, files, closeFiles, err := c.inputs(stdin)
	if err != nil {
		return err
	}
	defer closeFiles()

	var sent atomic.Int64
	p, err := producer.Open(ctx, u, producer.Options{Market: mkt, Force: c.Force,
		OnSent: func(msgs []producer.Message) { sent.Add(int64(len(msgs))) }})
	if err != nil {
		return err
	}
	defer p.Close()
	start := time.Now()
	var prog *progress.Display
	if len(files) > 0 { // a file may be long: show how far it has come
		prog = progress.Start(stderr, "artists enqueued", 0, func() int { return int(sent.Load()) })
	}
	// One sequence, so that an artist named both as an argument and in a
	// file is a duplicate like any other.
	var readErr error
	sources := []source{{start: 1}}
	sum, err := p.EnqueueSeq(ctx, artists(c.Artists, files, &sources, &readErr))
	if prog != nil {
		prog.Stop()
	}
	if err == nil && readErr != nil {
		err = fmt.Errorf("-f: read artists: %w", readErr)
	}
	report(stdout, sum, u, time.Since(start))
	if err != nil {
		return err
	}
	return summaryErr(sum, sources)
}

// inputs checks the market and opens the files to read artists from; the
// returned func closes them.
func (c *enqueueCmd) inputs(stdin io.Reader) (mkt string, files []namedReader, closeFiles func(), err error) {
	mkt = strings.ToUpper(c.Market)
	if mkt != "" && !market.Valid(mkt) {
		return "", nil, nil, cli.Usage(fmt.Errorf("--market: %q is not an ISO 3166-1 alpha-2 code such as US", c.Market))
	}
	if len(c.File) == 0 && len(c.Artists) == 0 {
		return "", nil, nil, cli.Usage(errors.New("no artists: name them as arguments or give -f FILE (see 'producer enqueue --help')"))
	}
	var opened []*os.File
	closeFiles = func() {
		for _, f := range opened {
			f.Close()
		}
	}
	for _, name := range c.File {
		if name == "-" {
			files = append(files, namedReader{"stdin", stdin})
			continue
		}
		f, err := os.Open(name)
		if err != nil {
			closeFiles()
			return "", nil, nil, cli.Usage(fmt.Errorf("-f: %w", err))
		}
		opened = append(opened, f)
		files = append(files, namedReader{name, f})
	}
	return mkt, files, closeFiles, nil
}

type namedReader struct {
	name string
	r    io.Reader
}

// summaryErr names each artist rejected (by file and line) or failed.
func summaryErr(sum producer.Summary, sources []source) error {
	var errs []error
	for _, r := range sum.Rejected {
		in := r.Input
		if len(in) > 60 {
			in = in[:60] + "…"
		}
		errs = append(errs, fmt.Errorf("rejected %q (%s): %w", in, where(sources, r.Line), r.Err))
	}
	for _, f := range sum.Failed {
		errs = append(errs, fmt.Errorf("failed %s: %w", f.ArtistID, f.Err))
	}
	return errors.Join(errs...)
}

// artists yields refs, then the lines of each file as producer.EnqueueFrom
// reads them: a blank line or a # comment keeps its position but names no
// artist. Where each file starts is appended to *sources; a read error is
// left in *readErr.
func artists(refs []string, files []namedReader, sources *[]source, readErr *error) iter.Seq[string] {
	return func(yield func(string) bool) {
		pos := 0
		for _, r := range refs {
			pos++
			if !yield(r) {
				return
			}
		}
		for _, f := range files {
			*sources = append(*sources, source{start: pos + 1, name: f.name})
			sc := bufio.NewScanner(f.r)
			sc.Buffer(make([]byte, 64<<10), 1<<20)
			for sc.Scan() {
				line := strings.TrimSpace(sc.Text())
				if strings.HasPrefix(line, "#") {
					line = ""
				}
				pos++
				if !yield(line) {
					return
				}
			}
			if err := sc.Err(); err != nil {
				*readErr = fmt.Errorf("%s: %w", f.name, err)
				return
			}
		}
	}
}

func report(w io.Writer, sum producer.Summary, queueURL string, elapsed time.Duration) {
	rate := 0.0
	if s := elapsed.Seconds(); s > 0 {
		rate = float64(sum.Enqueued) / s
	}
	fmt.Fprintf(w, "enqueued %d artists on %s in %s (%.0f/s); %d duplicates dropped, %d rejected, %d failed\n",
		sum.Enqueued, queueURL, elapsed.Round(time.Millisecond), rate, sum.Duplicates, len(sum.Rejected), len(sum.Failed))
}
