package producercmd

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"time"

	"github.com/sixpotify/top-tracks/internal/artistid"
	"github.com/sixpotify/top-tracks/internal/backend"
	"github.com/sixpotify/top-tracks/internal/backend/stores"
	"github.com/sixpotify/top-tracks/internal/cli"
	"github.com/sixpotify/top-tracks/internal/queue/sqlitequeue"
	"github.com/sixpotify/top-tracks/internal/store"
	"github.com/sixpotify/top-tracks/internal/store/sqlitestore"
	"github.com/sixpotify/top-tracks/producer"
	"github.com/sixpotify/top-tracks/producer/asker"
)

// defaultWaitTimeout is how long enqueue --wait waits when --wait-timeout
// is not given.
const defaultWaitTimeout = 30 * time.Second

// waitFlags are enqueue's flags for --wait.
type waitFlags struct {
	Wait         bool          `help:"Enqueue on the chatbot's lane and wait until the store holds an answer newer than the request for each artist; print each artist's tracks as they arrive."`
	WaitTimeout  time.Duration `name:"wait-timeout" placeholder:"DURATION" help:"With --wait: how long to wait for every answer (Go duration; default 30s)."`
	JSON         bool          `name:"json" help:"With --wait: print one JSON object per artist per line."`
	StoreURL     string        `name:"store-url" envvar:"STORE_URL" default:"${embedded_url}" help:"With --wait: the store the worker writes, dynamodb:TABLE or sqlite:PATH."`
	ArtistsTable string        `name:"artists-table" envvar:"ARTISTS_TABLE" default:"${artists_table}" help:"With --wait: the DynamoDB artists table."`
	FreshFor     time.Duration `name:"fresh-for" envvar:"FRESH_FOR" default:"${fresh_for}" help:"With --wait: an answer fetched less than this long ago is printed at once, with no message (the worker's FRESH_FOR; 0: always enqueue)."`
}

// given reports whether the flag was on the command line.
func given(p *cli.Parsed, flag string) bool {
	for _, tr := range p.Ctx.Path {
		if tr.Flag != nil && tr.Flag.Name == flag {
			return true
		}
	}
	return false
}

// checkNoWait refuses the flags that mean something only with --wait.
func (c *enqueueCmd) checkNoWait(p *cli.Parsed) error {
	for _, f := range []string{"wait-timeout", "json"} {
		if given(p, f) {
			return cli.Usage(fmt.Errorf("--%s: only with --wait", f))
		}
	}
	return nil
}

func (c *enqueueCmd) runWait(ctx context.Context, u string, timeout time.Duration, in inputs, stdout, stderr io.Writer) error {
	ids, rejected, rejectedInputs, err := c.waitInputs(in.files)
	if err != nil {
		return err
	}
	freshFor := c.FreshFor
	if freshFor == 0 {
		freshFor = -1 // always enqueue
	}
	a, err := asker.Open(ctx, asker.Config{
		QueueURL: u, StoreURL: c.StoreURL, ArtistsTable: c.ArtistsTable,
		Producer: producer.Options{Market: in.market, Force: c.Force},
		Ask:      producer.AskOptions{FreshFor: freshFor},
	})
	if err != nil {
		return err
	}
	defer a.Close()

	start := time.Now()
	wctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	out := &replyPrinter{w: stdout, json: c.JSON}
	for i, r := range rejected {
		out.rejected(rejectedInputs[i], r)
	}
	var t waitTally
	a.AskEach(wctx, ids, func(r producer.Reply) { t.add(r, timeout, out) })
	if t.printErr != nil {
		return fmt.Errorf("write the answers: %w", t.printErr)
	}
	summary := stdout
	if c.JSON {
		summary = stderr // standard output holds JSON lines only
	}
	fmt.Fprintf(summary, "answered %d of %d artists in %s (%d from the store, %d fetched now); %d not answered, %d rejected\n",
		t.answered, len(ids)-countDuplicates(ids), time.Since(start).Round(time.Millisecond), t.fromStore, t.answered-t.fromStore, len(t.unanswered), len(rejected))
	return errors.Join(append(rejected, t.unanswered...)...)
}

// waitTally counts the replies of enqueue --wait as they are printed.
type waitTally struct {
	answered, fromStore int
	unanswered          []error
	printErr            error
}

func (t *waitTally) add(r producer.Reply, timeout time.Duration, out *replyPrinter) {
	switch {
	case r.Err == nil:
		t.answered++
		if !r.Answer.Enqueued {
			t.fromStore++
		}
	case errors.Is(r.Err, producer.ErrNoAnswer) && errors.Is(r.Err, context.DeadlineExceeded):
		t.unanswered = append(t.unanswered, fmt.Errorf("no answer for %s within %v (it stays enqueued; the worker will still store it)", r.ArtistID, timeout))
	default:
		t.unanswered = append(t.unanswered, fmt.Errorf("no answer for %s: %w", r.ArtistID, r.Err))
	}
	if err := out.reply(r); err != nil && t.printErr == nil {
		t.printErr = err
	}
}

// checkWait checks --wait's flags and variables, and returns the wait and
// the chatbot lane's URL.
func (c *enqueueCmd) checkWait(g *grammar, p *cli.Parsed) (timeout time.Duration, queueURL string, err error) {
	if c.Bulk {
		return 0, "", cli.Usage(errors.New("--bulk: --wait asks on the chatbot's lane (QUEUE_URL); leave --bulk out"))
	}
	timeout = c.WaitTimeout
	switch {
	case !given(p, "wait-timeout"):
		timeout = defaultWaitTimeout
	case timeout <= 0:
		return 0, "", cli.Usage(fmt.Errorf("--wait-timeout: %v is not a positive duration (examples: 10s, 2m)", timeout))
	}
	if c.FreshFor < 0 {
		return 0, "", cli.VarErrorf("FRESH_FOR", "%v is negative", c.FreshFor)
	}
	u, err := g.lane(false, false)
	if err != nil {
		return 0, "", err
	}
	if err := checkStoreURL(c.StoreURL); err != nil {
		return 0, "", err
	}
	// A store that does not exist is a typo, unless it is the queue's own
	// file (the embedded default), which opening the queue creates.
	if !sameFile(u, c.StoreURL) {
		if err := stores.Exists(c.StoreURL); err != nil {
			return 0, "", cli.VarErrorf("STORE_URL", "%v", err)
		}
	}
	return timeout, u, nil
}

