package throttle

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestCooldownPausesEveryCaller(t *testing.T) {
	l := New(0, 1)
	started, until := l.Cooldown(300 * time.Millisecond)
	if !started {
		t.Fatal("first Cooldown did not report a new cooldown")
	}
	if again, _ := l.Cooldown(100 * time.Millisecond); again {
		t.Error("a shorter Cooldown during a cooldown reported a new one")
	}
	var wg sync.WaitGroup
	var early atomic.Int32
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := l.Wait(context.Background()); err != nil {
				t.Error(err)
			}
			if time.Now().Before(until) {
				early.Add(1)
			}
			l.Observe(200)
		}()
	}
	wg.Wait()
	if n := early.Load(); n != 0 {
		t.Errorf("%d callers passed Wait inside the cooldown", n)
	}
	if left := l.CooldownLeft(); left != 0 {
		t.Errorf("CooldownLeft after the cooldown = %v", left)
	}
}

func TestCooldownExtends(t *testing.T) {
	now := time.Unix(1000, 0)
	l := New(0, 1)
	l.clock = func() time.Time { return now }
	l.Cooldown(time.Second)
	l.Cooldown(5 * time.Second)
	if got := l.CooldownLeft(); got != 5*time.Second {
		t.Errorf("CooldownLeft = %v, want 5s (the longer cooldown wins)", got)
	}
	now = now.Add(6 * time.Second)
	if started, _ := l.Cooldown(time.Second); !started {
		t.Error("a Cooldown after the last one ended did not report a new one")
	}
}

func TestWaitReturnsOnCancel(t *testing.T) {
	l := New(0, 1)
	l.Cooldown(time.Hour)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- l.Wait(ctx) }()
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("Wait = %v, want context.Canceled", err)
	}
}

func TestRate(t *testing.T) {
	if got := New(0, 1).Rate(); got != 0 {
		t.Errorf("unlimited Rate() = %v, want 0", got)
	}
	if got := New(25, 1).Rate(); got != 25 {
		t.Errorf("Rate() = %v, want 25", got)
	}
}

// sendAt records calls at rate r per second for d, on the fake clock.
func sendAt(l *Limiter, now *time.Time, r float64, d time.Duration) {
	step := time.Duration(float64(time.Second) / r)
	for end := now.Add(d); now.Before(end); *now = now.Add(step) {
		l.sent()
	}
}

func TestAdaptiveRateLearnsTheQuotaAndSettlesUnderIt(t *testing.T) {
	now := time.Unix(1000, 0)
	l := NewWithOptions(30, 1, Options{Adaptive: true, Window: 10 * time.Second, Clock: func() time.Time { return now }})
	// 101 calls in the last 10s, the last one drew a 429: the quota is 10/s.
	sendAt(l, &now, 10.1, 10*time.Second)
	l.Cooldown(time.Second)
	if got, want := l.Rate(), 0.98*100/10.0; got < want-0.05 || got > want+0.05 {
		t.Fatalf("rate after the 429 = %.3f/s, want %.3f/s (98%% of the learnt quota)", got, want)
	}
	learnt := l.Rate()
	// Quiet windows at full use: the rate stays just under the quota.
	sendAt(l, &now, learnt, 10*10*time.Second)
	if got := l.Rate(); got > learnt+0.01 {
		t.Errorf("after 10 quiet windows the rate climbed to %.3f/s, past the learnt %.3f/s", got, learnt)
	}
	// After QuietWindows (20) quiet windows it probes above, one step a window.
	sendAt(l, &now, learnt, 12*10*time.Second)
	if got := l.Rate(); got <= learnt {
		t.Errorf("after 22 quiet windows the rate is %.3f/s; want a probe above %.3f/s", got, learnt)
	}
}

func TestAdaptiveRateDoesNotClimbWhenUnused(t *testing.T) {
	now := time.Unix(1000, 0)
	l := NewWithOptions(30, 1, Options{Adaptive: true, Window: 10 * time.Second, Clock: func() time.Time { return now }})
	sendAt(l, &now, 10.1, 10*time.Second)
	l.Cooldown(time.Second)
	low := l.Rate()
	// Far below the rate for many windows (a quiet chatbot lane).
	sendAt(l, &now, 1, 50*10*time.Second)
	if got := l.Rate(); got != low {
		t.Errorf("an unused rate climbed from %.3f/s to %.3f/s", low, got)
	}
}

