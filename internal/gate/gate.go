// Package gate is the one owner of whether this process may call Spotify
// now. Every Spotify call passes it, and it alone decides:
//
//   - the rate: a token bucket (golang.org/x/time/rate) whose rate is
//     learnt from Spotify's answers, never from a configured window (see
//     quota.go), under the ceiling SPOTIFY_RATE;
//   - the cooldown: a 429 pauses every caller until its Retry-After has
//     passed, so that nothing is sent inside it, and after the pause one call
//     goes first and the rest wait for its answer;
//   - the refusal pause: a 403 for top-tracks, or rejected credentials, pause
//     every call, since every artist would fail the same way;
//   - the outage breaker: calls that fail for reasons that are not the
//     artist's (transport errors, timeouts, 5xx, a token endpoint that does
//     not answer, DynamoDB errors reported with Report) across several
//     artists in a row open it; then one probe at a time, with capped
//     exponential backoff, tests for recovery, and the first success closes
//     it;
//   - lane priority: chatbot callers go first, and the bulk lane takes what
//     they leave: the whole rate during a backfill alone; while the chatbot's
//     lane is served too, the two keep a tenth of the rate clear of the
//     quota's line once it is found, and look no higher (see admit). The
//     bulk lane also takes at most BulkShare of a worker's slots.
//
// The protocol is one call and one report: Wait lets a call through and
// returns done, which the caller calls exactly once with the call's Outcome.
// A pause longer than the caller should wait holding its message is not
// slept through: Wait returns a *PausedError saying until when, and the
// caller gives its work back without spending a delivery.
package gate

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/sixpotify/top-tracks/internal/ctxsleep"
)

// Fault is what an Outcome says about the app's standing with Spotify.
type Fault int

const (
	// Answered: Spotify answered (200, 404, 400, or a 401 to a stale token).
	Answered Fault = iota
	// RateLimited: 429.
	RateLimited
	// Forbidden: 403 for top-tracks.
	Forbidden
	// Unauthorized: the credentials were rejected (by the token endpoint, or
	// a 401 to a fresh token).
	Unauthorized
	// Failed: no usable answer, for a reason that is not the artist's: a
	// transport error, a timeout, a 5xx, a malformed answer, a token
	// endpoint that does not answer.
	Failed
	// Abandoned: the caller gave up (its context ended); nothing is learnt.
	Abandoned
	// Unsent: the caller did not send the call after all, since a pause
	// began after Wait let it through (see StillClear); nothing is learnt,
	// and the caller waits again.
	Unsent
)

// Outcome is how one call that Wait let through went.
type Outcome struct {
	Fault      Fault
	Status     int           // the HTTP status; 0 when no answer came
	RetryAfter time.Duration // of a 429 (0: none sent)
	Reason     string        // Spotify's reason, such as QUOTA_EXCEEDED
	Key        string        // the artist, to tell one artist's failures from an outage's
	Err        error         // for Failed: why
}

// Cause names what an outage is of.
type Cause string

const (
	CauseSpotify Cause = "spotify" // the Web API or its token endpoint
	CauseStore   Cause = "store"   // DynamoDB (or the embedded store)
)

// Pause reasons, in PausedError and Ready.
const (
	ReasonCooldown = "cooldown" // a 429's Retry-After
	ReasonRefused  = "refused"  // 403, or rejected credentials
	ReasonOutage   = "outage"   // the breaker is open
)

// PausedError is Wait's answer during a pause longer than the caller should
// wait: give the work back until Until.
type PausedError struct {
	Reason string
	Until  time.Time
	Detail string
}

func (e *PausedError) Error() string {
	return fmt.Sprintf("not calling Spotify until %s: %s", e.Until.UTC().Format(time.RFC3339), e.Detail)
}

// Priority is a lane's place at the gate.
type Priority int

const (
	Chatbot Priority = iota // served first
	Bulk                    // what chatbot callers leave (see Options.BulkShare)
)

