package gate

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sixpotify/top-tracks/internal/testutil"
)

var ok = Outcome{Fault: Answered, Status: 200}

// newFakeClock returns a clock tests move by hand.
func newFakeClock() *testutil.Clock { return testutil.NewClock(time.Unix(1_000_000, 0)) }

// newClockedGate is a gate with default options on a fake clock.
func newClockedGate() (*Gate, *testutil.Clock, context.Context) {
	clock := newFakeClock()
	return New(Options{Clock: clock.Now}), clock, context.Background()
}

func mustWait(t *testing.T, g *Gate, ctx context.Context) func(Outcome) {
	t.Helper()
	done, err := g.Wait(ctx)
	if err != nil {
		t.Fatalf("Wait: %v", err)
	}
	return done
}

func TestCooldownPausesEveryCaller(t *testing.T) {
	g := New(Options{})
	mustWait(t, g, context.Background())(Outcome{Fault: RateLimited, Status: 429, RetryAfter: 300 * time.Millisecond})
	until := time.Now().Add(250 * time.Millisecond)
	var wg sync.WaitGroup
	var early atomic.Int32
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			done, err := g.Wait(context.Background())
			if err != nil {
				t.Error(err)
				return
			}
			if time.Now().Before(until) {
				early.Add(1)
			}
			done(ok)
		}()
	}
	wg.Wait()
	if n := early.Load(); n != 0 {
		t.Errorf("%d callers passed Wait inside the cooldown", n)
	}
}

func TestACooldownIsStartedOnceAndTheLongerWins(t *testing.T) {
	clock := newFakeClock()
	var events []Event
	g := New(Options{Clock: clock.Now, OnEvent: func(e Event) { events = append(events, e) }})
	d1 := mustWait(t, g, context.Background())
	d1(ok) // ends the first call's turn
	a, b := mustWait(t, g, context.Background()), mustWait(t, g, context.Background())
	a(Outcome{Fault: RateLimited, RetryAfter: time.Second})
	b(Outcome{Fault: RateLimited, RetryAfter: 5 * time.Second})
	b(Outcome{Fault: RateLimited, RetryAfter: time.Hour}) // a second report of one call is ignored
	if got := g.CooldownLeft(); got != 5*time.Second {
		t.Errorf("CooldownLeft = %v, want 5s", got)
	}
	if len(events) != 1 || events[0].Kind != EventCooldown {
		t.Errorf("events = %+v, want one cooldown", events)
	}
}

func TestALongPauseIsNotSleptThrough(t *testing.T) {
	clock := newFakeClock()
	g := New(Options{Clock: clock.Now, MaxWait: 10 * time.Second})
	mustWait(t, g, context.Background())(Outcome{Fault: RateLimited, RetryAfter: time.Minute, Reason: "QUOTA_EXCEEDED"})
	_, err := g.Wait(context.Background())
	pe, ok := IsPaused(err)
	if !ok || pe.Reason != ReasonPenalty || !pe.Until.Equal(clock.Now().Add(time.Minute)) {
		t.Fatalf("Wait during a penalty = %v, want a PausedError until the cooldown's end", err)
	}
	if wait, reason, probe := g.Hold(); wait != time.Minute || reason != ReasonPenalty || probe != nil {
		t.Errorf("Hold = %v, %q, %v", wait, reason, probe != nil)
	}
}

func TestRefusalPausesEveryCall(t *testing.T) {
	clock := newFakeClock()
	g := New(Options{Clock: clock.Now})
	mustWait(t, g, context.Background())(Outcome{Fault: Forbidden, Status: 403, Err: errors.New("forbidden")})
	_, err := g.Wait(context.Background())
	if pe, ok := IsPaused(err); !ok || pe.Reason != ReasonRefused || pe.Until.Sub(clock.Now()) != 5*time.Minute {
		t.Fatalf("Wait after a 403 = %v, want a 5-minute refusal", err)
	}
	if g.Ready() == nil {
		t.Error("Ready during a refusal = nil")
	}
	clock.Advance(5 * time.Minute)
	mustWait(t, g, context.Background())(Outcome{Fault: Unauthorized, Err: errors.New("invalid_client")})
	if left, reason := g.Paused(); left != 15*time.Second || reason != ReasonRefused {
		t.Errorf("after rejected credentials Paused = %v, %q; want 15s refused", left, reason)
	}
}

func TestWaitReturnsOnCancel(t *testing.T) {
	g := New(Options{Rate: 0.001})
	mustWait(t, g, context.Background())(ok) // spends the burst
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := g.Wait(ctx); !errors.Is(err, context.DeadlineExceeded) && err == nil {
		t.Errorf("Wait = %v, want the context's error", err)
	}
}

