package gate

import (
	"context"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// pacer spaces calls at a rate that changes as the quota is learnt: a token
// bucket of burst 1 (golang.org/x/time/rate) with one caller at a time
// holding a reservation.
//
// rate.Limiter alone keeps every reservation made at the old rate when the
// rate changes: with sixteen callers queued in Wait at 5 calls/s, a new rate
// would apply only after 3.2 s of calls paced at the old one, longer than
// the step that is meant to prove it. So callers queue for their turn (a
// channel of one, which Go serves in order) and only the one at the head
// reserves; a change of rate cancels its reservation and it reserves again
// at the new rate.
type pacer struct {
	lim  *rate.Limiter
	turn chan struct{}

	mu      sync.Mutex
	changed chan struct{} // closed when the rate changes
}

func newPacer(r rate.Limit) *pacer {
	return &pacer{lim: rate.NewLimiter(r, 1), turn: make(chan struct{}, 1), changed: make(chan struct{})}
}

// Wait blocks until the caller may act, or ctx ends.
func (p *pacer) Wait(ctx context.Context) error {
	select {
	case p.turn <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-p.turn }()
	for {
		p.mu.Lock()
		changed := p.changed
		p.mu.Unlock()
		r := p.lim.Reserve()
		d := r.Delay()
		if d == 0 {
			return nil
		}
		t := time.NewTimer(d)
		select {
		case <-t.C:
			return nil
		case <-changed:
			t.Stop()
			r.Cancel()
		case <-ctx.Done():
			t.Stop()
			r.Cancel()
			return ctx.Err()
		}
	}
}

// SetLimit changes the rate, for the caller waiting now too.
func (p *pacer) SetLimit(r rate.Limit) {
	if r == p.lim.Limit() {
		return
	}
	p.lim.SetLimit(r)
	p.mu.Lock()
	close(p.changed)
	p.changed = make(chan struct{})
	p.mu.Unlock()
}

// Take counts a call made without waiting: the next callers wait for it.
func (p *pacer) Take() {
	p.lim.Reserve()
}

// Limit returns the rate.
func (p *pacer) Limit() rate.Limit { return p.lim.Limit() }
