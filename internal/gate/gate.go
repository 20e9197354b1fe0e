package gate

import (
	"context"
	"fmt"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/sixpotify/top-tracks/internal/ctxsleep"
)

// Options configure a Gate. The zero value of each field means its default.
type Options struct {
	// Rate is the most calls a second (SPOTIFY_RATE); 0 or less: unlimited.
	Rate float64
	// Fixed keeps the rate at Rate instead of learning the quota.
	Fixed bool
	// BulkShare is the most of the worker's slots the bulk lane may take
	// (default 0.75). Of the rate it takes what chatbot calls leave.
	BulkShare float64
	// MaxWait is the longest pause Wait sleeps through; a longer one is
	// answered with a *PausedError (default 30s).
	MaxWait time.Duration
	// ForbiddenPause after a 403 (default 5m); CredentialsPause after
	// rejected credentials, which a token-service blip can also cause
	// (default 15s).
	ForbiddenPause, CredentialsPause time.Duration
	// Breaker: BreakerFailures failures in a row of one cause, over at least
	// BreakerArtists artists and BreakerSpan with no success, open it
	// (defaults 5, 5 and 1s: a few artists whose broken answers happen to
	// come one after another between others' successes do not); probes
	// follow after ProbeBase, doubling to ProbeCap (defaults 1s and 30s,
	// the rolling window Spotify documents), or to the window Spotify's
	// answers have shown when that is shorter.
	BreakerFailures, BreakerArtists  int
	BreakerSpan, ProbeBase, ProbeCap time.Duration
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
		o.BreakerArtists = 5
	}
	if o.ProbeBase <= 0 {
		o.ProbeBase = time.Second
	}
	if o.ProbeCap <= 0 {
		o.ProbeCap = DefaultProbeCap
	}
	if o.Clock == nil {
		o.Clock = time.Now
	}
}

// EventKind tells what an Event reports.
type EventKind int

const (
	EventCooldown      EventKind = iota // a 429 paused every call (a cooldown or a penalty)
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
	Pause      string        // ReasonCooldown or ReasonPenalty (cooldown)
	Cause      Cause         // of the outage (breaker)
	Err        error         // the refusal's or the outage's last error
	Rate       float64       // the rate after a cooldown, calls/s
	Lasted     time.Duration // how long the breaker was open (closed)
	Blamed     int           // artists whose failures were found their own (closed)
	Shared     bool          // the pause was another process's, imposed (cooldown)
}

// DefaultProbeCap is the longest wait between two probes of an open
// breaker: the rolling window over which Spotify counts an app's calls
// ("a rolling 30 second window", developer.spotify.com's Rate Limits page),
// so that the end of an outage is seen within a window even when the
// answers never showed the window.
const DefaultProbeCap = 30 * time.Second

// Gate joins the parts (see the package comment) under one lock. It is safe
// for concurrent use. Create one with New.
type Gate struct {
	opts Options
	lim  *pacer // every call
	bulk *pacer // the bulk lane's share

	mu      sync.Mutex
	quota   *quota // nil: a fixed or unlimited rate
	pauses  pauses
	lead    lead
	lanes   lanes
	breaker breaker
	blame   blame
	canary  string // the artist Spotify answered with tracks most lately
}