func TestBulkYieldsToChatbot(t *testing.T) {
	g := New(Options{Rate: 2, Fixed: true})
	ctx := context.Background()
	mustWait(t, g, ctx)(ok) // spends the burst and ends the first turn
	order := make(chan string, 2)
	go func() {
		if done, err := g.Wait(ctx); err == nil {
			order <- "chatbot"
			done(ok)
		}
	}()
	for { // start the bulk caller once the chatbot caller waits
		g.mu.Lock()
		n := g.lanes.urgent
		g.mu.Unlock()
		if n == 1 {
			break
		}
		time.Sleep(time.Millisecond)
	}
	go func() {
		if done, err := g.Wait(WithPriority(ctx, Bulk)); err == nil {
			order <- "bulk"
			done(ok)
		}
	}()
	if first, second := <-order, <-order; first != "chatbot" || second != "bulk" {
		t.Errorf("order = %s, %s; want chatbot first", first, second)
	}
}

func TestOneCallFirstAfterAPause(t *testing.T) {
	g := New(Options{})
	ctx := context.Background()
	first := mustWait(t, g, ctx) // the first call of the process goes alone
	passed := make(chan func(Outcome), 4)
	for range 4 {
		go func() {
			if done, err := g.Wait(ctx); err == nil {
				passed <- done
			}
		}()
	}
	select {
	case <-passed:
		t.Fatal("a caller passed while the first call was unanswered")
	case <-time.After(50 * time.Millisecond):
	}
	first(Outcome{Fault: Failed, Err: errors.New("reset")}) // no answer: the next caller goes alone
	second := <-passed
	select {
	case <-passed:
		t.Fatal("a second caller passed while the next first call was unanswered")
	case <-time.After(50 * time.Millisecond):
	}
	second(ok) // answered: everyone may go
	for range 3 {
		(<-passed)(ok)
	}
}

func TestBreakerOpensOnAnOutageNotOnOneArtist(t *testing.T) {
	clock := newFakeClock()
	var events []Event
	g := New(Options{Clock: clock.Now, OnEvent: func(e Event) { events = append(events, e) }})
	ctx := context.Background()
	mustWait(t, g, ctx)(ok)
	fail := func(key string) {
		clock.Advance(300 * time.Millisecond)
		mustWait(t, g, ctx)(Outcome{Fault: Failed, Key: key, Err: errors.New("HTTP 503")})
	}
	// One artist failing again and again, while others succeed, is its own.
	for range 10 {
		fail("artistA")
	}
	if g.BreakerOpen() {
		t.Fatal("one artist's failures opened the breaker")
	}
	mustWait(t, g, ctx)(ok)
	for _, k := range []string{"a", "b", "c", "d"} {
		fail(k)
	}
	if g.BreakerOpen() {
		t.Fatal("the breaker opened after 4 failures")
	}
	fail("e")
	if !g.BreakerOpen() {
		t.Fatal("5 failures of 5 artists did not open the breaker")
	}
	if _, err := g.Wait(ctx); err == nil {
		t.Fatal("Wait passed an ordinary caller with the breaker open")
	} else if pe, _ := IsPaused(err); pe == nil || pe.Reason != ReasonOutage {
		t.Fatalf("Wait = %v, want an outage pause", err)
	}
	if g.Ready() == nil {
		t.Error("Ready with the breaker open = nil")
	}
	// Probes: after 1s, then 2s, 4s… each claimed by one receive only.
	if wait, _, end := g.Hold(); wait != time.Second || end != nil {
		t.Fatalf("Hold right after opening = %v (probe %v), want 1s", wait, end != nil)
	}
	for _, backoff := range []time.Duration{time.Second, 2 * time.Second, 4 * time.Second} {
		end := dueProbe(t, g, clock, backoff)
		if _, _, again := g.Hold(); again != nil {
			t.Fatal("a second probe was handed out while one is out")
		}
		mustWait(t, g, end.Context(ctx))(Outcome{Fault: Failed, Key: "p", Err: errors.New("HTTP 503")})
		end.End()
	}
	end := dueProbe(t, g, clock, 8*time.Second)
	mustWait(t, g, end.Context(ctx))(ok)
	end.End()
	if g.BreakerOpen() {
		t.Fatal("a successful probe did not close the breaker")
	}
	var kinds []EventKind
	for _, e := range events {
		kinds = append(kinds, e.Kind)
	}
	if len(kinds) != 2 || kinds[0] != EventBreakerOpened || kinds[1] != EventBreakerClosed {
		t.Errorf("events = %v, want opened then closed, once each", kinds)
	}
}

