package gate

import (
	"context"
	"errors"
	"testing"
	"time"
)

// TestAPauseErasesNothing: an outage (calls that fail, few and far between
// while the breaker probes) teaches the controller nothing, and one 429
// after it costs at most a yield of the rate that held: whether the rate
// was learnt before the outage or the process was still in its first
// volley when the outage began.
func TestAPauseErasesNothing(t *testing.T) {
	for _, c := range []struct {
		name   string
		before time.Duration // busy at 20/s before the outage
	}{
		{"learnt before", 30 * time.Second},
		{"in the first volley", 2500 * time.Millisecond}, // 50 calls into a 60-per-3s window
	} {
		t.Run(c.name, func(t *testing.T) {
			now := time.Unix(1_000_000, 0)
			q := newQuota(20, now)
			sendAt(q, &now, 20, c.before)
			held := q.rate
			// Three minutes of outage: a probe now and then, each failing.
			for range 12 {
				q.onSend(now)
				q.onFailed()
				now = now.Add(15 * time.Second)
			}
			// Recovery: busy at the rate again, then one 429 of a second.
			sendAt(q, &now, q.rate, 4*time.Second)
			r := q.on429(now, true, time.Second, "")
			if r < (1-yieldShare)*held {
				t.Errorf("after the outage one 429 took the rate from %.2f/s to %.2f/s; want at most a yield of %.0f%%", held, r, 100*yieldShare)
			}
		})
	}
}

// TestFailedCallsProveNoStep: a step whose calls failed (a 5xx answered at
// once) does not prove its rate.
func TestFailedCallsProveNoStep(t *testing.T) {
	now := time.Unix(1_000_000, 0)
	q := newQuota(50, now)
	q.fresh = false
	q.lo, q.rate, q.step = 10, 12.5, time.Second
	q.restart(now)
	gap := time.Second / 12
	for end := now.Add(3 * time.Second); now.Before(end); now = now.Add(gap) {
		q.onSend(now)
		q.onFailed()
	}
	if q.lo != 10 {
		t.Errorf("lo = %.2f after steps of failed calls; want 10 kept", q.lo)
	}
}

// TestThePauseMetTravelsWithTheWork: a call's Verdict keeps the pause its
// outcome began or was part of, and forgets it once a later call is let
// through.
func TestThePauseMetTravelsWithTheWork(t *testing.T) {
	clock := newFakeClock()
	g := New(Options{Clock: clock.Now, MaxWait: 10 * time.Second})
	ctx, v := WithVerdict(context.Background())
	mustWait(t, g, ctx)(ok)
	if v.Pause() != nil {
		t.Fatalf("Verdict after an answer = %v, want none", v.Pause())
	}
	mustWait(t, g, ctx)(Outcome{Fault: RateLimited, RetryAfter: time.Minute, Reason: QuotaExceeded})
	if pe := v.Pause(); pe == nil || pe.Reason != ReasonPenalty || !pe.Until.Equal(clock.Now().Add(time.Minute)) {
		t.Fatalf("Verdict after QUOTA_EXCEEDED = %+v, want a penalty until a minute from now", pe)
	}
	clock.Advance(time.Minute)
	mustWait(t, g, ctx)(Outcome{Fault: Forbidden, Err: errors.New("HTTP 403")})
	if pe := v.Pause(); pe == nil || pe.Reason != ReasonRefused {
		t.Fatalf("Verdict after a 403 = %+v, want a refusal", pe)
	}
	clock.Advance(time.Hour)
	done := mustWait(t, g, ctx)
	if v.Pause() != nil {
		t.Errorf("Verdict once a call is let through = %v, want none", v.Pause())
	}
	done(Outcome{Fault: Failed, Key: "a", Err: errors.New("HTTP 503")})
	if v.Pause() != nil {
		t.Errorf("Verdict after a failure with the breaker closed = %v, want none", v.Pause())
	}
	for _, k := range []string{"b", "c", "d", "e"} {
		clock.Advance(300 * time.Millisecond)
		mustWait(t, g, context.Background())(Outcome{Fault: Failed, Key: k, Err: errors.New("HTTP 503")})
	}
	if _, err := g.Wait(ctx); err == nil {
		t.Fatal("Wait passed with the breaker open")
	}
	if pe := v.Pause(); pe == nil || pe.Reason != ReasonOutage {
		t.Errorf("Verdict after Wait met the open breaker = %+v, want the outage", pe)
	}
}

