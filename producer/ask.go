package producer

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/sixpotify/top-tracks/internal/artistid"
	"github.com/sixpotify/top-tracks/internal/ctxsleep"
	"github.com/sixpotify/top-tracks/internal/store"
)

// Aliases of the store's types, so that a chatbot in another module can
// read answers and bring its own Reader.
type (
	// Reader is the read-only side of the store a chatbot needs: the
	// artists row and the artist's tracks. Both store backends are Readers.
	Reader = store.Reader
	// Artist is a row of the artists table.
	Artist = store.Artist
	// Row is one stored track, with its rank.
	Row = store.Row
	// Status is ok, or not_found when Spotify does not know the artist.
	Status = store.Status
)

// The statuses of an answer.
const (
	StatusOK       = store.StatusOK
	StatusNotFound = store.StatusNotFound
)

// ErrInvalidArtist is wrapped by the error of an ask or lookup whose input
// names no artist (not a bare ID, spotify:artist: URI or open.spotify.com
// artist URL). Nothing was sent for it.
var ErrInvalidArtist = artistid.ErrInvalid

// ErrNoAnswer is wrapped by the error of an ask whose context ended before
// the store held an answer. The artist was enqueued: the worker still
// fetches it, and a later Lookup or ask finds the answer.
var ErrNoAnswer = errors.New("no answer yet")

// Answer is what the store holds for an artist: its top tracks by rank, or
// that Spotify does not know it (Status not_found, no tracks).
type Answer struct {
	ArtistID  string
	Market    string
	Status    Status
	FetchedAt time.Time // when Spotify was asked
	Tracks    []Row     // by rank
	// Enqueued says this call enqueued the artist and waited for the
	// worker's answer; false when the store already held a fresh one.
	Enqueued bool
}

// NotFound reports whether Spotify does not know the artist.
func (a Answer) NotFound() bool { return a.Status == StatusNotFound }

// AskOptions tune an Asker. The zero value of every field means its default.
type AskOptions struct {
	// FreshFor is the worker's FRESH_FOR: a stored answer fetched less than
	// this long ago (in the Producer's market, if it names one) is returned
	// at once, without enqueueing. Default 1h; negative: always enqueue.
	// A Producer with Options.Force always enqueues.
	FreshFor time.Duration
	// PollMin and PollMax bound the wait between two reads of the artists
	// row while an ask waits: PollMin first, doubling up to PollMax.
	// Defaults 50ms and 500ms.
	PollMin, PollMax time.Duration
	// Concurrency is the most first reads of the store in flight at once
	// in AskEach (default 16). Waits are not limited: each is one timer.
	Concurrency int
	// Clock tells the time freshness is judged by (default time.Now).
	Clock func() time.Time
}

func (o *AskOptions) setDefaults() {
	if o.FreshFor == 0 {
		o.FreshFor = time.Hour
	}
	if o.PollMin <= 0 {
		o.PollMin = 50 * time.Millisecond
	}
	if o.PollMax <= 0 {
		o.PollMax = 500 * time.Millisecond
	}
	o.PollMax = max(o.PollMax, o.PollMin)
	if o.Concurrency <= 0 {
		o.Concurrency = 16
	}
	if o.Clock == nil {
		o.Clock = time.Now
	}
}

// Asker answers a chatbot's question about an artist in one call: from the
// store when it holds a fresh answer, otherwise by enqueueing the artist on
// the chatbot's lane and waiting for the worker's answer. It is safe for
// concurrent use.
type Asker struct {
	p     *Producer
	r     Reader
	opts  AskOptions
	close func() error
}

// NewAsker returns an Asker that enqueues with p (on the chatbot's lane,
// with p's market and force) and reads answers from r.
func NewAsker(p *Producer, r Reader, opts AskOptions) *Asker {
	opts.setDefaults()
	return &Asker{p: p, r: r, opts: opts, close: func() error { return nil }}
}

// Close releases what the Asker opened: nothing for one from NewAsker (its
// producer and reader stay the caller's); the queue and the store for one
// from asker.Open.
func (a *Asker) Close() error { return a.close() }

// WithClose returns a copy of a whose Close also calls closeFn: for an
// opener (package asker) that hands the Asker what it opened.
func (a *Asker) WithClose(closeFn func() error) *Asker {
	c := *a
	prev := a.close
	c.close = func() error { return errors.Join(closeFn(), prev()) }
	return &c
}

// Lookup returns the answer the store holds for the artist (a bare ID, a
// spotify:artist: URI or an open.spotify.com URL), however old, without
// enqueueing anything; ok is false when the store holds none.
func (a *Asker) Lookup(ctx context.Context, artist string) (ans Answer, ok bool, err error) {
	id, err := artistid.Parse(artist)
	if err != nil {
		return Answer{}, false, err
	}
	art, ok, err := a.r.Artist(ctx, id)
	if err != nil || !ok {
		return Answer{}, false, err
	}
	ans, err = a.answer(ctx, art)
	return ans, err == nil, err
}

