package gate

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"
)

// TestPacerAppliesANewRateToQueuedCallers: callers queued at a slow rate go
// at the new one as soon as it is set. rate.Limiter alone would keep their
// reservations, 10s apart, and the last would wait 160s.
func TestPacerAppliesANewRateToQueuedCallers(t *testing.T) {
	p := newPacer(0.1)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := p.Wait(ctx); err != nil { // the one token in the bucket
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for range 16 {
		wg.Go(func() { errs <- p.Wait(ctx) })
	}
	time.Sleep(50 * time.Millisecond) // let them queue
	p.SetLimit(1000)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("a queued caller did not go at the new rate: %v", err)
		}
	}
	if p.Limit() != 1000 {
		t.Errorf("limit %v, want 1000", p.Limit())
	}
}

// TestPacerCancelFreesTheTurn: a caller whose context ends gives up its
// turn, and the next caller is not held behind it.
func TestPacerCancelFreesTheTurn(t *testing.T) {
	p := newPacer(0.1)
	if err := p.Wait(context.Background()); err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := p.Wait(short); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Wait = %v, want the context's deadline", err)
	}
	p.SetLimit(1000)
	ctx, cancel2 := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel2()
	if err := p.Wait(ctx); err != nil {
		t.Fatalf("the next caller was held: %v", err)
	}
}