// TestACanaryBlamesTheArtistsThatOpenedTheBreaker: when the probe's artist
// fails and another artist Spotify answered lately gets through, the
// breaker closes and the artists whose failures opened it are blamed: their
// failures never open it again, while other artists' still do.
func TestACanaryBlamesTheArtistsThatOpenedTheBreaker(t *testing.T) {
	clock := newFakeClock()
	var events []Event
	g := New(Options{Clock: clock.Now, OnEvent: func(e Event) { events = append(events, e) }})
	ctx := context.Background()
	mustWait(t, g, ctx)(Outcome{Fault: Answered, Status: 200, Key: "good"})
	broken := func(ctx context.Context, key string) {
		clock.Advance(300 * time.Millisecond)
		mustWait(t, g, ctx)(Outcome{Fault: Failed, Key: key, Err: errors.New("malformed response")})
	}
	for _, k := range []string{"b1", "b2", "b3", "b4", "b5"} {
		broken(ctx, k)
	}
	if !g.BreakerOpen() {
		t.Fatal("failures of five artists in a row did not open the breaker")
	}
	probe := dueProbe(t, g, clock, time.Second)
	pctx := probe.Context(ctx)
	broken(pctx, "b3")
	canary, known := g.Canary()
	if !known || canary != "good" {
		t.Fatalf("Canary = %q, %v; want the artist answered lately", canary, known)
	}
	mustWait(t, g, pctx)(Outcome{Fault: Answered, Status: 200, Key: canary})
	probe.End()
	if g.BreakerOpen() {
		t.Fatal("the canary's answer did not close the breaker")
	}
	if last := events[len(events)-1]; last.Kind != EventBreakerClosed || last.Blamed != 5 {
		t.Errorf("last event = %+v, want the breaker closed with 5 artists blamed", last)
	}
	for range 4 {
		for _, k := range []string{"b1", "b2", "b3", "b4", "b5"} {
			broken(ctx, k)
		}
	}
	if g.BreakerOpen() {
		t.Fatal("blamed artists' failures opened the breaker again")
	}
	for _, k := range []string{"x1", "x2", "x3", "x4", "x5"} {
		broken(ctx, k)
	}
	if !g.BreakerOpen() {
		t.Error("other artists' failures no longer open the breaker")
	}
}

// TestAnImposedPauseHoldsEveryCall: a penalty another process recorded
// holds this process's calls until its end without a call, and a shorter
// one changes nothing.
func TestAnImposedPauseHoldsEveryCall(t *testing.T) {
	clock := newFakeClock()
	var events []Event
	g := New(Options{Clock: clock.Now, OnEvent: func(e Event) { events = append(events, e) }})
	until := clock.Now().Add(22 * time.Hour)
	g.Impose(until, QuotaExceeded)
	g.Impose(clock.Now().Add(time.Hour), "shorter")
	_, err := g.Wait(context.Background())
	if pe, ok := IsPaused(err); !ok || pe.Reason != ReasonPenalty || !pe.Until.Equal(until) {
		t.Fatalf("Wait during an imposed pause = %v, want a penalty until %v", err, until)
	}
	if len(events) != 1 || !events[0].Shared || events[0].Pause != ReasonPenalty {
		t.Errorf("events = %+v, want one shared penalty", events)
	}
	clock.Advance(22 * time.Hour)
	mustWait(t, g, context.Background())(ok)
}
