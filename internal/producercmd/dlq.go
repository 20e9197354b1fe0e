package producercmd

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/sixpotify/top-tracks/internal/backend"
	"github.com/sixpotify/top-tracks/internal/backend/queues"
	"github.com/sixpotify/top-tracks/internal/cli"
	"github.com/sixpotify/top-tracks/internal/clip"
	"github.com/sixpotify/top-tracks/internal/message"
	"github.com/sixpotify/top-tracks/internal/queue"
	"github.com/sixpotify/top-tracks/internal/store"
)

type dlqCmd struct {
	List    dlqListCmd    `cmd:"" help:"Show what a lane's dead-letter queue holds, without consuming it: artist (or the raw body), market, receives, first sent, and the reason the worker recorded. On SQS a message can only be read by receiving it: each is received with a visibility of 30s and given back at once (ChangeMessageVisibility 0), so a listing counts one receive and hides the messages while it runs; the embedded queue reads its rows."`
	Redrive dlqRedriveCmd `cmd:"" help:"Move a lane's dead-letter queue's messages back to the lane: on SQS with its own message-move task (Ctrl-C cancels it), on the embedded queue by moving the rows. Exits non-zero when any message was not moved; running it again moves the rest, none twice."`
}

// laneFlag chooses the lane whose dead-letter queue a dlq command works on.
type laneFlag struct {
	Lane string `default:"chatbot" placeholder:"LANE" help:"The lane: chatbot (QUEUE_URL, the default) or bulk (BULK_QUEUE_URL)."`
}

// laneRef returns the lane --lane names, checked.
func (f laneFlag) laneRef(g *grammar) (laneRef, error) {
	var r laneRef
	switch f.Lane {
	case "chatbot":
		r = laneRef{"chatbot", "QUEUE_URL", g.QueueURL}
	case "bulk":
		if g.BulkQueueURL == "" {
			return r, cli.Usage(errors.New("--lane bulk: BULK_QUEUE_URL (--bulk-queue-url) is not set: there is no bulk lane"))
		}
		r = laneRef{"bulk", "BULK_QUEUE_URL", g.BulkQueueURL}
	default:
		return r, cli.Usage(fmt.Errorf("--lane: %q is not a lane: chatbot or bulk", clip.String(f.Lane, 40)))
	}
	if r.url == "" {
		return r, cli.VarErrorf(r.env, "is empty")
	}
	if err := queues.ValidateURL(r.url); err != nil {
		return r, cli.VarErrorf(r.env, "%v", err)
	}
	return r, nil
}

// openDeadLetters opens the lane's queue and checks that it has a
// dead-letter queue; a lane without one is a usage error.
func openDeadLetters(ctx context.Context, r laneRef, what string) (queue.DeadLetterer, func() error, error) {
	q, closeQ, ok, err := openLane(ctx, r)
	if err != nil {
		return nil, nil, err
	}
	if !ok {
		return nil, nil, cli.VarErrorf(r.env, "%s does not exist: no queue yet, and no dead-letter queue %s", r.url, what)
	}
	d, isDL := q.(queue.DeadLetterer)
	if !isDL {
		closeQ()
		return nil, nil, cli.VarErrorf(r.env, "this queue (%T) cannot look into a dead-letter queue", q)
	}
	if _, err := d.DeadLetterCounts(ctx); errors.Is(err, queue.ErrNoDeadLetterQueue) {
		closeQ()
		return nil, nil, cli.VarErrorf(r.env, "the %s lane's queue %s has no dead-letter queue (no redrive policy): nothing %s", r.name, r.url, what)
	} else if err != nil {
		closeQ()
		return nil, nil, err
	}
	return d, closeQ, nil
}

type dlqListCmd struct {
	laneFlag
	N            int    `short:"n" default:"20" placeholder:"N" help:"Show at most N messages (1 to 1000; default 20)."`
	JSON         bool   `name:"json" help:"Print one JSON object per message per line."`
	StoreURL     string `name:"store-url" envvar:"STORE_URL" default:"${embedded_url}" help:"The store the worker records reasons in: dynamodb:TABLE or sqlite:PATH."`
	ArtistsTable string `name:"artists-table" envvar:"ARTISTS_TABLE" default:"${artists_table}" help:"The DynamoDB artists table."`
}