type priorityKey struct{}

// WithPriority marks ctx's calls with p.
func WithPriority(ctx context.Context, p Priority) context.Context {
	return context.WithValue(ctx, priorityKey{}, p)
}

func priorityOf(ctx context.Context) Priority {
	p, _ := ctx.Value(priorityKey{}).(Priority)
	return p
}

// Options configure a Gate. The zero value of each field means its default.
type Options struct {
	// Rate is the most calls a second (SPOTIFY_RATE); 0 or less: unlimited.
	Rate float64
	// Fixed keeps the rate at Rate instead of learning the quota.
	Fixed bool
	// BulkShare is the most of the worker's slots the bulk lane may take
	// (default 0.75). Of the rate it takes what chatbot calls leave (see
	// admit).
	BulkShare float64
	// MaxWait is the longest pause Wait sleeps through; a longer one is
	// answered with a *PausedError (default 30s).
	MaxWait time.Duration
	// ForbiddenPause after a 403 (default 5m); CredentialsPause after
	// rejected credentials, which a token-service blip can also cause
	// (default 15s).
	ForbiddenPause, CredentialsPause time.Duration
	// Breaker: BreakerFailures failures in a row of one cause, over at least
	// BreakerArtists artists, open it (defaults 5 and 3); probes follow
	// after ProbeBase, doubling to ProbeCap (defaults 1s and 1m).
	BreakerFailures, BreakerArtists int
	ProbeBase, ProbeCap             time.Duration
	// OnEvent is told each pause and each opening and closing of the
	// breaker once, outside the gate's lock, to log and count them.
	OnEvent func(Event)
	// Clock returns the time (default time.Now).
	Clock func() time.Time
}

func (o *Options) setDefaults() {
	if o.BulkShare <= 0 || o.BulkShare > 1 {
		o.BulkShare = 0.75
	}
	if o.MaxWait <= 0 {
		o.MaxWait = 30 * time.Second
	}
	if o.ForbiddenPause <= 0 {
		o.ForbiddenPause = 5 * time.Minute
	}
	if o.CredentialsPause <= 0 {
		o.CredentialsPause = 15 * time.Second
	}
	if o.BreakerFailures <= 0 {
		o.BreakerFailures = 5
	}
	if o.BreakerArtists <= 0 {
		o.BreakerArtists = 3
	}
	if o.ProbeBase <= 0 {
		o.ProbeBase = time.Second
	}
	if o.ProbeCap <= 0 {
		o.ProbeCap = time.Minute
	}
	if o.Clock == nil {
		o.Clock = time.Now
	}
}

// EventKind tells what an Event reports.
type EventKind int

const (
	EventCooldown      EventKind = iota // a 429 paused every call
	EventRefused                        // a 403 or rejected credentials paused every call
	EventBreakerOpened                  // an outage opened the breaker
	EventBreakerClosed                  // a success closed it
)

// Event is one change of the gate's state worth logging once.
type Event struct {
	Kind       EventKind
	Until      time.Time     // end of the pause (cooldown, refusal)
	RetryAfter time.Duration // of the 429 (cooldown)
	Reason     string        // Spotify's reason (cooldown)
	Cause      Cause         // of the outage (breaker)
	Err        error         // the refusal's or the outage's last error
	Rate       float64       // the rate after a cooldown, calls/s
	Lasted     time.Duration // how long the breaker was open (closed)
}

// Gate is safe for concurrent use. Create one with New.
type Gate struct {
	opts Options
	lim  *pacer // every call
	bulk *pacer // the bulk lane's share

	mu      sync.Mutex
	quota   *quota // nil: a fixed or unlimited rate
	cooling time.Time
	refused time.Time
	refusal error

	// After a pause, one call goes first; the rest wait for its answer.
	probing   bool
	probeOut  bool
	probeDone chan struct{}

	urgent     int // chatbot callers waiting
	urgentDone chan struct{}
	bulkTurn   chan struct{} // one bulk caller at a time at the pacers

	// When each lane last sent a call; mixed: both did within laneMemory.
	lastChatbot, lastBulk time.Time
	mixed                 bool

	breaker breaker
}