// waitInputs reads the artists named, first of all, so that a rejection is
// named by its argument or line: the IDs, and the rejected inputs with why.
func (c *enqueueCmd) waitInputs(files []namedReader) (ids []string, rejected []error, rejectedInputs []string, err error) {
	var readErr error
	sources := []source{{start: 1}}
	pos := 0
	for ref := range artists(c.Artists, files, &sources, &readErr) {
		pos++
		if ref == "" {
			continue
		}
		id, err := artistid.Parse(ref)
		if err != nil {
			rejected = append(rejected, rejectedErr(ref, where(sources, pos), err))
			rejectedInputs = append(rejectedInputs, ref)
			continue
		}
		ids = append(ids, id)
	}
	if readErr != nil {
		return nil, nil, nil, fmt.Errorf("-f: read artists: %w", readErr)
	}
	return ids, rejected, rejectedInputs, nil
}

// sameFile reports whether the queue and store URLs name one SQLite file.
func sameFile(queueURL, storeURL string) bool {
	if !backend.IsSQLite(queueURL) || !backend.IsSQLite(storeURL) {
		return false
	}
	qp, _, err1 := sqlitequeue.ParseURL(queueURL)
	sp, err2 := sqlitestore.ParseURL(storeURL)
	return err1 == nil && err2 == nil && filepath.Clean(qp) == filepath.Clean(sp)
}

func countDuplicates(ids []string) int {
	seen := make(map[string]bool, len(ids))
	n := 0
	for _, id := range ids {
		if seen[id] {
			n++
		}
		seen[id] = true
	}
	return n
}

// replyPrinter prints each artist's reply as it arrives: its tracks (rank,
// name, popularity) as text, or one JSON object a line.
type replyPrinter struct {
	w    io.Writer
	json bool
}

// jsonReply is the --json line of one artist.
type jsonReply struct {
	ArtistID  string      `json:"artist_id,omitempty"`
	Input     string      `json:"input,omitempty"`
	Status    string      `json:"status"` // ok, not_found, no_answer, rejected
	Market    string      `json:"market,omitempty"`
	FetchedAt string      `json:"fetched_at,omitempty"`
	Enqueued  *bool       `json:"enqueued,omitempty"`
	Tracks    []jsonTrack `json:"tracks,omitempty"`
	Error     string      `json:"error,omitempty"`
}

type jsonTrack struct {
	Rank       int    `json:"rank"`
	ID         string `json:"id"`
	Name       string `json:"name"`
	Popularity *int   `json:"popularity,omitempty"` // absent when Spotify left it out
	URI        string `json:"uri"`
}

func (p *replyPrinter) rejected(input string, err error) {
	if p.json {
		_ = json.NewEncoder(p.w).Encode(jsonReply{Input: clipInput(input), Status: "rejected", Error: err.Error()})
	}
}

func (p *replyPrinter) reply(r producer.Reply) error {
	if p.json {
		return json.NewEncoder(p.w).Encode(toJSON(r))
	}
	if r.Err != nil {
		return nil // named on standard error at the end
	}
	a := r.Answer
	when := a.FetchedAt.UTC().Format(store.TimeFormat)
	if a.NotFound() {
		_, err := fmt.Fprintf(p.w, "%s: not_found: Spotify does not know this artist (asked %s)\n", a.ArtistID, when)
		return err
	}
	from := "fetched now"
	if !a.Enqueued {
		from = "from the store"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s: %d tracks, market %s, fetched %s (%s)\n", a.ArtistID, len(a.Tracks), a.Market, when, from)
	for _, t := range a.Tracks {
		if t.Popularity != nil {
			fmt.Fprintf(&b, "%4d  %s  (popularity %d)\n", t.Rank, t.Name, *t.Popularity)
		} else {
			fmt.Fprintf(&b, "%4d  %s\n", t.Rank, t.Name)
		}
	}
	_, err := io.WriteString(p.w, b.String())
	return err
}

func toJSON(r producer.Reply) jsonReply {
	if r.Err != nil {
		status := "no_answer"
		if r.ArtistID == "" {
			status = "rejected"
		}
		return jsonReply{ArtistID: r.ArtistID, Input: r.Input, Status: status, Error: r.Err.Error()}
	}
	a := r.Answer
	j := jsonReply{ArtistID: a.ArtistID, Status: string(a.Status), Market: a.Market,
		FetchedAt: a.FetchedAt.UTC().Format(store.TimeFormat), Enqueued: &a.Enqueued}
	for _, t := range a.Tracks {
		j.Tracks = append(j.Tracks, jsonTrack{Rank: t.Rank, ID: t.ID, Name: t.Name, Popularity: t.Popularity, URI: t.URI})
	}
	return j
}

// checkStoreURL reports, as STORE_URL's usage error, a store URL that is
// empty or of no form the store openers know.
func checkStoreURL(u string) error {
	if u == "" {
		return cli.VarErrorf("STORE_URL", "is empty")
	}
	if err := stores.ValidateURL(u); err != nil {
		return cli.VarErrorf("STORE_URL", "%v", err)
	}
	return nil
}