// deadLetter is one message of a list.
type deadLetter struct {
	MessageID string `json:"message_id"`
	ArtistID  string `json:"artist_id,omitempty"`
	Market    string `json:"market,omitempty"`
	Force     bool   `json:"force,omitempty"`
	// Body is the raw body (clipped) of a message that is not a valid one.
	Body      string    `json:"body,omitempty"`
	Invalid   string    `json:"invalid,omitempty"`
	Receives  int       `json:"receives"`
	FirstSent time.Time `json:"first_sent"`
	Reason    string    `json:"reason,omitempty"`
	ReasonAt  string    `json:"reason_at,omitempty"`
}

func (c *dlqListCmd) run(ctx context.Context, g *grammar, stdout io.Writer) error {
	if c.N < 1 || c.N > 1000 {
		return cli.Usage(fmt.Errorf("-n: %d is not a number of messages from 1 to 1000", c.N))
	}
	r, err := c.laneRef(g)
	if err != nil {
		return err
	}
	if err := checkStoreURL(c.StoreURL); err != nil {
		return err
	}
	d, closeQ, err := openDeadLetters(ctx, r, "to list")
	if err != nil {
		return err
	}
	defer closeQ()
	reasons, closeS, err := c.openReasons(ctx)
	if err != nil {
		return err
	}
	defer closeS()
	counts, err := d.DeadLetterCounts(ctx)
	if err != nil {
		return err
	}
	msgs, err := d.PeekDeadLetters(ctx, c.N)
	if err != nil {
		return err
	}
	list, readErr := describe(ctx, msgs, reasons)
	if c.JSON {
		enc := json.NewEncoder(stdout)
		for _, dl := range list {
			if err := enc.Encode(dl); err != nil {
				return err
			}
		}
	} else {
		writeDeadLetters(stdout, r, counts, list)
	}
	if readErr != nil {
		return fmt.Errorf("read the recorded reasons: %w", readErr)
	}
	return nil
}

// openReasons opens the store the worker records failures in; a store that
// does not exist yet holds no reasons (nil).
func (c *dlqListCmd) openReasons(ctx context.Context) (store.FailureReader, func() error, error) {
	st, closeS, err := openExistingStore(ctx, c.StoreURL, c.ArtistsTable)
	if err != nil {
		return nil, nil, err
	}
	reasons, _ := st.(store.FailureReader)
	return reasons, closeS, nil
}

// describe decodes each message and looks up the reason recorded for its
// artist; what cannot be read from the store is joined into the error.
func describe(ctx context.Context, msgs []queue.Delivery, reasons store.FailureReader) ([]deadLetter, error) {
	list := make([]deadLetter, 0, len(msgs))
	var readErrs []error
	for _, m := range msgs {
		dl := deadLetter{MessageID: m.ID, Receives: m.ReceiveCount, FirstSent: m.SentAt.UTC()}
		msg, err := message.Decode(m.Body)
		if err != nil {
			dl.Body, dl.Invalid = clip.String(string(m.Body), 80), err.Error()
			list = append(list, dl)
			continue
		}
		dl.ArtistID, dl.Market, dl.Force = msg.ArtistID, msg.Market, msg.Force
		if reasons != nil {
			f, ok, err := reasons.LastFailure(ctx, msg.ArtistID)
			switch {
			case err != nil:
				readErrs = append(readErrs, err)
			case ok:
				dl.Reason, dl.ReasonAt = f.Reason, f.At.Format(time.RFC3339)
			}
		}
		list = append(list, dl)
	}
	return list, errors.Join(readErrs...)
}