// New returns a Gate for opts.
func New(opts Options) *Gate {
	opts.setDefaults()
	limit := rate.Limit(opts.Rate)
	if opts.Rate <= 0 {
		limit, opts.Fixed = rate.Inf, true
	}
	g := &Gate{
		opts:       opts,
		lim:        newPacer(limit),
		bulk:       newPacer(limit),
		probing:    true,
		probeDone:  make(chan struct{}),
		urgentDone: make(chan struct{}),
		bulkTurn:   make(chan struct{}, 1),
	}
	if !opts.Fixed {
		g.quota = newQuota(opts.Rate, opts.Clock())
	}
	g.breaker.init(&g.opts)
	return g
}

// OnEvent sets f to be told each pause and each opening and closing of the
// breaker once (replacing Options.OnEvent).
func (g *Gate) OnEvent(f func(Event)) {
	g.mu.Lock()
	g.opts.OnEvent = f
	g.mu.Unlock()
}

// BulkShare is the most of a worker's slots the bulk lane may take.
func (g *Gate) BulkShare() float64 { return g.opts.BulkShare }

// Wait blocks until the caller may send one call, and returns done, to be
// called exactly once with how the call went. It sleeps through a cooldown no
// longer than MaxWait; during a longer one, a refusal pause, or an open
// breaker (unless ctx is the probe's), it returns a *PausedError at once. It
// returns ctx's error if ctx ends first.
func (g *Gate) Wait(ctx context.Context) (done func(Outcome), err error) {
	bulk := priorityOf(ctx) == Bulk
	if !bulk {
		g.mu.Lock()
		g.urgent++
		g.mu.Unlock()
		defer func() {
			g.mu.Lock()
			if g.urgent--; g.urgent == 0 {
				close(g.urgentDone)
				g.urgentDone = make(chan struct{})
			}
			g.mu.Unlock()
		}()
	}
	probe := probeOf(ctx)
	for {
		if err := g.sleepPauses(ctx, probe); err != nil {
			return nil, err
		}
		release, err := g.laneTurn(ctx, bulk)
		if err != nil {
			return nil, err
		}
		first, err := g.takeTurn(ctx)
		if err == nil {
			if err = g.lim.Wait(ctx); err != nil {
				g.endTurn(first, false)
			}
		}
		if err != nil {
			release()
			return nil, err
		}
		// A pause may have begun while this caller waited for the rate: then
		// the token is spent, and the caller waits again.
		admitted := g.admit(probe, bulk)
		release()
		if admitted {
			return g.doneFunc(first, probe), nil
		}
		g.endTurn(first, false)
	}
}