// Ask returns the artist's answer. When the store holds a fresh one
// (AskOptions.FreshFor) it is returned at once and nothing is enqueued.
// Otherwise the artist is enqueued on the chatbot's lane and Ask waits,
// reading only the artist's row of the artists table with a backoff
// (PollMin doubling to PollMax), until the store holds an answer it did not
// hold when Ask looked: the ranked tracks, or not_found (Answer.NotFound).
//
// When ctx ends first, the error wraps ErrNoAnswer and ctx's error; the
// artist stays enqueued. An input that names no artist is an error wrapping
// ErrInvalidArtist, and nothing is sent.
func (a *Asker) Ask(ctx context.Context, artist string) (Answer, error) {
	var r Reply
	a.AskEach(ctx, []string{artist}, func(got Reply) { r = got })
	return r.Answer, r.Err
}

// Reply is one artist's outcome of AskEach.
type Reply struct {
	// Input is the artist as given; ArtistID is its ID ("" when the input
	// names no artist).
	Input    string
	ArtistID string
	Answer   Answer
	// Err is nil when the artist was answered (found or not_found).
	Err error
}

// AskEach asks for every artist at once, as Ask asks for one: the fresh
// ones are answered from the store, the others are enqueued together (ten
// to a batch) and waited for. fn is called once per distinct artist (and
// once per input that names no artist) as its reply arrives, from one
// goroutine at a time; AskEach returns after the last call.
func (a *Asker) AskEach(ctx context.Context, artists []string, fn func(Reply)) {
	var mu sync.Mutex
	reply := func(r Reply) {
		mu.Lock()
		defer mu.Unlock()
		fn(r)
	}

	var asks []*ask
	seen := map[string]bool{}
	for _, in := range artists {
		id, err := artistid.Parse(in)
		if err != nil {
			reply(Reply{Input: in, Err: err})
			continue
		}
		if !seen[id] {
			seen[id] = true
			asks = append(asks, &ask{input: in, id: id})
		}
	}

	// The first look: a fresh answer needs no message.
	var g errgroup.Group
	g.SetLimit(a.opts.Concurrency)
	for _, k := range asks {
		g.Go(func() error {
			art, ok, err := a.r.Artist(ctx, k.id)
			switch {
			case err != nil:
				k.done = true
				reply(k.reply(Answer{}, fmt.Errorf("read artist %s: %w", k.id, err)))
			case ok && a.fresh(art):
				k.done = true
				ans, err := a.answer(ctx, art)
				reply(k.reply(ans, err))
			case ok:
				k.had, k.base = true, art.FetchedAt
			}
			return nil
		})
	}
	_ = g.Wait()
	asks = slices.DeleteFunc(asks, func(k *ask) bool { return k.done })
	if len(asks) == 0 {
		return
	}

	// One enqueue for all the others, then one wait each.
	start := time.Now()
	msgs := make([]Message, len(asks))
	for i, k := range asks {
		msgs[i] = Message{ArtistID: k.id, Market: a.p.opts.Market, Force: a.p.opts.Force}
	}
	sum, err := a.p.EnqueueMessages(ctx, slices.Values(msgs))
	if err != nil {
		for _, k := range asks {
			reply(k.reply(Answer{}, fmt.Errorf("artist %s: %w: %w", k.id, ErrNoAnswer, err)))
		}
		return
	}
	unsent := map[string]error{}
	for _, r := range sum.Rejected {
		unsent[r.Input] = r.Err
	}
	for _, f := range sum.Failed {
		unsent[f.ArtistID] = fmt.Errorf("enqueue %s: %w", f.ArtistID, f.Err)
	}
	if p, paused := a.spotifyPaused(ctx); paused {
		// The fleet makes no call before the pause ends: say so at once,
		// rather than wait out the deadline. The artists stay enqueued.
		for _, k := range asks {
			err := unsent[k.id]
			if err == nil {
				err = &SpotifyPausedError{ArtistID: k.id, Until: p.Until, Reason: p.Reason}
			}
			reply(k.reply(Answer{}, err))
		}
		return
	}
	var wg sync.WaitGroup
	for _, k := range asks {
		if err := unsent[k.id]; err != nil {
			reply(k.reply(Answer{}, err))
			continue
		}
		wg.Go(func() {
			ans, err := a.wait(ctx, k, start)
			reply(k.reply(ans, err))
		})
	}
	wg.Wait()
}