func TestAdaptiveRateClimbsBackToTheCeilingWithoutA429(t *testing.T) {
	now := time.Unix(1000, 0)
	l := NewWithOptions(30, 1, Options{Adaptive: true, Window: 10 * time.Second, Clock: func() time.Time { return now }})
	l.mu.Lock()
	l.setRate(10, now) // as if lowered, with no quota learnt
	l.mu.Unlock()
	for range 100 {
		sendAt(l, &now, l.Rate(), 10*time.Second)
	}
	if got := l.Rate(); got != 30 {
		t.Errorf("rate after many quiet windows at full use = %.3f/s, want the ceiling 30/s", got)
	}
}

func TestAdaptiveRateDropsOncePerCooldown(t *testing.T) {
	now := time.Unix(1000, 0)
	l := NewWithOptions(30, 1, Options{Adaptive: true, Window: 10 * time.Second, Clock: func() time.Time { return now }})
	for range 50 {
		l.sent()
	}
	l.Cooldown(time.Second)
	first := l.Rate()
	l.Cooldown(time.Second) // a second 429 of the same cooldown
	if got := l.Rate(); got != first {
		t.Errorf("a second 429 in one cooldown changed the rate from %.3f to %.3f", first, got)
	}
}

func TestFixedRateDoesNotAdapt(t *testing.T) {
	l := New(30, 1)
	for range 10 {
		l.sent()
	}
	l.Cooldown(time.Millisecond)
	if got := l.Rate(); got != 30 {
		t.Errorf("rate of a fixed limiter after a 429 = %v, want 30", got)
	}
}

func TestBulkYieldsToChatbot(t *testing.T) {
	l := New(2, 1)
	ctx := context.Background()
	if err := l.Wait(ctx); err != nil { // spend the burst
		t.Fatal(err)
	}
	l.Observe(200)
	l.Cooldown(100 * time.Millisecond)
	order := make(chan string, 2)
	go func() {
		if err := l.Wait(ctx); err == nil {
			order <- "chatbot"
			l.Observe(200) // the probe after the cooldown
		}
	}()
	// Start the bulk caller only once the chatbot caller is waiting.
	for {
		l.mu.Lock()
		n := l.urgent
		l.mu.Unlock()
		if n == 1 {
			break
		}
		time.Sleep(time.Millisecond)
	}
	go func() {
		if err := l.Wait(WithBulk(ctx)); err == nil {
			order <- "bulk"
		}
	}()
	if first, second := <-order, <-order; first != "chatbot" || second != "bulk" {
		t.Errorf("order = %s, %s; want chatbot first", first, second)
	}
}

func TestProbeBeforeAVolley(t *testing.T) {
	l := New(0, 1)
	ctx := context.Background()
	if err := l.Wait(ctx); err != nil { // the first call of the process is a probe
		t.Fatal(err)
	}
	passed := make(chan struct{}, 4)
	for range 4 {
		go func() {
			if err := l.Wait(ctx); err == nil {
				passed <- struct{}{}
			}
		}()
	}
	select {
	case <-passed:
		t.Fatal("a caller passed while the probe was unanswered")
	case <-time.After(50 * time.Millisecond):
	}
	l.Observe(429) // the probe was throttled: the next caller probes again
	<-passed
	select {
	case <-passed:
		t.Fatal("a second caller passed while the second probe was unanswered")
	case <-time.After(50 * time.Millisecond):
	}
	l.Observe(200) // answered: everyone may go
	for range 3 {
		<-passed
	}
}

func TestA429ToAnIdleProcessOnlyCoolsDown(t *testing.T) {
	now := time.Unix(1000, 0)
	l := NewWithOptions(10, 1, Options{Adaptive: true, Window: 10 * time.Second, Clock: func() time.Time { return now }})
	// A chatbot-only task: one call a minute for ten minutes, then a 429
	// caused by the app's other tasks.
	sendAt(l, &now, 1.0/60, 10*time.Minute)
	l.sent()
	started, _ := l.Cooldown(time.Second)
	if !started {
		t.Fatal("no cooldown started")
	}
	if got := l.Rate(); got != 10 {
		t.Errorf("rate after a 429 to an idle process = %.3f/s, want the ceiling 10/s kept", got)
	}
	// A process whose very first call draws a 429 (a restart during a penalty).
	now = now.Add(time.Hour)
	fresh := NewWithOptions(10, 1, Options{Adaptive: true, Window: 10 * time.Second, Clock: func() time.Time { return now }})
	fresh.sent()
	fresh.Cooldown(time.Second)
	if got := fresh.Rate(); got != 10 {
		t.Errorf("rate after a 429 to the first call = %.3f/s, want 10/s kept", got)
	}
}