// laneTurn is a bulk caller's wait before the rate's: its lane's turn, then
// no chatbot caller waiting, then the bulk lane's pacer. It holds the turn
// until release: so at most one bulk caller stands at the rate's pacer ahead
// of a chatbot caller that arrives, which then waits at most about one
// interval, whatever the bulk backlog. A chatbot caller has nothing to wait
// for here.
func (g *Gate) laneTurn(ctx context.Context, bulk bool) (release func(), err error) {
	if !bulk {
		return func() {}, nil
	}
	select {
	case g.bulkTurn <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	release = func() { <-g.bulkTurn }
	if err := g.yield(ctx); err != nil {
		release()
		return nil, err
	}
	if err := g.bulk.Wait(ctx); err != nil {
		release()
		return nil, err
	}
	return release, nil
}

// sleepPauses returns once no pause holds the caller back, sleeping through
// a short cooldown and answering a *PausedError for anything longer.
func (g *Gate) sleepPauses(ctx context.Context, probe *Probe) error {
	for {
		g.mu.Lock()
		now := g.opts.Clock()
		var perr *PausedError
		var wait time.Duration
		switch {
		case g.refused.After(now):
			perr = &PausedError{Reason: ReasonRefused, Until: g.refused, Detail: errorText(g.refusal)}
		case !g.breaker.passes(probe):
			perr = &PausedError{Reason: ReasonOutage, Until: g.breaker.next(now), Detail: g.breaker.describe(now)}
		case g.cooling.After(now):
			if wait = g.cooling.Sub(now); wait > g.opts.MaxWait {
				perr = &PausedError{Reason: ReasonCooldown, Until: g.cooling, Detail: "rate limited by Spotify"}
			}
		}
		g.mu.Unlock()
		if perr != nil {
			return perr
		}
		if wait <= 0 {
			return ctx.Err()
		}
		if !ctxsleep.For(ctx, wait) {
			return ctx.Err()
		}
	}
}

// admit reports whether the caller may send now: no pause began while it
// waited for the rate. It records the call.
//
// It also keeps the lanes' mode. A backfill alone takes the whole rate, and
// the quota is learnt as for one lane. While the chatbot's lane is served
// too (both lanes sent within laneMemory) and the quota's line is found,
// the two together keep to mixedShare of the rate, the chatbot's calls
// first, and the quota does not probe above the line: a rate at the line
// draws a 429 now and then, a probe above it draws one for sure, and each
// pauses the user's call with the backfill's for a whole Retry-After. The
// headroom keeps the process clear of the line while users ask. A search
// that has not found the line yet (a cold start, or after the quota moved)
// goes on at the whole rate, since what it finds the backfill keeps; a 429
// still cuts the rate; and probing resumes once the chatbot's lane has
// been quiet for laneMemory.
func (g *Gate) admit(probe *Probe, bulk bool) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	now := g.opts.Clock()
	if !g.clear(now) {
		return false
	}
	if !g.breaker.passes(probe) {
		return false
	}
	if bulk {
		g.lastBulk = now
	} else {
		g.lastChatbot = now
		g.bulk.Take() // the bulk lane gets what the chatbot's leaves
	}
	g.mixed = now.Sub(g.lastChatbot) < laneMemory && now.Sub(g.lastBulk) < laneMemory
	// setRate applies the mode to the bulk pacer. A fixed rate has no
	// quota line to keep clear of, so its bulk pacer never changes.
	if g.quota != nil {
		g.quota.noProbe = g.mixed
		g.setRate(g.quota.onSend(now))
	}
	return true
}

const (
	// laneMemory: a lane that sent within it is being served.
	laneMemory = 30 * time.Second
	// mixedShare: while both lanes are served and the line is found, the
	// calls of both keep to this share of the rate (the bulk lane waits for
	// it), clear of the line.
	mixedShare = 0.9
)

// takeTurn holds the caller while the first call after a pause is out, and
// makes the caller that call when one is needed.
func (g *Gate) takeTurn(ctx context.Context) (first bool, err error) {
	for {
		g.mu.Lock()
		if !g.probing {
			g.mu.Unlock()
			return false, nil
		}
		if !g.probeOut {
			g.probeOut = true
			g.mu.Unlock()
			return true, nil
		}
		done := g.probeDone
		g.mu.Unlock()
		select {
		case <-done:
		case <-ctx.Done():
			return false, ctx.Err()
		}
	}
}

// endTurn ends the first call's turn; open lets every caller through.
func (g *Gate) endTurn(first, open bool) {
	if !first {
		return
	}
	g.mu.Lock()
	g.finishTurn(open)
	g.mu.Unlock()
}

// finishTurn is endTurn with g.mu held.
func (g *Gate) finishTurn(open bool) {
	g.probeOut = false
	if open {
		g.probing = false
	}
	close(g.probeDone)
	g.probeDone = make(chan struct{})
}

