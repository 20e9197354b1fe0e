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
