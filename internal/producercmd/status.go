package producercmd

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/sixpotify/top-tracks/internal/backend"
	"github.com/sixpotify/top-tracks/internal/backend/queues"
	"github.com/sixpotify/top-tracks/internal/backend/stores"
	"github.com/sixpotify/top-tracks/internal/cli"
	"github.com/sixpotify/top-tracks/internal/logging"
	"github.com/sixpotify/top-tracks/internal/queue"
	"github.com/sixpotify/top-tracks/internal/queue/sqlitequeue"
	"github.com/sixpotify/top-tracks/internal/store"
)

// defaultInterval is how often status --watch refreshes.
const defaultInterval = 5 * time.Second

// drainWindow is how far back status --watch measures the drain rate.
const drainWindow = time.Minute

type statusCmd struct {
	Watch        bool          `help:"Refresh every --interval until interrupted, adding the drain rate over the last minute and an estimated time to empty (a progress bar on a terminal, one plain line a refresh elsewhere)."`
	JSON         bool          `name:"json" help:"Print one JSON object (a line per refresh with --watch)."`
	StaleAfter   time.Duration `name:"stale-after" placeholder:"DURATION" help:"Also count the artists fetched longer ago than this Go duration (e.g. 24h); the embedded store counts it exactly, DynamoDB cannot without reading the whole table."`
	Interval     time.Duration `placeholder:"DURATION" help:"With --watch: how often to refresh (Go duration; default 5s)."`
	StoreURL     string        `name:"store-url" envvar:"STORE_URL" default:"${embedded_url}" help:"The store: dynamodb:TABLE or sqlite:PATH."`
	ArtistsTable string        `name:"artists-table" envvar:"ARTISTS_TABLE" default:"${artists_table}" help:"The DynamoDB artists table."`
}

// laneRef is a lane the command looks at: its name, the variable naming its
// queue, and the queue's URL.
type laneRef struct {
	name, env, url string
}

// lanes returns the chatbot's lane and, when BULK_QUEUE_URL is set, the
// bulk lane, each checked.
func (g *grammar) lanes() ([]laneRef, error) {
	refs := []laneRef{{"chatbot", "QUEUE_URL", g.QueueURL}}
	if g.BulkQueueURL != "" {
		refs = append(refs, laneRef{"bulk", "BULK_QUEUE_URL", g.BulkQueueURL})
	}
	for _, r := range refs {
		if r.url == "" {
			return nil, cli.VarErrorf(r.env, "is empty")
		}
		if err := queues.ValidateURL(r.url); err != nil {
			return nil, cli.VarErrorf(r.env, "%v", err)
		}
	}
	return refs, nil
}

// openLane opens a lane's queue. An embedded queue whose file does not exist
// is not created: ok is false.
func openLane(ctx context.Context, r laneRef) (q queue.Queue, closeQ func() error, ok bool, err error) {
	if backend.IsSQLite(r.url) {
		path, _, _ := sqlitequeue.ParseURL(r.url)
		if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
			return nil, nil, false, nil
		}
	}
	q, closeQ, err = queues.Open(ctx, r.url, queues.Options{})
	if err != nil {
		return nil, nil, false, cli.VarErrorf(r.env, "%v", err)
	}
	return q, closeQ, true, nil
}

// laneStatus is one lane in a status report.
type laneStatus struct {
	Lane     string `json:"lane"`
	QueueURL string `json:"queue_url"`
	// Approximate is true for SQS's counts.
	Approximate bool          `json:"approximate"`
	Messages    *queue.Counts `json:"messages,omitempty"`
	DLQ         *queue.Counts `json:"dlq,omitempty"`
	// Note says why a count is missing.
	Note    string `json:"note,omitempty"`
	DLQNote string `json:"dlq_note,omitempty"`
}

// storeStatus is the store in a status report.
type storeStatus struct {
	URL         string         `json:"url"`
	Artists     *int           `json:"artists,omitempty"`
	Approximate bool           `json:"approximate"`
	ByStatus    map[string]int `json:"by_status,omitempty"`
	StaleAfter  string         `json:"stale_after,omitempty"`
	Stale       *int           `json:"stale,omitempty"`
	Failing     *int           `json:"failing,omitempty"`
	Note        string         `json:"note,omitempty"`
}

