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
	"math"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/alecthomas/kong"
	"golang.org/x/time/rate"

	"github.com/sixpotify/top-tracks/internal/artistid"
	"github.com/sixpotify/top-tracks/internal/backend"
	"github.com/sixpotify/top-tracks/internal/backend/queues"
	"github.com/sixpotify/top-tracks/internal/backend/stores"
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

type reprocessCmd struct {
	StoreURL     string        `name:"store-url" envvar:"STORE_URL" default:"${embedded_url}" help:"dynamodb:TABLE or sqlite:PATH (which must exist)."`
	ArtistsTable string        `name:"artists-table" envvar:"ARTISTS_TABLE" default:"${artists_table}" help:"The DynamoDB artists table."`
	StaleAfter   time.Duration `name:"stale-after" placeholder:"DURATION" help:"Only artists fetched longer ago than this Go duration (e.g. 24h)."`
	Force        bool          `help:"Set \"force\": true: fetch even if the artist is fresh for the worker."`
	DryRun       bool          `name:"dry-run" help:"Count the artists that would be enqueued, enqueue nothing."`
	Rate         float64       `placeholder:"N" help:"Enqueue at most N artists a second (0: as fast as the queue takes them)."`
	Resume       string        `placeholder:"FILE" help:"Checkpoint FILE: artists listed there are skipped, and every artist enqueued is appended, so an interrupted run continues where it stopped."`
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

func (c *reprocessCmd) run(ctx context.Context, g *grammar, stdout, stderr io.Writer) error {
	u, err := g.lane(true, true)
	if err != nil {
		return err
	}
	if err := stores.Readable(c.StoreURL); err != nil {
		return cli.VarErrorf("STORE_URL", "%v", err)
	}
	stale := c.StaleAfter
	if stale < 0 {
		return cli.Usage(fmt.Errorf("--stale-after: %v is negative", stale))
	}
	if c.Rate < 0 || math.IsNaN(c.Rate) || math.IsInf(c.Rate, 0) {
		return cli.Usage(fmt.Errorf("--rate: %v is not a rate of zero or more artists a second", c.Rate))
	}
	storeURL, artists, force, dryRun, perSecond, resume := &c.StoreURL, &c.ArtistsTable, &c.Force, &c.DryRun, &c.Rate, &c.Resume

	var ck *checkpoint
	if *resume != "" && !*dryRun {
		var err error
		if ck, err = openCheckpoint(*resume); err != nil {
			return cli.Usage(fmt.Errorf("--resume: %w", err))
		}
		defer ck.close()
	}
	st, closeS, err := stores.Open(ctx, *storeURL, *artists)
	if err != nil {
		return cli.VarErrorf("STORE_URL", "%v", err)
	}
	defer closeS()
	total := 0
	if c, ok := st.(interface {
		CountArtists(context.Context) (int, error)
	}); ok && stale == 0 {
		if n, err := c.CountArtists(ctx); err == nil {
			total = n - ck.len()
		}
	}
	cutoff := time.Now().Add(-stale)
	start := time.Now()
	var limiter *rate.Limiter
	if *perSecond > 0 {
		limiter = rate.NewLimiter(rate.Limit(*perSecond), 1)
	}
	// The scan feeds the producer through a channel, so that neither holds
	// the whole catalogue.
	msgs := make(chan producer.Message, 1000)
	scanErr := make(chan error, 1)
	scanCtx, cancelScan := context.WithCancel(ctx)
	defer cancelScan()
	resumed := 0
	go func() {
		defer close(msgs)
		scanErr <- st.ScanArtists(scanCtx, func(a store.Artist) error {
			if stale > 0 && !a.FetchedAt.Before(cutoff) {
				return nil
			}
			if ck.has(a.ArtistID) {
				resumed++
				return nil
			}
			if limiter != nil {
				if err := limiter.Wait(scanCtx); err != nil {
					return err
				}
			}
			select {
			case msgs <- producer.Message{ArtistID: a.ArtistID, Market: a.Market, Force: *force}:
				return nil
			case <-scanCtx.Done():
				return scanCtx.Err()
			}
		})
	}()
	seq := func(yield func(producer.Message) bool) {
		for m := range msgs {
			if !yield(m) {
				cancelScan()
				for range msgs {
				}
				return
			}
		}
	}
	if *dryRun {
		n := 0
		for range iter.Seq[producer.Message](seq) {
			n++
		}
		if err := <-scanErr; err != nil {
			return fmt.Errorf("scan artists: %w", err)
		}
		fmt.Fprintf(stdout, "dry run: %d artists would be enqueued on %s\n", n, u)
		return nil
	}
	var sent atomic.Int64
	p, err := producer.Open(ctx, u, producer.Options{OnSent: func(msgs []producer.Message) {
		sent.Add(int64(len(msgs)))
		ck.add(msgs)
	}})
	if err != nil {
		return err
	}
	defer p.Close()
	prog := progress.Start(stderr, "artists enqueued", total, func() int { return int(sent.Load()) })
	sum, err := p.EnqueueMessages(ctx, seq)
	prog.Stop()
	serr := <-scanErr
	report(stdout, sum, u, time.Since(start))
	if resumed > 0 {
		fmt.Fprintf(stdout, "skipped %d artists already enqueued according to %s\n", resumed, *resume)
	}
	if cerr := ck.close(); cerr != nil && err == nil {
		err = fmt.Errorf("--resume: %w", cerr)
	}
	if serr != nil && err == nil && !errors.Is(serr, context.Canceled) {
		err = fmt.Errorf("scan artists: %w", serr)
	}
	if err != nil {
		if ck != nil {
			err = fmt.Errorf("%w (run the same command again to continue from %s)", err, *resume)
		}
		return err
	}
	return sum.Err()
}

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
