// Package producercmd is the producer command: enqueue and reprocess.
package producercmd

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"iter"
	"math"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"

	"github.com/sixpotify/top-tracks/internal/artistid"
	"github.com/sixpotify/top-tracks/internal/backend"
	"github.com/sixpotify/top-tracks/internal/envflag"
	"github.com/sixpotify/top-tracks/internal/message"
	"github.com/sixpotify/top-tracks/internal/progress"
	"github.com/sixpotify/top-tracks/internal/store"
	"github.com/sixpotify/top-tracks/producer"
)

const usageText = `Usage: producer COMMAND [flags] [ARGS]

Commands:
  enqueue [ARTIST ...]   enqueue artists named on the command line, or with -f FILE
                         (one per line; -f - reads standard input). An artist is a bare
                         ID, spotify:artist:ID, or https://open.spotify.com/artist/ID
  reprocess              enqueue, on the bulk lane, every artist the store holds, or
                         with --stale-after DURATION only those fetched longer ago

Run 'producer COMMAND --help' for a command's flags.
`

// Run is the producer command. It returns the process's exit code.
func Run(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usageText)
		return 2
	}
	var err error
	switch args[0] {
	case "-h", "-help", "--help", "help":
		fmt.Fprint(stdout, usageText)
		return 0
	case "enqueue":
		err = enqueue(ctx, args[1:], getenv, stdin, stdout, stderr)
	case "reprocess":
		err = reprocess(ctx, args[1:], getenv, stdout, stderr)
	default:
		fmt.Fprintf(stderr, "producer: unknown command %q\n\n%s", args[0], usageText)
		return 2
	}
	var ue usageError
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.As(err, &ue):
		for _, line := range strings.Split(err.Error(), "\n") {
			fmt.Fprintln(stderr, "producer: "+line)
		}
		return 2
	default:
		for _, line := range strings.Split(err.Error(), "\n") {
			fmt.Fprintln(stderr, "producer: "+line)
		}
		return 1
	}
}

// usageError is a bad flag, argument or variable: exit code 2.
type usageError struct{ error }

func (e usageError) Unwrap() error { return e.error }

type queueFlags struct {
	queueURL, bulkURL *string
}

func addQueueFlags(s *envflag.Set) queueFlags {
	return queueFlags{
		queueURL: s.Var("QUEUE_URL", "sqlite:sixpotify.db", "the chatbot's lane: an SQS queue URL, or sqlite:PATH[?queue=NAME]"),
		bulkURL:  s.Var("BULK_QUEUE_URL", "", "the bulk lane, same forms as QUEUE_URL (none: one lane)"),
	}
}

// lane returns the queue URL to send to.
func (f queueFlags) lane(s *envflag.Set, bulk bool) string {
	u, env := *f.queueURL, "QUEUE_URL"
	if bulk && *f.bulkURL != "" {
		u, env = *f.bulkURL, "BULK_QUEUE_URL"
	}
	if err := backend.ValidateQueueURL(u); err != nil {
		s.Fail(env, "%v", err)
	}
	return u
}

func enqueue(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) error {
	s := envflag.New("producer enqueue", getenv, stderr)
	s.FS.Usage = func() {
		fmt.Fprint(stderr, "Usage: producer enqueue [flags] [ARTIST ...]\n\nAn artist is a bare ID, spotify:artist:ID or https://open.spotify.com/artist/ID[?…].\n\nFlags:\n")
		s.FS.PrintDefaults()
	}
	qf := addQueueFlags(s)
	file := s.FS.String("f", "", "read artists from `FILE`, one per line (- for standard input)")
	force := s.FS.Bool("force", false, `set "force": true: fetch even if the artist is fresh`)
	bulk := s.FS.Bool("bulk", false, "send to the bulk lane (BULK_QUEUE_URL)")
	market := s.FS.String("market", "", "market (ISO 3166-1 alpha-2) for these artists (default: the worker's SPOTIFY_MARKET)")
	if err := s.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usageError{err}
	}
	u := qf.lane(s, *bulk)
	*market = strings.ToUpper(*market)
	if *market != "" && !message.ValidMarket(*market) {
		s.Fail("MARKET", "%q is not an ISO 3166-1 alpha-2 code such as US", *market)
	}
	refs := s.FS.Args()
	if *file == "" && len(refs) == 0 {
		return usageError{errors.New("no artists: name them as arguments or give -f FILE (see --help)")}
	}
	if err := s.Err(); err != nil {
		return usageError{err}
	}
	var in io.Reader
	switch *file {
	case "":
	case "-":
		in = stdin
	default:
		f, err := os.Open(*file)
		if err != nil {
			return usageError{fmt.Errorf("-f: %w", err)}
		}
		defer f.Close()
		in = f
	}

	p, err := producer.Open(ctx, u, producer.Options{Market: *market, Force: *force})
	if err != nil {
		return err
	}
	defer p.Close()
	start := time.Now()
	// One sequence, so that an artist named both as an argument and in the
	// file is a duplicate like any other.
	var readErr error
	sum, err := p.EnqueueSeq(ctx, artists(refs, in, &readErr))
	if err == nil && readErr != nil {
		err = fmt.Errorf("-f: read artists: %w", readErr)
	}
	report(stdout, sum, u, time.Since(start))
	if err != nil {
		return err
	}
	return sum.Err()
}