// ask is one artist of an AskEach.
type ask struct {
	input, id string
	// had and base: the store held a fetch of the artist at the first look,
	// made at base. An answer is a row fetched after it.
	had  bool
	base time.Time
	done bool
}

func (k *ask) reply(ans Answer, err error) Reply {
	return Reply{Input: k.input, ArtistID: k.id, Answer: ans, Err: err}
}

// fresh reports whether art answers an ask at once.
func (a *Asker) fresh(art Artist) bool {
	return !a.p.opts.Force && a.opts.FreshFor > 0 && a.marketOK(art) &&
		a.opts.Clock().Sub(art.FetchedAt) < a.opts.FreshFor
}

// marketOK reports whether art is in the market asked for: the Producer's,
// or any when it names none (the worker's SPOTIFY_MARKET applies).
func (a *Asker) marketOK(art Artist) bool {
	return a.p.opts.Market == "" || art.Market == a.p.opts.Market
}

// wait reads the artists row, with a backoff, until it holds a fetch made
// after the first look, then reads the tracks. A store error while waiting
// is read again; the last one is told when ctx ends.
func (a *Asker) wait(ctx context.Context, k *ask, start time.Time) (Answer, error) {
	delay := a.opts.PollMin
	var lastErr error
	for {
		if !ctxsleep.For(ctx, delay) {
			err := fmt.Errorf("artist %s: %w (enqueued %s ago; the worker will still store it): %w",
				k.id, ErrNoAnswer, time.Since(start).Round(time.Millisecond), context.Cause(ctx))
			if lastErr != nil {
				err = fmt.Errorf("%w (last store error: %w)", err, lastErr)
			}
			return Answer{}, err
		}
		art, ok, err := a.r.Artist(ctx, k.id)
		switch {
		case err != nil:
			lastErr = err
		case ok && (!k.had || art.FetchedAt.After(k.base)) && a.marketOK(art):
			ans, err := a.answer(ctx, art)
			if err == nil {
				ans.Enqueued = true
				return ans, nil
			}
			lastErr = err
		}
		delay = min(2*delay, a.opts.PollMax)
	}
}

// answer reads the tracks of the fetch art records. In DynamoDB a Save
// writes the tracks before it commits the artists row, so the tracks of a
// Save still in progress may show: when their count is not the row's, the
// row and the tracks are read again (at most three times).
func (a *Asker) answer(ctx context.Context, art Artist) (Answer, error) {
	var rows []Row
	for try := 1; ; try++ {
		if art.Status != StatusOK {
			rows = nil
			break
		}
		var err error
		if rows, err = a.r.Tracks(ctx, art.ArtistID); err != nil {
			return Answer{}, fmt.Errorf("read the tracks of %s: %w", art.ArtistID, err)
		}
		if len(rows) == art.Tracks || try == 3 || !ctxsleep.For(ctx, a.opts.PollMin) {
			break
		}
		next, ok, err := a.r.Artist(ctx, art.ArtistID)
		if err != nil {
			return Answer{}, fmt.Errorf("read artist %s: %w", art.ArtistID, err)
		}
		if ok {
			art = next
		}
	}
	return Answer{ArtistID: art.ArtistID, Market: art.Market, Status: art.Status, FetchedAt: art.FetchedAt, Tracks: rows}, nil
}

// SpotifyPausedError is an ask's answer while the fleet has recorded that
// Spotify paused its calls (its quota spent, or a long Retry-After): the
// artist is enqueued and will be answered once the pause ends, at Until. It
// wraps ErrNoAnswer.
type SpotifyPausedError struct {
	ArtistID string
	Until    time.Time
	Reason   string
}

func (e *SpotifyPausedError) Error() string {
	return fmt.Sprintf("artist %s: Spotify has paused the fleet's calls until %s (%s); the artist is enqueued and will be fetched then",
		e.ArtistID, e.Until.UTC().Format(time.RFC3339), e.Reason)
}

func (e *SpotifyPausedError) Unwrap() error { return ErrNoAnswer }

// pauseReadTimeout bounds the ask's look at the fleet's pause.
const pauseReadTimeout = time.Second

// spotifyPaused reports the fleet's Spotify pause, when the store keeps one
// (store.PauseKeeper) and it has not ended. A store that cannot tell in
// time tells nothing: the ask waits as usual.
func (a *Asker) spotifyPaused(ctx context.Context) (store.SpotifyPause, bool) {
	pk, ok := a.r.(store.PauseKeeper)
	if !ok {
		return store.SpotifyPause{}, false
	}
	ctx, cancel := context.WithTimeout(ctx, pauseReadTimeout)
	defer cancel()
	p, ok, err := pk.SpotifyPause(ctx)
	if err != nil || !ok || !p.Until.After(a.opts.Clock()) {
		return store.SpotifyPause{}, false
	}
	return p, true
}