// openStoreOutage opens g's breaker on store failures of five artists,
// while Spotify answers each of them.
func openStoreOutage(t *testing.T, g *Gate, clock *testutil.Clock) {
	t.Helper()
	ctx := context.Background()
	for _, k := range []string{"a", "b", "c", "d", "e"} {
		clock.Advance(300 * time.Millisecond)
		mustWait(t, g, ctx)(ok)                                      // Spotify answers…
		g.Report(ctx, CauseStore, k, errors.New("connection reset")) // …DynamoDB does not
	}
	if !g.BreakerOpen() {
		t.Fatal("5 store failures over 5 artists did not open the breaker")
	}
}

func TestStoreOutageIsNotClosedBySpotify(t *testing.T) {
	g, clock, ctx := newClockedGate()
	openStoreOutage(t, g, clock)
	end := dueProbe(t, g, clock, time.Second)
	mustWait(t, g, end.Context(ctx))(ok)
	if !g.BreakerOpen() {
		t.Fatal("a Spotify answer closed a store outage")
	}
	g.Report(end.Context(ctx), CauseStore, "p", nil)
	end.End()
	if g.BreakerOpen() {
		t.Fatal("a store success did not close the store outage")
	}
}

func TestA429ToAnIdleProcessOnlyCoolsDown(t *testing.T) {
	clock := newFakeClock()
	g := New(Options{Rate: 10, Clock: clock.Now})
	for range 10 { // a chatbot-only task: a call a minute
		mustWait(t, g, context.Background())(ok)
		clock.Advance(time.Minute)
	}
	mustWait(t, g, context.Background())(Outcome{Fault: RateLimited, RetryAfter: time.Second})
	if got := g.Rate(); got != 10 {
		t.Errorf("rate after a 429 to an idle process = %.3f/s, want 10/s kept", got)
	}
}

func TestFixedRateDoesNotAdapt(t *testing.T) {
	g := New(Options{Rate: 1000, Fixed: true})
	for range 20 {
		mustWait(t, g, context.Background())(ok)
	}
	mustWait(t, g, context.Background())(Outcome{Fault: RateLimited, RetryAfter: time.Millisecond})
	if got := g.Rate(); got != 1000 {
		t.Errorf("fixed rate after a 429 = %v, want 1000", got)
	}
}

// TestBulkTakesWhatTheChatbotLeaves: a backfill alone is paced at the whole
// rate; while both lanes are served and the quota's line is found, the two
// keep a tenth of it clear and do not probe; a chatbot lane quiet for
// laneMemory gives the backfill the whole rate again.
func TestBulkTakesWhatTheChatbotLeaves(t *testing.T) {
	clock := newFakeClock()
	g := New(Options{Rate: 1000, Clock: clock.Now})
	ctx := context.Background()
	bulk := WithPriority(ctx, Bulk)
	mustWait(t, g, bulk)(ok)
	if b, l := g.bulk.Limit(), g.lim.Limit(); b != l {
		t.Fatalf("a backfill alone is paced at %v of the rate %v; want all of it", b, l)
	}
	g.mu.Lock()
	g.quota.lo, g.quota.hi = 500, 510
	g.quota.set(500) // the line is found
	g.mu.Unlock()
	mustWait(t, g, ctx)(ok) // a chatbot call
	mustWait(t, g, bulk)(ok)
	if b, l := float64(g.bulk.Limit()), float64(g.lim.Limit()); b < 0.89*l || b > 0.91*l {
		t.Errorf("with both lanes served the bulk lane is paced at %.0f of %.0f; want nine tenths", b, l)
	}
	if !g.quota.noReach {
		t.Error("the quota may probe while both lanes are served")
	}
	clock.Advance(laneMemory + time.Second)
	mustWait(t, g, bulk)(ok)
	if b, l := g.bulk.Limit(), g.lim.Limit(); b != l || g.quota.noReach {
		t.Errorf("after the chatbot's lane was quiet for %v the bulk lane is paced at %v of %v (noReach %v); want all of it", laneMemory, b, l, g.quota.noReach)
	}
}

// openBreaker opens g's breaker on Spotify failures of five artists and
// returns the done of a call let through before it opened, still in flight.
func openBreaker(t *testing.T, g *Gate, clock *testutil.Clock) (inFlight func(Outcome)) {
	t.Helper()
	ctx := context.Background()
	mustWait(t, g, ctx)(ok) // the first call goes alone
	inFlight = mustWait(t, g, ctx)
	for _, k := range []string{"a", "b", "c", "d", "e"} {
		clock.Advance(300 * time.Millisecond)
		mustWait(t, g, ctx)(Outcome{Fault: Failed, Key: k, Err: errors.New("HTTP 503")})
	}
	if !g.BreakerOpen() {
		t.Fatal("5 failures of 5 artists did not open the breaker")
	}
	return inFlight
}

