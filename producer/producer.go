// Package producer puts artists on the queue for the worker: one message per
// artist, {"artist_id": "…", "market": "…", "force": …}, sent ten to a
// SendMessageBatch call with several calls in flight.
//
// A Go chatbot enqueues the artist a user asked about with Open and Enqueue;
// the producer command enqueues whole catalogues with EnqueueFrom.
package producer

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"iter"
	"strings"
	"sync"
	"time"

	"github.com/sethvargo/go-retry"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
	"golang.org/x/sync/errgroup"

	"github.com/sixpotify/top-tracks/internal/artistid"
	"github.com/sixpotify/top-tracks/internal/clip"
	"github.com/sixpotify/top-tracks/internal/market"
	"github.com/sixpotify/top-tracks/internal/message"
	"github.com/sixpotify/top-tracks/internal/queue"
	"github.com/sixpotify/top-tracks/internal/tracing"
)

// Entry is one message to send (an alias, so that other modules can
// implement Sender).
type Entry = queue.Entry

// Sender sends a batch of at most ten messages, returning one error per
// entry (nil when sent) and an error for the call as a whole. An entry error
// that wraps queue.ErrRejected is not sent again.
type Sender = queue.Sender

// Options tune a Producer. The zero value is ready to use.
type Options struct {
	// Market goes into every message; empty leaves it to the worker's default.
	Market string
	// Force makes the worker fetch the artists even if they are fresh.
	Force bool
	// Concurrency is the most batch calls in flight at once (default 8).
	Concurrency int
	// MaxRetries is how many times a failed batch or entry is sent again
	// (default 4), with capped exponential backoff.
	MaxRetries int
	// RetryBase is the first backoff (default 100ms).
	RetryBase time.Duration
	// OnSent, if set, is called with the messages of each batch that the
	// queue accepted, one call at a time (for checkpoints and progress).
	OnSent func(sent []Message)
}

// Producer enqueues artists. It is safe for concurrent use.
type Producer struct {
	q     Sender
	opts  Options
	close func() error
}

// New returns a Producer that sends to q.
func New(q Sender, opts Options) *Producer {
	if opts.Concurrency <= 0 {
		opts.Concurrency = 8
	}
	if opts.MaxRetries <= 0 {
		opts.MaxRetries = 4
	}
	if opts.RetryBase <= 0 {
		opts.RetryBase = 100 * time.Millisecond
	}
	return &Producer{q: q, opts: opts, close: func() error { return nil }}
}

// Close releases what Open opened.
func (p *Producer) Close() error { return p.close() }

// Summary tells what an Enqueue did.
type Summary struct {
	// Enqueued is how many messages were sent.
	Enqueued int
	// Duplicates is how many artists were dropped because they appeared
	// earlier in the same input.
	Duplicates int
	// Rejected lists the inputs that are not artists; nothing was sent for them.
	Rejected []Rejection
	// Failed lists the artists that could not be sent after retries.
	Failed []Failure
}

// Rejection is an input that names no artist.
type Rejection struct {
	Line  int // 1-based position in the input
	Input string
	Err   error
}

// Failure is an artist that could not be sent.
type Failure struct {
	ArtistID string
	Market   string // as in the message ("" for the worker's default)
	Err      error
}

// Err returns nil when every artist was enqueued, and otherwise an error
// naming each one rejected or failed.
func (s Summary) Err() error {
	var errs []error
	for _, r := range s.Rejected {
		errs = append(errs, fmt.Errorf("rejected %q (input %d): %w", clip.String(r.Input, 80), r.Line, r.Err))
	}
	for _, f := range s.Failed {
		errs = append(errs, fmt.Errorf("failed %s: %w", f.ArtistID, f.Err))
	}
	return errors.Join(errs...)
}

// Enqueue enqueues the artists, each a bare ID, a spotify:artist: URI or an
// open.spotify.com URL. It returns an error only when ctx ended; what was
// rejected or failed is in the Summary (see Summary.Err).
func (p *Producer) Enqueue(ctx context.Context, artists ...string) (Summary, error) {
	return p.EnqueueSeq(ctx, func(yield func(string) bool) {
		for _, a := range artists {
			if !yield(a) {
				return
			}
		}
	})
}