func (g *Gate) doneFunc(first bool, probe *Probe) func(Outcome) {
	var once sync.Once
	return func(o Outcome) { once.Do(func() { g.report(first, probe, o) }) }
}

// report takes one call's outcome: it is decided here, once.
func (g *Gate) report(first bool, probe *Probe, o Outcome) {
	var events []Event
	g.mu.Lock()
	now := g.opts.Clock()
	if first {
		// An answer opens the way; a 429 or no answer lets the next caller
		// go first instead.
		g.finishTurn(o.Fault != RateLimited && o.Fault != Failed && o.Fault != Abandoned && o.Fault != Unsent)
	}
	switch o.Fault {
	case RateLimited:
		ra := max(o.RetryAfter, time.Second)
		started := !g.cooling.After(now)
		if end := now.Add(ra); end.After(g.cooling) {
			g.cooling = end
		}
		if started {
			g.probing = true
		}
		if g.quota != nil {
			g.setRate(g.quota.on429(now, started, ra, o.Reason))
		}
		if started {
			events = append(events, Event{Kind: EventCooldown, Until: g.cooling, RetryAfter: ra, Reason: o.Reason, Rate: g.Rate()})
		}
		events = append(events, g.breaker.success(CauseSpotify, now)...)
	case Forbidden, Unauthorized:
		pause := g.opts.ForbiddenPause
		if o.Fault == Unauthorized {
			pause = g.opts.CredentialsPause
		}
		started := !g.refused.After(now)
		if end := now.Add(pause); end.After(g.refused) {
			g.refused = end
		}
		g.refusal = o.Err
		if started {
			events = append(events, Event{Kind: EventRefused, Until: g.refused, Err: o.Err})
		}
		events = append(events, g.breaker.success(CauseSpotify, now)...)
	case Failed:
		events = append(events, g.breaker.failure(CauseSpotify, o.Key, o.Err, probe, now)...)
	case Abandoned, Unsent:
	default:
		events = append(events, g.breaker.success(CauseSpotify, now)...)
	}
	g.mu.Unlock()
	g.emit(events)
}

// Report tells the breaker how work that is not a Spotify call went: err nil
// for a success, else a failure of cause for the artist key that is not the
// artist's own fault (an error of DynamoDB, say, after its SDK's retries).
// ctx is the work's: a probe's (see Probe.Context) judges the probe.
func (g *Gate) Report(ctx context.Context, cause Cause, key string, err error) {
	g.mu.Lock()
	now := g.opts.Clock()
	var events []Event
	if err == nil {
		events = g.breaker.success(cause, now)
	} else {
		events = g.breaker.failure(cause, key, err, probeOf(ctx), now)
	}
	g.mu.Unlock()
	g.emit(events)
}

func (g *Gate) emit(events []Event) {
	if len(events) == 0 {
		return
	}
	g.mu.Lock()
	f := g.opts.OnEvent
	g.mu.Unlock()
	if f == nil {
		return
	}
	for _, e := range events {
		f(e)
	}
}

// setRate changes the rate; g.mu is held.
func (g *Gate) setRate(r float64) {
	g.lim.SetLimit(rate.Limit(r))
	g.setBulk()
}

// setBulk sets the bulk lane's pacer from the rate and the lanes' mode; g.mu
// is held. Every call is counted on it, and bulk callers wait on it.
func (g *Gate) setBulk() {
	r := g.lim.Limit()
	if g.mixed && g.quota != nil && g.quota.found() {
		r *= mixedShare
	}
	g.bulk.SetLimit(r)
}

