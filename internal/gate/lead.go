package gate

import "context"

// lead is the rule after a pause: one call leads, and the rest wait for its
// answer, so that the pause's end is tested by one call, not a volley. A
// process starts as after a pause. The Gate's lock guards it.
type lead struct {
	needed bool          // the next call leads
	out    bool          // the leading call is out
	done   chan struct{} // closed when the leading call is answered
}

func newLead() lead { return lead{needed: true, done: make(chan struct{})} }

// finish ends the leading call's turn; opened lets every caller through.
func (l *lead) finish(opened bool) {
	l.out = false
	if opened {
		l.needed = false
	}
	close(l.done)
	l.done = make(chan struct{})
}

// opens reports whether an outcome of the leading call opens the way: an
// answer does, a broken one or a 5xx included (Spotify is answering; its
// outage, if it is one, is the breaker's to find); a 429 or no answer at all
// lets the next caller lead instead. Were a broken answer to keep the lead,
// the retries of a few artists whose answers are broken, due first after a
// pause, would lead one by one and fail in a row, as an outage does.
func opens(o Outcome) bool {
	switch o.Fault {
	case RateLimited, Abandoned, Unsent:
		return false
	case Failed:
		return o.Status != 0
	}
	return true
}

// takeLead holds the caller while the leading call is out, and makes the
// caller that call when one is needed.
func (g *Gate) takeLead(ctx context.Context) (leads bool, err error) {
	for {
		g.mu.Lock()
		if !g.lead.needed {
			g.mu.Unlock()
			return false, nil
		}
		if !g.lead.out {
			g.lead.out = true
			g.mu.Unlock()
			return true, nil
		}
		done := g.lead.done
		g.mu.Unlock()
		select {
		case <-done:
		case <-ctx.Done():
			return false, ctx.Err()
		}
	}
}

// dropLead ends a leading call's turn that was not sent.
func (g *Gate) dropLead(leads bool) {
	if !leads {
		return
	}
	g.mu.Lock()
	g.lead.finish(false)
	g.mu.Unlock()
}