var fail503 = Outcome{Fault: Failed, Key: "p", Err: errors.New("HTTP 503")}

// dueProbe moves clock on by after and returns the probe Hold hands out
// then, failing t if none is due.
func dueProbe(t *testing.T, g *Gate, clock *testutil.Clock, after time.Duration) *Probe {
	t.Helper()
	clock.Advance(after)
	_, _, p := g.Hold()
	if p == nil {
		t.Fatalf("no probe due %v later", after)
	}
	return p
}

// TestOnlyTheProbeJudgesItself: while the probe is out, a failure of work
// that was in flight when the breaker opened is not the probe's: no second
// probe is handed out and the backoff does not grow. The probe's own
// failure does grow it, once however many of its retries fail.
func TestOnlyTheProbeJudgesItself(t *testing.T) {
	g, clock, ctx := newClockedGate()
	inFlight := openBreaker(t, g, clock)
	p := dueProbe(t, g, clock, time.Second)
	inFlight(fail503) // not the probe's
	if _, _, again := g.Hold(); again != nil {
		t.Fatal("a failure of work in flight since opening let a second probe out")
	}
	pctx := p.Context(ctx)
	mustWait(t, g, pctx)(fail503) // the probe's own call fails
	mustWait(t, g, pctx)(fail503) // and its retry
	if _, err := g.Wait(ctx); err == nil {
		t.Fatal("an ordinary call passed the open breaker")
	} else if pe, _ := IsPaused(err); pe == nil || pe.Reason != ReasonOutage || pe.Until.Sub(clock.Now()) != 2*time.Second {
		t.Fatalf("with the probe out and failed, an ordinary call got %v; want an outage pause of the doubled backoff", err)
	}
	p.End()
	if wait, _, next := g.Hold(); next != nil || wait != 2*time.Second {
		t.Fatalf("after the probe failed, Hold = %v (probe %v); want the next in 2s, not 1s", wait, next != nil)
	}
	// The first failed: the second is due 2s later.
	p2 := dueProbe(t, g, clock, 2*time.Second)
	p.End() // again: changes nothing
	if _, _, again := g.Hold(); again != nil {
		t.Fatal("ending the first probe again let a third out beside the second")
	}
	mustWait(t, g, p2.Context(ctx))(ok)
	p2.End()
	if g.BreakerOpen() {
		t.Fatal("the second probe's success did not close the breaker")
	}
}

// TestAStaleProbeEndsNothing: a probe still being handled when the breaker
// closed (on another call's success) and opened again does not end the
// probe of the new outage, nor is its failure that probe's.
func TestAStaleProbeEndsNothing(t *testing.T) {
	g, clock, ctx := newClockedGate()
	inFlight := openBreaker(t, g, clock)
	old := dueProbe(t, g, clock, time.Second)
	inFlight(ok) // closes it
	if g.BreakerOpen() {
		t.Fatal("a success did not close the breaker")
	}
	openBreaker(t, g, clock)
	p := dueProbe(t, g, clock, time.Second) // in the new outage
	g.Report(old.Context(ctx), CauseSpotify, "x", errors.New("HTTP 503"))
	old.End()
	if _, _, again := g.Hold(); again != nil {
		t.Fatal("the old probe's end let a second probe out")
	}
	if _, err := g.Wait(p.Context(ctx)); err != nil {
		t.Fatalf("the new probe's call was held back by the old probe's failure: %v", err)
	}
}

// TestAProbeFailingOfAnotherCause: during a DynamoDB outage the probe's
// Spotify call fails; that says nothing of DynamoDB, so the backoff stays,
// but the probe is over.
func TestAProbeFailingOfAnotherCause(t *testing.T) {
	g, clock, ctx := newClockedGate()
	openStoreOutage(t, g, clock)
	p := dueProbe(t, g, clock, time.Second)
	mustWait(t, g, p.Context(ctx))(fail503)
	p.End()
	if wait, _, _ := g.Hold(); wait != time.Second {
		t.Errorf("after the probe's Spotify call failed in a store outage, the next probe is in %v; want 1s", wait)
	}
}