func writeDeadLetters(w io.Writer, r laneRef, counts queue.Counts, list []deadLetter) {
	approx := ""
	if !backend.IsSQLite(r.url) {
		approx = " (SQS's approximate count)"
	}
	fmt.Fprintf(w, "dead-letter queue of the %s lane (%s): %s%s; showing %d\n", r.name, r.url, plural(counts.Total(), "message"), approx, len(list))
	if len(list) == 0 {
		return
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "artist\tmarket\treceives\tfirst sent\treason")
	for _, dl := range list {
		artist, market, reason := dl.ArtistID, dl.Market, "(none recorded)"
		if dl.Body != "" {
			artist, market, reason = fmt.Sprintf("(not a message) %q", dl.Body), "-", dl.Invalid
		}
		if market == "" {
			market = "-"
		}
		if dl.Reason != "" {
			reason = dl.Reason + " [at " + dl.ReasonAt + "]"
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\n", artist, market, dl.Receives, dl.FirstSent.Format(time.RFC3339), reason)
	}
	tw.Flush()
}

type dlqRedriveCmd struct {
	laneFlag
	MaxPerSecond int           `name:"max-per-second" placeholder:"N" help:"Move at most N messages a second (1 to 500; default: as fast as the queue moves them)."`
	Poll         time.Duration `hidden:"" help:"How often to read an SQS move task's progress (default 1s)."`
}

func (c *dlqRedriveCmd) run(ctx context.Context, g *grammar, stdout, stderr io.Writer) error {
	if c.MaxPerSecond < 0 || c.MaxPerSecond > 500 {
		return cli.Usage(fmt.Errorf("--max-per-second: %d is not a rate from 1 to 500 messages a second", c.MaxPerSecond))
	}
	if c.Poll < 0 {
		return cli.Usage(fmt.Errorf("--poll: %v is negative", c.Poll))
	}
	r, err := c.laneRef(g)
	if err != nil {
		return err
	}
	d, closeQ, err := openDeadLetters(ctx, r, "to redrive")
	if err != nil {
		return err
	}
	defer closeQ()
	start := time.Now()
	p, err := d.Redrive(ctx, queue.RedriveOptions{
		MaxPerSecond: c.MaxPerSecond,
		Poll:         c.Poll,
		Progress: func(p queue.RedriveProgress) {
			fmt.Fprintf(stderr, "redrive: %s, %d of %d moved\n", p.Status, p.Moved, p.ToMove)
		},
	})
	// What is left, counted afresh (even after an interruption).
	lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	left, lerr := d.DeadLetterCounts(lctx)
	exact := backend.IsSQLite(r.url)
	leftText := "?"
	if lerr == nil {
		leftText = fmt.Sprint(left.Total())
		if !exact {
			leftText = "about " + leftText
		}
	}
	note := ""
	if p.Note != "" {
		note = " (" + p.Note + ")"
	}
	fmt.Fprintf(stdout, "moved %d of %d messages from the dead-letter queue of the %s lane back to %s in %s%s; %s left in the dead-letter queue\n",
		p.Moved, p.ToMove, r.name, r.url, time.Since(start).Round(time.Millisecond), note, leftText)
	if err != nil {
		return redriveErr(p, err)
	}
	return leftErr(p, left, lerr, exact)
}

// redriveErr says how a move that failed ended.
func redriveErr(p queue.RedriveProgress, err error) error {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("interrupted after moving %d of %d messages; run the same command again to move the rest", p.Moved, p.ToMove)
	}
	return err
}

// leftErr is the error of a move that returned: it did not complete, or
// what is left cannot be counted, or (where the count is exact) messages
// are still there.
func leftErr(p queue.RedriveProgress, left queue.Counts, lerr error, exact bool) error {
	switch {
	case p.Status != queue.RedriveCompleted || p.Moved < p.ToMove:
		return fmt.Errorf("the move ended %s with %d of %d messages moved", p.Status, p.Moved, p.ToMove)
	case lerr != nil:
		return fmt.Errorf("count what is left in the dead-letter queue: %w", lerr)
	case exact && left.Total() > 0:
		return fmt.Errorf("%d messages are still in the dead-letter queue (they arrived during the move: run it again)", left.Total())
	}
	return nil
}

// plural is "1 message", "2 messages".
func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}