// statusReport is one refresh of status.
type statusReport struct {
	Time  time.Time    `json:"time"`
	Lanes []laneStatus `json:"lanes"`
	Store storeStatus  `json:"store"`
	// Backlog is every message of the lanes (their DLQs apart).
	Backlog int `json:"backlog"`
	// DrainPerSecond is the backlog's net fall a second over the last
	// minute (--watch, after two refreshes); ETASeconds the time to empty
	// at that rate (when it falls).
	DrainPerSecond *float64 `json:"drain_per_second,omitempty"`
	ETASeconds     *float64 `json:"eta_seconds,omitempty"`
	// Failed is true when a count could not be read (see the notes).
	Failed bool `json:"failed,omitempty"`
}

// statusSource reads what a report holds.
type statusSource struct {
	lanes      []laneRef
	queues     []queue.Queue // nil where the lane's file does not exist yet
	storeURL   string
	st         store.Store // nil when the store does not exist yet
	staleAfter time.Duration
}

func (c *statusCmd) run(ctx context.Context, g *grammar, stdout io.Writer) error {
	if err := c.check(); err != nil {
		return err
	}
	refs, err := g.lanes()
	if err != nil {
		return err
	}
	if err := checkStoreURL(c.StoreURL); err != nil {
		return err
	}
	src := &statusSource{lanes: refs, storeURL: c.StoreURL, staleAfter: c.StaleAfter}
	for _, r := range refs {
		q, closeQ, ok, err := openLane(ctx, r)
		if err != nil {
			return err
		}
		if ok {
			defer closeQ()
		}
		src.queues = append(src.queues, q)
	}
	st, closeS, err := openExistingStore(ctx, c.StoreURL, c.ArtistsTable)
	if err != nil {
		return err
	}
	defer closeS()
	src.st = st
	if c.Watch {
		return c.watch(ctx, src, stdout)
	}
	rep := src.read(ctx, time.Now())
	if c.JSON {
		if err := json.NewEncoder(stdout).Encode(rep); err != nil {
			return err
		}
	} else {
		writeStatus(stdout, rep)
	}
	if rep.Failed {
		return errors.New("status: some counts could not be read (see above)")
	}
	return nil
}

// check refuses flags that cannot do, and sets the default interval.
func (c *statusCmd) check() error {
	if c.StaleAfter < 0 {
		return cli.Usage(fmt.Errorf("--stale-after: %v is negative", c.StaleAfter))
	}
	if c.Interval < 0 || c.Interval > 0 && c.Interval < 100*time.Millisecond {
		return cli.Usage(fmt.Errorf("--interval: %v is not a duration of 100ms or more", c.Interval))
	}
	if c.Interval > 0 && !c.Watch {
		return cli.Usage(errors.New("--interval: only with --watch"))
	}
	if c.Interval == 0 {
		c.Interval = defaultInterval
	}
	return nil
}

// openExistingStore opens the store at u when it exists; one that does not
// exist yet is nil, with nothing to close. An error names STORE_URL.
func openExistingStore(ctx context.Context, u, artistsTable string) (store.Store, func() error, error) {
	if stores.Exists(u) != nil {
		return nil, func() error { return nil }, nil
	}
	st, closeS, err := stores.Open(ctx, u, artistsTable)
	if err != nil {
		return nil, nil, cli.VarErrorf("STORE_URL", "%v", err)
	}
	return st, closeS, nil
}