// artists yields refs, then the lines of in (when not nil) as
// producer.EnqueueFrom reads them: a blank line or a # comment keeps its
// position but names no artist. A read error is left in *readErr.
func artists(refs []string, in io.Reader, readErr *error) iter.Seq[string] {
	return func(yield func(string) bool) {
		for _, r := range refs {
			if !yield(r) {
				return
			}
		}
		if in == nil {
			return
		}
		sc := bufio.NewScanner(in)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			line := strings.TrimSpace(sc.Text())
			if strings.HasPrefix(line, "#") {
				line = ""
			}
			if !yield(line) {
				return
			}
		}
		*readErr = sc.Err()
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

func reprocess(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	s := envflag.New("producer reprocess", getenv, stderr)
	s.FS.Usage = func() {
		fmt.Fprint(stderr, "Usage: producer reprocess [flags]\n\nEnqueues, on the bulk lane (QUEUE_URL when there is none), every artist the store holds,\nor only those fetched longer ago than --stale-after. The worker still skips artists fetched\nwithin its FRESH_FOR unless --force is given.\n\nFlags:\n")
		s.FS.PrintDefaults()
	}
	qf := addQueueFlags(s)
	storeURL := s.Var("STORE_URL", "sqlite:sixpotify.db", "dynamodb:TABLE or sqlite:PATH")
	artists := s.Var("ARTISTS_TABLE", "artists", "the DynamoDB artists table")
	staleAfter := s.FS.String("stale-after", "", "only artists fetched longer ago than this Go `DURATION` (e.g. 24h)")
	force := s.FS.Bool("force", false, `set "force": true: fetch even if the artist is fresh for the worker`)
	dryRun := s.FS.Bool("dry-run", false, "count the artists that would be enqueued, enqueue nothing")
	perSecond := s.FS.Float64("rate", 0, "enqueue at most `N` artists a second (0: as fast as the queue takes them)")
	resume := s.FS.String("resume", "", "checkpoint `FILE`: artists listed there are skipped, and every artist enqueued is appended, so an interrupted run continues where it stopped")
	if err := s.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usageError{err}
	}
	if s.FS.NArg() > 0 {
		return usageError{fmt.Errorf("unexpected argument %q (see --help)", s.FS.Arg(0))}
	}
	u := qf.lane(s, true)
	if err := backend.ValidateStoreURL(*storeURL); err != nil {
		s.Fail("STORE_URL", "%v", err)
	}
	var stale time.Duration
	if *staleAfter != "" {
		d, err := time.ParseDuration(*staleAfter)
		if err != nil || d < 0 {
			return usageError{fmt.Errorf("--stale-after: %q is not a duration such as 24h", *staleAfter)}
		}
		stale = d
	}
	if *perSecond < 0 || math.IsNaN(*perSecond) || math.IsInf(*perSecond, 0) {
		return usageError{fmt.Errorf("--rate: %v is not a rate of zero or more artists a second", *perSecond)}
	}
	if err := s.Err(); err != nil {
		return usageError{err}
	}

	var ck *checkpoint
	if *resume != "" && !*dryRun {
		var err error
		if ck, err = openCheckpoint(*resume); err != nil {
			return usageError{fmt.Errorf("--resume: %w", err)}
		}
		defer ck.close()
	}
	st, closeS, err := backend.OpenStore(ctx, *storeURL, *artists)
	if err != nil {
		return fmt.Errorf("STORE_URL: %w", err)
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