// EnqueueFrom enqueues one artist per line of r, streaming: blank lines and
// lines starting with # are skipped.
func (p *Producer) EnqueueFrom(ctx context.Context, r io.Reader) (Summary, error) {
	var scanErr error
	sum, err := p.EnqueueSeq(ctx, Lines(r, &scanErr))
	if err == nil && scanErr != nil {
		err = fmt.Errorf("read artists: %w", scanErr)
	}
	return sum, err
}

// Lines yields the lines of r as EnqueueSeq takes them, trimmed: a blank
// line or a # comment is yielded as "", which keeps its position for the
// line numbers of rejections but names no artist. A line may be up to 1 MiB
// long. A read error ends the sequence and is left in *readErr.
func Lines(r io.Reader, readErr *error) iter.Seq[string] {
	return func(yield func(string) bool) {
		sc := bufio.NewScanner(r)
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

// EnqueueSeq enqueues the artists of seq; an empty string is skipped (it
// keeps its position for the line numbers of rejections). Duplicates are
// dropped: memory grows by about 40 bytes per distinct artist.
func (p *Producer) EnqueueSeq(ctx context.Context, seq iter.Seq[string]) (Summary, error) {
	return p.enqueue(ctx, func(yield func(item) bool) {
		line := 0
		for ref := range seq {
			line++
			if ref == "" {
				continue
			}
			id, err := artistid.Parse(ref)
			it := item{line: line, input: ref, err: err,
				msg: Message{ArtistID: id, Market: p.opts.Market, Force: p.opts.Force}}
			if !yield(it) {
				return
			}
		}
	})
}

// Message is the body of one queue message (an alias of the worker's).
type Message = message.Message

// EnqueueMessages enqueues messages as they are, each with its own market
// and force (Options.Market and Options.Force do not apply). Duplicates of
// an artist and market are dropped.
func (p *Producer) EnqueueMessages(ctx context.Context, seq iter.Seq[Message]) (Summary, error) {
	return p.enqueue(ctx, func(yield func(item) bool) {
		line := 0
		for m := range seq {
			line++
			err := artistid.Check(m.ArtistID)
			if err == nil && m.Market != "" {
				err = market.Check(m.Market)
			}
			if !yield(item{line: line, input: m.ArtistID, err: err, msg: m}) {
				return
			}
		}
	})
}

// item is one input on its way to the queue.
type item struct {
	line  int
	input string
	err   error // why the input was rejected
	msg   Message
}

type dedupeKey struct {
	id     [artistid.Len]byte
	market [2]byte
}

func (p *Producer) enqueue(ctx context.Context, seq iter.Seq[item]) (Summary, error) {
	var (
		mu   sync.Mutex
		sum  Summary
		seen = map[dedupeKey]struct{}{}
	)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(p.opts.Concurrency)
	send := func(msgs []Message) {
		g.Go(func() error {
			failed := p.sendBatch(gctx, msgs)
			mu.Lock()
			defer mu.Unlock()
			sum.Enqueued += len(msgs) - len(failed)
			sum.Failed = append(sum.Failed, failed...)
			if p.opts.OnSent != nil {
				p.opts.OnSent(sentOf(msgs, failed))
			}
			return nil
		})
	}
	batch := make([]Message, 0, queue.MaxBatch)
	for it := range seq {
		if ctx.Err() != nil {
			break
		}
		if it.err != nil {
			mu.Lock()
			sum.Rejected = append(sum.Rejected, Rejection{Line: it.line, Input: it.input, Err: it.err})
			mu.Unlock()
			continue
		}
		var key dedupeKey
		copy(key.id[:], it.msg.ArtistID)
		copy(key.market[:], it.msg.Market)
		if _, dup := seen[key]; dup {
			mu.Lock()
			sum.Duplicates++
			mu.Unlock()
			continue
		}
		seen[key] = struct{}{}
		batch = append(batch, it.msg)
		if len(batch) == queue.MaxBatch {
			send(batch)
			batch = make([]Message, 0, queue.MaxBatch)
		}
	}
	if len(batch) > 0 && ctx.Err() == nil {
		send(batch)
	}
	_ = g.Wait()
	if err := ctx.Err(); err != nil {
		return sum, fmt.Errorf("enqueue interrupted after %d artists: %w", sum.Enqueued, err)
	}
	return sum, nil
}

// tracer names the producer's spans; it is OpenTelemetry's global one, a
// no-op until the program installs an SDK.
var tracer = otel.Tracer("github.com/sixpotify/top-tracks/producer")

// sendBatch sends msgs in one call, retrying the whole call on an error and
// the failed entries that are not the sender's fault. It returns what still
// failed, in input order.
func (p *Producer) sendBatch(ctx context.Context, msgs []Message) []Failure {
	// One span for the batch; its context travels on each message (a message
	// attribute), so that the worker's delivery continues the trace.
	ctx, span := tracer.Start(ctx, "sixpotify.send", trace.WithSpanKind(trace.SpanKindProducer),
		trace.WithAttributes(attribute.Int("messaging.batch.message_count", len(msgs)), attribute.String("messaging.system", "aws_sqs")))
	defer span.End()
	errs := make([]error, len(msgs)) // the last error of each message, nil once sent
	var pending []int                // indexes of messages still to send
	var entries []Entry
	for i, m := range msgs {
		body, err := message.Encode(m)
		if err != nil {
			errs[i] = err
			continue
		}
		pending = append(pending, i)
		entries = append(entries, Entry{Body: body, Attributes: tracing.Inject(ctx, nil)})
	}
	b := retry.WithMaxRetries(uint64(p.opts.MaxRetries),
		retry.WithCappedDuration(5*time.Second, retry.WithJitterPercent(20, retry.NewExponential(p.opts.RetryBase))))
	err := retry.Do(ctx, b, func(ctx context.Context) error {
		entryErrs, err := p.q.SendBatch(ctx, entries)
		if err == nil && len(entryErrs) != len(entries) {
			err = fmt.Errorf("the queue answered %d entries for %d sent", len(entryErrs), len(entries))
		}
		if err != nil {
			for _, i := range pending {
				errs[i] = err
			}
			return retry.RetryableError(err)
		}
		var nextPending []int
		var nextEntries []Entry
		for k, e := range entryErrs {
			i := pending[k]
			errs[i] = e
			if e != nil && !senderFault(e) {
				nextPending = append(nextPending, i)
				nextEntries = append(nextEntries, entries[k])
			}
		}
		pending, entries = nextPending, nextEntries
		if len(pending) > 0 {
			return retry.RetryableError(errors.New("some entries failed"))
		}
		return nil
	})
	if err != nil && ctx.Err() != nil {
		for _, i := range pending {
			if errs[i] == nil {
				errs[i] = err
			}
		}
	}
	var out []Failure
	for i, e := range errs {
		if e != nil {
			out = append(out, Failure{ArtistID: msgs[i].ArtistID, Market: msgs[i].Market, Err: e})
		}
	}
	if len(out) > 0 {
		span.SetStatus(codes.Error, fmt.Sprintf("%d of %d messages not sent", len(out), len(msgs)))
	}
	return out
}

// sentOf returns msgs less the failed ones (failed is in msgs' order).
func sentOf(msgs []Message, failed []Failure) []Message {
	if len(failed) == 0 {
		return msgs
	}
	sent := make([]Message, 0, len(msgs)-len(failed))
	for _, m := range msgs {
		if len(failed) > 0 && failed[0].ArtistID == m.ArtistID && failed[0].Market == m.Market {
			failed = failed[1:]
			continue
		}
		sent = append(sent, m)
	}
	return sent
}

// senderFault reports whether a per-entry error says the entry itself is
// wrong, so that sending it again cannot help. Every backend wraps
// queue.ErrRejected for that.
func senderFault(err error) bool {
	return errors.Is(err, queue.ErrRejected)
}