// yield waits while chatbot callers are waiting.
func (g *Gate) yield(ctx context.Context) error {
	for {
		g.mu.Lock()
		n, done := g.urgent, g.urgentDone
		g.mu.Unlock()
		if n == 0 {
			return nil
		}
		select {
		case <-done:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// pause returns the pause that would meet a call at now, in precedence
// order (a refusal, then an open breaker, then a cooldown): its reason and
// how long it lasts (for an open breaker, until its next probe); "" when
// none. g.mu is held.
func (g *Gate) pause(now time.Time) (reason string, left time.Duration) {
	switch {
	case g.refused.After(now):
		return ReasonRefused, g.refused.Sub(now)
	case g.breaker.open:
		return ReasonOutage, max(g.breaker.next(now).Sub(now), 0)
	case g.cooling.After(now):
		return ReasonCooldown, g.cooling.Sub(now)
	}
	return "", 0
}

// Hold tells a receive loop whether to receive now: wait > 0 means not for
// that long (reason says why). While the breaker is open and a probe is due,
// it hands out the probe: receive one message only, handle it with
// probe.Context, and call probe.End when it is handled. One probe is out at
// a time.
func (g *Gate) Hold() (wait time.Duration, reason string, probe *Probe) {
	g.mu.Lock()
	defer g.mu.Unlock()
	reason, wait = g.pause(g.opts.Clock())
	if reason != ReasonOutage || wait > 0 {
		return wait, reason, nil
	}
	if probe = g.breaker.claim(g); probe == nil {
		return 100 * time.Millisecond, ReasonOutage, nil // one is out
	}
	return 0, ReasonOutage, probe
}

// StillClear reports whether a call Wait let through may still be sent:
// false once a cooldown or a refusal has begun since (Wait lets nothing
// through during one). The caller asks just before the send, after any
// token request, and reports a call it holds back as Unsent. Calls are let
// through concurrently, so one may be on its way to the socket when another
// caller's 429 comes back: without this last look it would be sent inside
// the Retry-After just announced. (One already written to the socket, or
// sent while the 429 was still on the wire, cannot be called back.)
func (g *Gate) StillClear() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.clear(g.opts.Clock())
}

// clear reports whether neither a cooldown nor a refusal holds calls back
// at now. g.mu is held.
func (g *Gate) clear(now time.Time) bool {
	return !g.cooling.After(now) && !g.refused.After(now)
}

// Paused reports how long the pause that would meet a call now lasts, and
// why (0 and "" when none; for an open breaker, until its next probe).
func (g *Gate) Paused() (left time.Duration, reason string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	reason, left = g.pause(g.opts.Clock())
	return left, reason
}

// Ready returns nil when nothing holds calls back, or why.
func (g *Gate) Ready() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	now := g.opts.Clock()
	reason, left := g.pause(now)
	switch reason {
	case ReasonRefused:
		return fmt.Errorf("refused by Spotify (403 for top-tracks, or the app's credentials) for %s more: %s",
			left.Round(time.Second), errorText(g.refusal))
	case ReasonOutage:
		return fmt.Errorf("outage breaker open: %s", g.breaker.describe(now))
	case ReasonCooldown:
		return fmt.Errorf("throttled by Spotify for %s more", left.Round(time.Second))
	}
	return nil
}

// CooldownLeft returns how long the current cooldown still lasts (0: none).
func (g *Gate) CooldownLeft() time.Duration {
	g.mu.Lock()
	defer g.mu.Unlock()
	if d := g.cooling.Sub(g.opts.Clock()); d > 0 {
		return d
	}
	return 0
}

// BreakerOpen reports whether the outage breaker is open.
func (g *Gate) BreakerOpen() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.breaker.open
}

// Rate returns the current rate in calls per second (0: unlimited).
func (g *Gate) Rate() float64 {
	r := g.lim.Limit()
	if r == rate.Inf {
		return 0
	}
	return float64(r)
}

// IsPaused reports whether err is (or wraps) a *PausedError, and returns it.
func IsPaused(err error) (*PausedError, bool) {
	var pe *PausedError
	ok := errors.As(err, &pe)
	return pe, ok
}

func errorText(err error) string {
	if err == nil {
		return "see the log"
	}
	return err.Error()
}