// TestTheNextProbeIsTimedFromTheFailure: a probe whose retries outlast the
// backoff is followed at once when its message is handled, not a backoff
// later; while its retries go on, no other probe is out.
func TestTheNextProbeIsTimedFromTheFailure(t *testing.T) {
	g, clock, ctx := newClockedGate()
	openBreaker(t, g, clock)
	p := dueProbe(t, g, clock, time.Second)
	pctx := p.Context(ctx)
	mustWait(t, g, pctx)(fail503)
	for range 3 { // its retries, over 3s
		clock.Advance(time.Second)
		if _, _, again := g.Hold(); again != nil {
			t.Fatal("a second probe was handed out while the first still retries")
		}
		mustWait(t, g, pctx)(fail503)
	}
	p.End()
	if wait, _, next := g.Hold(); next == nil || wait != 0 {
		t.Fatalf("the probe failed 3s ago with a 2s backoff and has ended; Hold = %v (probe %v), want the next probe now", wait, next != nil)
	}
}

func TestACallLetThroughBeforeAPauseIsHeldBack(t *testing.T) {
	g, clock, ctx := newClockedGate()
	mustWait(t, g, ctx)(ok) // the first call's turn ends
	a, b := mustWait(t, g, ctx), mustWait(t, g, ctx)
	if !g.StillClear() {
		t.Fatal("StillClear is false with no pause")
	}
	a(Outcome{Fault: RateLimited, Status: 429, RetryAfter: time.Second})
	if g.StillClear() {
		t.Fatal("StillClear is true after a 429: b would be sent inside its Retry-After")
	}
	b(Outcome{Fault: Unsent}) // held back: nothing is learnt
	if got := g.CooldownLeft(); got != time.Second {
		t.Fatalf("cooldown left %v after an unsent call, want 1s", got)
	}

	// After the cooldown one call goes first; held back, it does not open
	// the way: the next caller goes first instead.
	clock.Advance(time.Second)
	if !g.StillClear() {
		t.Fatal("StillClear is false once the cooldown is over")
	}
	first := mustWait(t, g, ctx)
	passed := make(chan func(Outcome), 2)
	for range 2 {
		go func() {
			if done, err := g.Wait(ctx); err == nil {
				passed <- done
			}
		}()
	}
	first(Outcome{Fault: Unsent})
	second := <-passed
	select {
	case <-passed:
		t.Fatal("an unsent first call opened the way for every caller")
	case <-time.After(50 * time.Millisecond):
	}
	second(ok)
	(<-passed)(ok)

	// A refusal holds back the same way.
	c := mustWait(t, g, ctx)
	mustWait(t, g, ctx)(Outcome{Fault: Forbidden, Status: 403})
	if g.StillClear() {
		t.Fatal("StillClear is true after a 403")
	}
	c(Outcome{Fault: Unsent})
}

// TestProbesComeAtLeastOnceAWindow: once Spotify's answers have shown its
// rolling window, the wait between failed probes stops doubling at that
// window (never past ProbeCap), so that the end of an outage is found
// within about a window; with no window shown it doubles to ProbeCap
// (Spotify's documented 30s window by default).
func TestProbesComeAtLeastOnceAWindow(t *testing.T) {
	for _, c := range []struct {
		name       string
		retryAfter time.Duration // of a 429 ending a volley of 0.5s; 0: none
		probeCap   time.Duration
		wantCap    time.Duration
	}{
		{"a 3.5s window shown", 3 * time.Second, 0, 3500 * time.Millisecond},
		{"no window shown", 0, 0, DefaultProbeCap},
		{"a window longer than ProbeCap", 9 * time.Second, 5 * time.Second, 5 * time.Second},
	} {
		t.Run(c.name, func(t *testing.T) {
			clock := newFakeClock()
			g := New(Options{Rate: 100, Clock: clock.Now, ProbeCap: c.probeCap})
			ctx := context.Background()
			if c.retryAfter > 0 { // a volley into the window, as fast as the rate allows
				for range 50 {
					mustWait(t, g, ctx)(ok)
					clock.Advance(10 * time.Millisecond)
				}
				mustWait(t, g, ctx)(Outcome{Fault: RateLimited, Status: 429, RetryAfter: c.retryAfter})
				clock.Advance(c.retryAfter)
			}
			openBreaker(t, g, clock)
			wait, longest := time.Second, time.Duration(0)
			for range 8 {
				p := dueProbe(t, g, clock, wait)
				mustWait(t, g, p.Context(ctx))(fail503)
				p.End()
				wait, _, _ = g.Hold()
				if wait > c.wantCap {
					t.Fatalf("after a failed probe the next is %v away; want at most %v", wait, c.wantCap)
				}
				longest = max(longest, wait)
			}
			if longest != c.wantCap {
				t.Errorf("the wait between probes grew to %v; want it to reach %v", longest, c.wantCap)
			}
		})
	}
}