// New returns a Gate for opts.
func New(opts Options) *Gate {
	opts.setDefaults()
	limit := rate.Limit(opts.Rate)
	if opts.Rate <= 0 {
		limit, opts.Fixed = rate.Inf, true
	}
	g := &Gate{
		opts:  opts,
		lim:   newPacer(limit),
		bulk:  newPacer(limit),
		lead:  newLead(),
		lanes: newLanes(),
	}
	if !opts.Fixed {
		g.quota = newQuota(opts.Rate, opts.Clock())
	}
	g.breaker.init(&g.opts)
	if q := g.quota; q != nil {
		g.breaker.window = func() time.Duration { return q.win } // under g.mu, as failure is
	}
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
// longer than MaxWait; during a longer one, a penalty, a refusal, or an open
// breaker (unless ctx is the probe's), it returns a *PausedError at once. It
// returns ctx's error if ctx ends first. ctx's Verdict, if any, keeps the
// pause met.
func (g *Gate) Wait(ctx context.Context) (done func(Outcome), err error) {
	bulk := priorityOf(ctx) == Bulk
	if !bulk {
		defer g.arrive()()
	}
	probe, verdict := probeOf(ctx), verdictOf(ctx)
	for {
		if err := g.sleepPauses(ctx, probe, verdict); err != nil {
			return nil, err
		}
		release, err := g.laneTurn(ctx, bulk)
		if err != nil {
			return nil, err
		}
		leads, err := g.takeLead(ctx)
		if err == nil {
			if err = g.lim.Wait(ctx); err != nil {
				g.dropLead(leads)
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
			verdict.set(nil)
			var once sync.Once
			return func(o Outcome) { once.Do(func() { g.report(leads, probe, verdict, o) }) }, nil
		}
		g.dropLead(leads)
	}
}

// sleepPauses returns once no pause holds the caller back, sleeping through
// a short cooldown and answering a *PausedError for anything longer.
func (g *Gate) sleepPauses(ctx context.Context, probe *Probe, verdict *Verdict) error {
	for {
		g.mu.Lock()
		now := g.opts.Clock()
		pe := g.pauseFor(now, probe)
		g.mu.Unlock()
		if pe == nil {
			return ctx.Err()
		}
		verdict.set(pe)
		wait := pe.Until.Sub(now)
		if pe.Reason != ReasonCooldown || wait > g.opts.MaxWait {
			return pe
		}
		if !ctxsleep.For(ctx, wait) {
			return ctx.Err()
		}
		verdict.set(nil)
	}
}

// pauseFor returns the pause that holds a caller of probe (nil: none) back
// at now: a refusal, a penalty, the open breaker (unless the caller is its
// probe), or a cooldown; nil for none. g.mu is held.
func (g *Gate) pauseFor(now time.Time, probe *Probe) *PausedError {
	pe := g.pauses.holding(now)
	if pe == nil || pe.Reason == ReasonCooldown {
		if out := g.breaker.paused(now); out != nil && !g.breaker.passes(probe) {
			pe = out
		}
	}
	return pe
}

// admit reports whether the caller may send now: no pause began while it
// waited for the rate. It records the call with the lanes and the rate's
// controller.
func (g *Gate) admit(probe *Probe, bulk bool) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	now := g.opts.Clock()
	if g.pauses.holding(now) != nil || !g.breaker.passes(probe) {
		return false
	}
	mixed := g.lanes.sent(now, bulk)
	if !bulk {
		g.bulk.Take() // the bulk lane gets what the chatbot's leaves
	}
	// setRate applies the lanes' mode to the bulk pacer. A fixed rate has
	// no quota line to keep clear of, so its bulk pacer never changes.
	if g.quota != nil {
		g.quota.noReach = mixed
		g.setRate(g.quota.onSend(now))
	}
	return true
}

// report takes one call's outcome: it is decided here, once.
func (g *Gate) report(leads bool, probe *Probe, verdict *Verdict, o Outcome) {
	g.mu.Lock()
	now := g.opts.Clock()
	if leads {
		g.lead.finish(opens(o))
	}
	events := g.outcome(now, probe, o)
	verdict.set(g.met(now, o.Fault))
	g.mu.Unlock()
	g.emit(events)
}

// outcome applies o to the parts at now; g.mu is held.
func (g *Gate) outcome(now time.Time, probe *Probe, o Outcome) []Event {
	var events []Event
	switch o.Fault {
	case RateLimited:
		ra := o.RetryAfter
		if ra <= 0 {
			ra = NoRetryAfter
		}
		started := g.pauses.throttled(now, ra, o.Reason, g.opts.MaxWait)
		if started {
			g.lead.needed = true
		}
		if g.quota != nil {
			g.setRate(g.quota.on429(now, started, ra, o.Reason))
		}
		if started {
			events = append(events, Event{Kind: EventCooldown, Until: g.pauses.throttle.Until, RetryAfter: ra,
				Reason: o.Reason, Pause: g.pauses.throttle.Reason, Rate: g.Rate()})
		}
	case Forbidden, Unauthorized:
		pause := g.opts.ForbiddenPause
		if o.Fault == Unauthorized {
			pause = g.opts.CredentialsPause
		}
		if g.pauses.refused(now, pause, o.Err) {
			events = append(events, Event{Kind: EventRefused, Until: g.pauses.refusal.Until, Err: o.Err})
		}
	}
	if countsTowardOutage(o.Fault) {
		if g.quota != nil {
			g.quota.onFailed()
		}
		if g.blame.blamed(o.Key, now) {
			return nil // the artist's own: it tells nothing of Spotify
		}
		return g.breaker.failure(CauseSpotify, o.Key, o.Err, probe, now)
	}
	if speaksForService(o.Fault) {
		if o.Fault == Answered && o.Status == 200 && o.Key != "" {
			g.canary = o.Key
			g.blame.forgive(o.Key)
		}
		events = append(events, g.succeeded(now, CauseSpotify, o.Key, probe)...)
	}
	return events
}

// succeeded records a success of cause; g.mu is held.
func (g *Gate) succeeded(now time.Time, cause Cause, key string, probe *Probe) []Event {
	events, blamed := g.breaker.success(cause, key, probe, now)
	g.blame.add(now, blamed...)
	for i := range events {
		events[i].Blamed = len(blamed)
	}
	return events
}

// met returns the pause a call's outcome began or was part of at now: a
// 429's, a refusal's, or the open breaker's for a failure that counts
// toward it; nil for none. g.mu is held.
func (g *Gate) met(now time.Time, f Fault) *PausedError {
	switch f {
	case RateLimited, Forbidden, Unauthorized:
		return g.pauses.holding(now)
	case Failed:
		return g.breaker.paused(now)
	}
	return nil
}

// Report tells the breaker how work that is not a Spotify call went: err nil
// for a success, else a failure of cause for the artist key that is not the
// artist's own fault (an error of DynamoDB, say, after its SDK's retries).
// ctx is the work's: a probe's (see Probe.Context) judges the probe, and
// its Verdict keeps the outage a failure was part of.
func (g *Gate) Report(ctx context.Context, cause Cause, key string, err error) {
	g.mu.Lock()
	now := g.opts.Clock()
	var events []Event
	if err == nil {
		events = g.succeeded(now, cause, key, probeOf(ctx))
	} else {
		events = g.breaker.failure(cause, key, err, probeOf(ctx), now)
		verdictOf(ctx).set(g.breaker.paused(now))
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

// setRate changes the rate, and the bulk lane's share of it; g.mu is held.
func (g *Gate) setRate(r float64) {
	g.lim.SetLimit(rate.Limit(r))
	b := g.lim.Limit()
	if g.lanes.mixed && g.quota != nil && g.quota.found() {
		b *= mixedShare
	}
	g.bulk.SetLimit(b)
}

// holding returns the pause that would meet a call at now, in precedence
// order (a refusal, then an open breaker, then a throttle); nil for none.
// g.mu is held.
func (g *Gate) holding(now time.Time) *PausedError {
	pe := g.pauses.holding(now)
	if pe != nil && pe.Reason == ReasonRefused {
		return pe
	}
	if out := g.breaker.paused(now); out != nil {
		return out
	}
	return pe
}

// Hold tells a receive loop whether to receive now: wait > 0 means not for
// that long (reason says why). While the breaker is open and a probe is due,
// it hands out the probe: receive one message only, handle it with
// probe.Context, and call probe.End when it is handled. One probe is out at
// a time.
func (g *Gate) Hold() (wait time.Duration, reason string, probe *Probe) {
	g.mu.Lock()
	defer g.mu.Unlock()
	now := g.opts.Clock()
	pe := g.holding(now)
	if pe == nil {
		return 0, "", nil
	}
	if wait = max(pe.Until.Sub(now), 0); pe.Reason != ReasonOutage || wait > 0 {
		return wait, pe.Reason, nil
	}
	if probe = g.breaker.claim(g); probe == nil {
		return 100 * time.Millisecond, ReasonOutage, nil // one is out
	}
	return 0, ReasonOutage, probe
}

// StillClear reports whether a call Wait let through may still be sent:
// false once a throttle or a refusal has begun since (Wait lets nothing
// through during one). The caller asks just before the send, after any
// token request, and reports a call it holds back as Unsent. Calls are let
// through concurrently, so one may be on its way to the socket when another
// caller's 429 comes back: without this last look it would be sent inside
// the Retry-After just announced.
func (g *Gate) StillClear() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.pauses.holding(g.opts.Clock()) == nil
}

// Canary returns an artist Spotify answered with tracks lately, for the
// breaker's probe to tell an outage from its own artist's broken answers
// (see fault.go); ok is false when none is known.
func (g *Gate) Canary() (key string, ok bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.canary, g.canary != ""
}

// Impose pauses every call until until, as a penalty that Spotify announced
// to another process of the fleet (read from the store, see
// store.SpotifyPause): this process makes no call to learn it. A pause that
// ends earlier than the one running changes nothing. The event it announces
// is Shared.
func (g *Gate) Impose(until time.Time, reason string) {
	g.mu.Lock()
	now := g.opts.Clock()
	if !until.After(now) || !until.After(g.pauses.throttle.Until) {
		g.mu.Unlock()
		return
	}
	g.pauses.throttle = PausedError{Reason: ReasonPenalty, Until: until,
		Detail: "Spotify paused this app (" + reason + "), as another process of the fleet recorded"}
	g.lead.needed = true
	e := Event{Kind: EventCooldown, Until: until, RetryAfter: until.Sub(now), Reason: reason, Pause: ReasonPenalty, Rate: g.Rate(), Shared: true}
	g.mu.Unlock()
	g.emit([]Event{e})
}

// Paused reports how long the pause that would meet a call now lasts, and
// why (0 and "" when none; for an open breaker, until its next probe).
func (g *Gate) Paused() (left time.Duration, reason string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	now := g.opts.Clock()
	if pe := g.holding(now); pe != nil {
		return max(pe.Until.Sub(now), 0), pe.Reason
	}
	return 0, ""
}

// Ready returns nil when nothing holds calls back, or why.
func (g *Gate) Ready() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	now := g.opts.Clock()
	pe := g.holding(now)
	if pe == nil {
		return nil
	}
	left := pe.Until.Sub(now).Round(time.Second)
	switch pe.Reason {
	case ReasonRefused:
		return fmt.Errorf("refused by Spotify (403 for top-tracks, or the app's credentials) for %s more: %s", left, pe.Detail)
	case ReasonOutage:
		return fmt.Errorf("outage breaker open: %s", pe.Detail)
	case ReasonPenalty:
		return fmt.Errorf("paused by Spotify until %s (%s more): %s", pe.Until.UTC().Format(time.RFC3339), left, pe.Detail)
	}
	return fmt.Errorf("throttled by Spotify for %s more", left)
}

// CooldownLeft returns how long the current throttle (a cooldown or a
// penalty) still lasts (0: none).
func (g *Gate) CooldownLeft() time.Duration {
	g.mu.Lock()
	defer g.mu.Unlock()
	return max(g.pauses.throttle.Until.Sub(g.opts.Clock()), 0)
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