// watch refreshes the report every c.Interval until ctx ends, then exits 0.
func (c *statusCmd) watch(ctx context.Context, src *statusSource, stdout io.Writer) error {
	tty := logging.IsTerminal(stdout) && !c.JSON
	meter := &drainMeter{window: drainWindow}
	peak := 0
	t := time.NewTicker(c.Interval)
	defer t.Stop()
	for {
		now := time.Now()
		rep := src.read(ctx, now)
		if ctx.Err() != nil {
			return nil
		}
		meter.add(now, rep.Backlog)
		if r, ok := meter.rate(); ok {
			rep.DrainPerSecond = &r
			if eta, ok := etaSeconds(rep.Backlog, r); ok {
				rep.ETASeconds = &eta
			}
		}
		peak = max(peak, rep.Backlog)
		switch {
		case c.JSON:
			if err := json.NewEncoder(stdout).Encode(rep); err != nil {
				return err
			}
		case tty:
			fmt.Fprint(stdout, "\x1b[H\x1b[2J") // home, clear the screen
			writeStatus(stdout, rep)
			fmt.Fprintln(stdout, progressBar(rep, peak))
		default:
			fmt.Fprintln(stdout, statusLine(rep))
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// read takes one report. A count that cannot be read is a note, and marks
// the report Failed.
func (s *statusSource) read(ctx context.Context, now time.Time) statusReport {
	rep := statusReport{Time: now.UTC().Truncate(time.Second)}
	for i, r := range s.lanes {
		ls := laneStatus{Lane: r.name, QueueURL: r.url, Approximate: !backend.IsSQLite(r.url)}
		q := s.queues[i]
		if q == nil {
			ls.Note = "no queue yet: the file does not exist (the producer or a worker creates it)"
			rep.Lanes = append(rep.Lanes, ls)
			continue
		}
		if c, ok := q.(queue.Counter); !ok {
			ls.Note = fmt.Sprintf("this queue (%T) cannot count its messages", q)
		} else if n, err := c.Counts(ctx); err != nil {
			ls.Note, rep.Failed = err.Error(), true
		} else {
			ls.Messages = &n
			rep.Backlog += n.Total()
		}
		if d, ok := q.(queue.DeadLetterer); !ok {
			ls.DLQNote = fmt.Sprintf("this queue (%T) cannot look into a dead-letter queue", q)
		} else if n, err := d.DeadLetterCounts(ctx); errors.Is(err, queue.ErrNoDeadLetterQueue) {
			ls.DLQNote = "none: the queue has no redrive policy"
		} else if err != nil {
			ls.DLQNote, rep.Failed = err.Error(), true
		} else {
			ls.DLQ = &n
		}
		rep.Lanes = append(rep.Lanes, ls)
	}
	rep.Store = s.readStore(ctx, now, &rep.Failed)
	return rep
}

func (s *statusSource) readStore(ctx context.Context, now time.Time, failed *bool) storeStatus {
	ss := storeStatus{URL: s.storeURL}
	if s.staleAfter > 0 {
		ss.StaleAfter = s.staleAfter.String()
	}
	if s.st == nil {
		ss.Note = "no store yet: the file does not exist (a worker creates it)"
		return ss
	}
	c, ok := s.st.(store.ArtistCounter)
	if !ok {
		ss.Note = fmt.Sprintf("this store (%T) cannot count its artists cheaply", s.st)
		return ss
	}
	n, err := c.CountArtistsBy(ctx, now.Add(-s.staleAfter))
	if err != nil {
		ss.Note, *failed = err.Error(), true
		return ss
	}
	ss.Artists, ss.Approximate = &n.Total, n.Approximate
	if !n.Exact {
		ss.Note = "DynamoDB's ItemCount of the artists table, which it updates about every 6 hours; " +
			"by status, stale and failing are not counted, which would read the whole table " +
			"(reprocess --dry-run --stale-after DURATION counts the stale ones by reading it)"
		return ss
	}
	ss.ByStatus = map[string]int{}
	for st, k := range n.ByStatus {
		ss.ByStatus[string(st)] = k
	}
	ss.Failing = &n.Failing
	if s.staleAfter > 0 {
		ss.Stale = &n.Stale
	}
	return ss
}

// writeStatus prints a report as a table.
func writeStatus(w io.Writer, rep statusReport) {
	fmt.Fprintf(w, "status at %s\n", rep.Time.Format(time.RFC3339))
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "lane\tvisible\tin flight\tdelayed\tqueue")
	approx := false
	for _, l := range rep.Lanes {
		approx = approx || l.Approximate && l.Messages != nil
		writeCounts(tw, l.Lane, l.Messages, l.QueueURL+notePart(l.Note))
		writeCounts(tw, l.Lane+" dlq", l.DLQ, notePart(l.DLQNote))
	}
	tw.Flush()
	if approx {
		fmt.Fprintln(w, "(SQS's counts are approximate)")
	}
	s := rep.Store
	switch {
	case s.Artists == nil:
		fmt.Fprintf(w, "store %s: %s\n", s.URL, s.Note)
	case s.Approximate:
		fmt.Fprintf(w, "store %s: about %d artists (approximate: %s)\n", s.URL, *s.Artists, s.Note)
	default:
		fmt.Fprintf(w, "store %s: %d artists: %d ok, %d not_found", s.URL, *s.Artists, s.ByStatus[string(store.StatusOK)], s.ByStatus[string(store.StatusNotFound)])
		if s.Stale != nil {
			fmt.Fprintf(w, "; %d fetched more than %s ago", *s.Stale, s.StaleAfter)
		}
		if s.Failing != nil {
			fmt.Fprintf(w, "; %d with a failure recorded since their last fetch", *s.Failing)
		}
		fmt.Fprintln(w)
	}
	if rep.DrainPerSecond != nil {
		fmt.Fprintf(w, "backlog %d, drain %s over the last minute, %s\n", rep.Backlog, perSecond(*rep.DrainPerSecond), etaText(rep))
	}
}

func notePart(note string) string {
	if note == "" {
		return ""
	}
	return " (" + note + ")"
}

func writeCounts(tw io.Writer, name string, c *queue.Counts, after string) {
	if c == nil {
		fmt.Fprintf(tw, "%s\t-\t-\t-\t%s\n", name, strings.TrimPrefix(after, " "))
		return
	}
	fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%s\n", name, c.Visible, c.InFlight, c.Delayed, strings.TrimPrefix(after, " "))
}

// statusLine is a report in one plain line, for --watch off a terminal.
func statusLine(rep statusReport) string {
	var b strings.Builder
	b.WriteString(rep.Time.Format(time.RFC3339))
	for _, l := range rep.Lanes {
		if l.Messages != nil {
			fmt.Fprintf(&b, " %s %d visible %d in flight %d delayed;", l.Lane, l.Messages.Visible, l.Messages.InFlight, l.Messages.Delayed)
		} else {
			fmt.Fprintf(&b, " %s ?;", l.Lane)
		}
		if l.DLQ != nil {
			fmt.Fprintf(&b, " %s dlq %d;", l.Lane, l.DLQ.Total())
		}
	}
	if a := rep.Store.Artists; a != nil {
		approx := ""
		if rep.Store.Approximate {
			approx = "about "
		}
		fmt.Fprintf(&b, " store %s%d artists;", approx, *a)
	}
	fmt.Fprintf(&b, " backlog %d", rep.Backlog)
	if rep.DrainPerSecond != nil {
		fmt.Fprintf(&b, ", drain %s, %s", perSecond(*rep.DrainPerSecond), etaText(rep))
	}
	if rep.Failed {
		b.WriteString(" (some counts failed: see status without --watch)")
	}
	return b.String()
}

// progressBar shows how much of the largest backlog seen is drained.
func progressBar(rep statusReport, peak int) string {
	const width = 30
	done := peak - rep.Backlog
	filled := 0
	if peak > 0 {
		filled = min(width, max(0, done*width/peak))
	}
	line := fmt.Sprintf("[%s%s] %d of %d drained, %d left", strings.Repeat("#", filled), strings.Repeat(".", width-filled), max(done, 0), peak, rep.Backlog)
	if rep.DrainPerSecond != nil {
		line += fmt.Sprintf("  %s  %s", perSecond(*rep.DrainPerSecond), etaText(rep))
	}
	return line
}

func perSecond(r float64) string { return fmt.Sprintf("%.1f/s", r) }

func etaText(rep statusReport) string {
	switch {
	case rep.Backlog == 0:
		return "empty"
	case rep.ETASeconds != nil && *rep.ETASeconds < 1:
		return "empty in under a second"
	case rep.ETASeconds != nil:
		return "empty in about " + (time.Duration(*rep.ETASeconds * float64(time.Second))).Round(time.Second).String()
	}
	return "not draining: no estimate"
}

// etaSeconds is how long backlog takes to drain at rate a second; ok is
// false when it does not drain.
func etaSeconds(backlog int, rate float64) (float64, bool) {
	if backlog == 0 {
		return 0, true
	}
	if rate <= 0 {
		return 0, false
	}
	return float64(backlog) / rate, true
}

// drainMeter measures how fast a backlog falls over a window.
type drainMeter struct {
	window  time.Duration
	samples []drainSample
}

type drainSample struct {
	at      time.Time
	backlog int
}

// add records the backlog at a time, forgetting what is older than the
// window (keeping the newest sample before it, so that the rate spans the
// whole window).
func (m *drainMeter) add(at time.Time, backlog int) {
	m.samples = append(m.samples, drainSample{at, backlog})
	cut := 0
	for cut+1 < len(m.samples) && !m.samples[cut+1].at.After(at.Add(-m.window)) {
		cut++
	}
	m.samples = m.samples[cut:]
}

// rate is the backlog's fall a second between the oldest sample kept and
// the newest (negative when it grows); ok is false with fewer than two.
func (m *drainMeter) rate() (float64, bool) {
	if len(m.samples) < 2 {
		return 0, false
	}
	first, last := m.samples[0], m.samples[len(m.samples)-1]
	dt := last.at.Sub(first.at).Seconds()
	if dt <= 0 {
		return 0, false
	}
	return float64(first.backlog-last.backlog) / dt, true
}
