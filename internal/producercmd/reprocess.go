package producercmd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"iter"
	"math"
	"sync/atomic"
	"time"

	"github.com/sixpotify/top-tracks/internal/backend/stores"
	"github.com/sixpotify/top-tracks/internal/cli"
	"github.com/sixpotify/top-tracks/internal/progress"
	"github.com/sixpotify/top-tracks/internal/store"
	"github.com/sixpotify/top-tracks/producer"
	"golang.org/x/time/rate"
)

// reprocessCmd is `producer reprocess`: every artist the store holds (or
// those fetched longer ago than --stale-after), enqueued on the bulk lane.
type reprocessCmd struct {
	StoreURL     string        `name:"store-url" envvar:"STORE_URL" default:"${embedded_url}" help:"dynamodb:TABLE or sqlite:PATH (which must exist)."`
	ArtistsTable string        `name:"artists-table" envvar:"ARTISTS_TABLE" default:"${artists_table}" help:"The DynamoDB artists table."`
	StaleAfter   time.Duration `name:"stale-after" placeholder:"DURATION" help:"Only artists fetched longer ago than this Go duration (e.g. 24h)."`
	Force        bool          `help:"Set \"force\": true: fetch even if the artist is fresh for the worker."`
	DryRun       bool          `name:"dry-run" help:"Count the artists that would be enqueued, enqueue nothing."`
	Rate         float64       `placeholder:"N" help:"Enqueue at most N artists a second (0: as fast as the queue takes them)."`
	Resume       string        `placeholder:"FILE" help:"Checkpoint FILE: artists listed there are skipped, and every artist enqueued is appended, so an interrupted run continues where it stopped."`
}

func (c *reprocessCmd) run(ctx context.Context, g *grammar, stdout, stderr io.Writer) error {
	u, err := g.lane(true, true)
	if err != nil {
		return err
	}
	if err := c.check(); err != nil {
		return err
	}
	var ck *checkpoint
	if c.Resume != "" && !c.DryRun {
		if ck, err = openCheckpoint(c.Resume); err != nil {
			return cli.Usage(fmt.Errorf("--resume: %w", err))
		}
		defer ck.close()
	}
	st, closeS, err := stores.Open(ctx, c.StoreURL, c.ArtistsTable)
	if err != nil {
		return cli.VarErrorf("STORE_URL", "%v", err)
	}
	defer closeS()
	total := c.total(ctx, st, ck)
	start := time.Now()
	sc := c.scan(ctx, st, ck)
	defer sc.cancel()
	if c.DryRun {
		return sc.dryRun(u, stdout)
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
	sum, err := p.EnqueueMessages(ctx, sc.seq)
	prog.Stop()
	scanErr := <-sc.err // after it, sc.resumed is final
	report(stdout, sum, u, time.Since(start))
	if sc.resumed > 0 {
		fmt.Fprintf(stdout, "skipped %d artists already enqueued according to %s\n", sc.resumed, c.Resume)
	}
	return c.end(sum, err, scanErr, ck)
}

// end is the run's error: the producer's, the checkpoint's, the scan's, or
// the artists that failed; after an interruption it says how to continue.
func (c *reprocessCmd) end(sum producer.Summary, err, scanErr error, ck *checkpoint) error {
	if cerr := ck.close(); cerr != nil && err == nil {
		err = fmt.Errorf("--resume: %w", cerr)
	}
	if scanErr != nil && err == nil && !errors.Is(scanErr, context.Canceled) {
		err = fmt.Errorf("scan artists: %w", scanErr)
	}
	if err != nil {
		if ck != nil {
			err = fmt.Errorf("%w (run the same command again to continue from %s)", err, c.Resume)
		}
		return err
	}
	return sum.Err()
}

// check reports a flag or variable that cannot do.
func (c *reprocessCmd) check() error {
	if err := stores.Readable(c.StoreURL); err != nil {
		return cli.VarErrorf("STORE_URL", "%v", err)
	}
	if c.StaleAfter < 0 {
		return cli.Usage(fmt.Errorf("--stale-after: %v is negative", c.StaleAfter))
	}
	if c.Rate < 0 || math.IsNaN(c.Rate) || math.IsInf(c.Rate, 0) {
		return cli.Usage(fmt.Errorf("--rate: %v is not a rate of zero or more artists a second", c.Rate))
	}
	return nil
}

// total is how many artists the run will enqueue, as far as the store can
// count them cheaply (0: not known, and the progress line shows no ETA).
func (c *reprocessCmd) total(ctx context.Context, st store.Reader, ck *checkpoint) int {
	counter, ok := st.(interface {
		CountArtists(context.Context) (int, error)
	})
	if !ok || c.StaleAfter != 0 {
		return 0
	}
	n, err := counter.CountArtists(ctx)
	if err != nil {
		return 0
	}
	return n - ck.len()
}

// artistScan is the store's scan feeding the producer through a channel, so
// that neither holds the whole catalogue. err receives the scan's end once
// seq is drained; resumed is then the artists the checkpoint skipped.
type artistScan struct {
	seq     iter.Seq[producer.Message]
	err     chan error
	cancel  context.CancelFunc
	resumed int
}

// scan starts the scan of the artists to enqueue: those fetched before
// --stale-after (all, without it), less those the checkpoint lists, paced
// by --rate.
func (c *reprocessCmd) scan(ctx context.Context, st interface {
	ScanArtists(context.Context, func(store.Artist) error) error
}, ck *checkpoint) *artistScan {
	cutoff := time.Now().Add(-c.StaleAfter)
	var limiter *rate.Limiter
	if c.Rate > 0 {
		limiter = rate.NewLimiter(rate.Limit(c.Rate), 1)
	}
	msgs := make(chan producer.Message, 1000)
	scanCtx, cancel := context.WithCancel(ctx)
	sc := &artistScan{err: make(chan error, 1), cancel: cancel}
	go func() {
		defer close(msgs)
		sc.err <- st.ScanArtists(scanCtx, func(a store.Artist) error {
			if c.StaleAfter > 0 && !a.FetchedAt.Before(cutoff) {
				return nil
			}
			if ck.has(a.ArtistID) {
				sc.resumed++
				return nil
			}
			if limiter != nil {
				if err := limiter.Wait(scanCtx); err != nil {
					return err
				}
			}
			select {
			case msgs <- producer.Message{ArtistID: a.ArtistID, Market: a.Market, Force: c.Force}:
				return nil
			case <-scanCtx.Done():
				return scanCtx.Err()
			}
		})
	}()
	sc.seq = func(yield func(producer.Message) bool) {
		for m := range msgs {
			if !yield(m) {
				cancel()
				for range msgs {
				}
				return
			}
		}
	}
	return sc
}

// dryRun drains the scan and says how many artists it would enqueue.
func (sc *artistScan) dryRun(queueURL string, stdout io.Writer) error {
	n := 0
	for range sc.seq {
		n++
	}
	if err := <-sc.err; err != nil {
		return fmt.Errorf("scan artists: %w", err)
	}
	fmt.Fprintf(stdout, "dry run: %d artists would be enqueued on %s\n", n, queueURL)
	return nil
}
