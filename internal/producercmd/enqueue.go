package producercmd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"iter"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/sixpotify/top-tracks/internal/cli"
	"github.com/sixpotify/top-tracks/internal/clip"
	"github.com/sixpotify/top-tracks/internal/market"
	"github.com/sixpotify/top-tracks/internal/progress"
	"github.com/sixpotify/top-tracks/producer"
)

// enqueueCmd is `producer enqueue`: the artists named on the command line
// or in files, sent to a lane; with --wait (wait.go), asked on the chatbot's
// lane and answered from the store.
type enqueueCmd struct {
	Artists []string `arg:"" optional:"" name:"artist" help:"A bare ID, spotify:artist:ID or https://open.spotify.com/artist/ID[?…]."`
	File    []string `short:"f" name:"file" placeholder:"FILE" help:"Read artists from FILE, one per line (- for standard input); may be repeated."`
	Force   bool     `help:"Set \"force\": true: fetch even if the artist is fresh."`
	Bulk    bool     `help:"Send to the bulk lane (BULK_QUEUE_URL, which must be set)."`
	Market  string   `placeholder:"CC" help:"Market (ISO 3166-1 alpha-2) for these artists (default: the worker's SPOTIFY_MARKET)."`
	waitFlags
}

// execute checks the flags of the mode chosen (with or without --wait),
// opens the inputs, and runs it.
func (c *enqueueCmd) execute(ctx context.Context, g *grammar, p *cli.Parsed, stdin io.Reader, stdout, stderr io.Writer) error {
	var (
		u       string
		timeout time.Duration
		err     error
	)
	if c.Wait {
		timeout, u, err = c.checkWait(g, p)
	} else if err = c.checkNoWait(p); err == nil {
		u, err = g.lane(c.Bulk, false)
	}
	if err != nil {
		return err
	}
	in, err := c.inputs(stdin)
	if err != nil {
		return err
	}
	defer in.close()
	if c.Wait {
		return c.runWait(ctx, u, timeout, in, stdout, stderr)
	}
	return c.run(ctx, u, in, stdout, stderr)
}

func (c *enqueueCmd) run(ctx context.Context, u string, in inputs, stdout, stderr io.Writer) error {
	var sent atomic.Int64
	p, err := producer.Open(ctx, u, producer.Options{Market: in.market, Force: c.Force,
		OnSent: func(msgs []producer.Message) { sent.Add(int64(len(msgs))) }})
	if err != nil {
		return err
	}
	defer p.Close()
	start := time.Now()
	var prog *progress.Display
	if len(in.files) > 0 { // a file may be long: show how far it has come
		prog = progress.Start(stderr, "artists enqueued", 0, func() int { return int(sent.Load()) })
	}
	// One sequence, so that an artist named both as an argument and in a
	// file is a duplicate like any other.
	var readErr error
	sources := []source{{start: 1}}
	sum, err := p.EnqueueSeq(ctx, artists(c.Artists, in.files, &sources, &readErr))
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

// inputs are the market and the opened files to read artists from.
type inputs struct {
	market string
	files  []namedReader
	opened []*os.File
}

func (in inputs) close() {
	for _, f := range in.opened {
		f.Close()
	}
}

type namedReader struct {
	name string
	r    io.Reader
}

// inputs checks the market and that some artists are named, and opens the
// files to read them from.
func (c *enqueueCmd) inputs(stdin io.Reader) (inputs, error) {
	in := inputs{market: strings.ToUpper(c.Market)}
	if in.market != "" && !market.Valid(in.market) {
		return in, cli.Usage(fmt.Errorf("--market: %q is not an ISO 3166-1 alpha-2 code such as US", c.Market))
	}
	if len(c.File) == 0 && len(c.Artists) == 0 {
		return in, cli.Usage(errors.New("no artists: name them as arguments or give -f FILE (see 'producer enqueue --help')"))
	}
	for _, name := range c.File {
		if name == "-" {
			in.files = append(in.files, namedReader{"stdin", stdin})
			continue
		}
		f, err := os.Open(name)
		if err != nil {
			in.close()
			return inputs{}, cli.Usage(fmt.Errorf("-f: %w", err))
		}
		in.opened = append(in.opened, f)
		in.files = append(in.files, namedReader{name, f})
	}
	return in, nil
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

// clipInput shortens an input for an error line.
func clipInput(s string) string { return clip.String(s, 60) }

// rejectedErr is the error of an input that names no artist, clipped, with
// where it came from.
func rejectedErr(input, where string, err error) error {
	return fmt.Errorf("rejected %q (%s): %w", clipInput(input), where, err)
}

// summaryErr names each artist rejected (by file and line) or failed.
func summaryErr(sum producer.Summary, sources []source) error {
	var errs []error
	for _, r := range sum.Rejected {
		errs = append(errs, rejectedErr(r.Input, where(sources, r.Line), r.Err))
	}
	for _, f := range sum.Failed {
		errs = append(errs, fmt.Errorf("failed %s: %w", f.ArtistID, f.Err))
	}
	return errors.Join(errs...)
}

// artists yields refs, then the lines of each file as producer.Lines reads
// them. Where each file starts is appended to *sources; a read error ends
// the sequence and is left in *readErr, named by its file.
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
			var err error
			for line := range producer.Lines(f.r, &err) {
				pos++
				if !yield(line) {
					return
				}
			}
			if err != nil {
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
