package gate

import (
	"context"
	"time"
)

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

const (
	// laneMemory: a lane that sent within it is being served.
	laneMemory = 30 * time.Second
	// mixedShare: while both lanes are served and the quota's line is
	// found, the calls of both keep to this share of the rate (the bulk
	// lane waits for it), clear of the line.
	mixedShare = 0.9
)

// lanes is the chatbot's priority over the bulk lane. Chatbot callers go
// first: a bulk caller waits while any chatbot caller is waiting, and one
// bulk caller at a time stands at the rate's pacer, so that a chatbot
// caller that arrives waits about one interval at most, whatever the bulk
// backlog. The bulk lane takes what the chatbot's leaves: the whole rate
// during a backfill alone; while both lanes are served (mixed), the two
// keep mixedShare of the rate once the quota's line is found, and the
// controller reaches no higher, since a reach that finds the line draws a
// 429, which pauses the user's call with the backfill's. The Gate's lock
// guards the fields.
type lanes struct {
	urgent     int           // chatbot callers waiting
	urgentDone chan struct{} // closed when urgent falls to 0
	bulkTurn   chan struct{} // one bulk caller at a time at the pacers

	lastChatbot, lastBulk time.Time
	mixed                 bool
}

func newLanes() lanes {
	return lanes{urgentDone: make(chan struct{}), bulkTurn: make(chan struct{}, 1)}
}

// sent records a call of a lane at now and returns whether both lanes are
// being served.
func (l *lanes) sent(now time.Time, bulk bool) (mixed bool) {
	if bulk {
		l.lastBulk = now
	} else {
		l.lastChatbot = now
	}
	l.mixed = now.Sub(l.lastChatbot) < laneMemory && now.Sub(l.lastBulk) < laneMemory
	return l.mixed
}

// arrive counts a chatbot caller until the returned func is called.
func (g *Gate) arrive() (leave func()) {
	g.mu.Lock()
	g.lanes.urgent++
	g.mu.Unlock()
	return func() {
		g.mu.Lock()
		if g.lanes.urgent--; g.lanes.urgent == 0 {
			close(g.lanes.urgentDone)
			g.lanes.urgentDone = make(chan struct{})
		}
		g.mu.Unlock()
	}
}

// laneTurn is a bulk caller's wait before the rate's: its lane's turn, then
// no chatbot caller waiting, then the bulk lane's pacer. It holds the turn
// until release. A chatbot caller has nothing to wait for here.
func (g *Gate) laneTurn(ctx context.Context, bulk bool) (release func(), err error) {
	if !bulk {
		return func() {}, nil
	}
	select {
	case g.lanes.bulkTurn <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	release = func() { <-g.lanes.bulkTurn }
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

// yield waits while chatbot callers are waiting.
func (g *Gate) yield(ctx context.Context) error {
	for {
		g.mu.Lock()
		n, done := g.lanes.urgent, g.lanes.urgentDone
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
