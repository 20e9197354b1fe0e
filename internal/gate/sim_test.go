package gate

import (
	"container/heap"
	"fmt"
	"math"
	"math/rand/v2"
	"time"
)

// The simulator: processes whose quota controllers pace calls against a
// rolling-window quota, in virtual time, calls arriving a little late (the
// jitter) and answers after a latency. It models
// what the Gate does around the controller: a 429 pauses the process until
// its Retry-After, and after a pause one call goes first and the rest wait
// for its answer.

type simServer struct {
	limit      int
	window     time.Duration
	closeFor   time.Duration // penalty: a call over the limit closes the API this long
	calls      []time.Duration
	closedTill time.Duration
	announced  time.Duration // end of the latest Retry-After announced

	ok, tooMany, inside, penalties int
}

// answer decides a call arriving at t: 0 for OK, else the Retry-After.
func (s *simServer) answer(t time.Duration) time.Duration {
	if t < s.announced {
		s.inside++
	}
	if t < s.closedTill {
		s.tooMany++
		return s.closedTill - t
	}
	i := 0
	for i < len(s.calls) && t-s.calls[i] >= s.window {
		i++
	}
	s.calls = s.calls[i:]
	if len(s.calls) >= s.limit {
		s.tooMany++
		if s.closeFor > 0 {
			s.penalties++
			s.closedTill = t + s.closeFor
			return s.closeFor
		}
		return s.calls[0] + s.window - t
	}
	s.calls = append(s.calls, t)
	s.ok++
	return 0
}

type simProc struct {
	q         *quota
	nextSend  time.Duration
	pausedTo  time.Duration
	probeWait bool // a probe is out: send nothing until it is answered
	probing   bool // the next call is a probe
	ok        int
	okAfter   int // OK answers after the measuring start
	sent      int
	work      int // calls left to make (<0: endless)
}

type simEvent struct {
	at     time.Duration
	proc   int
	answer bool
	arrive bool          // the call reaches the server
	ra     time.Duration // for answers: 0 OK, else Retry-After
	probe  bool
}

type simQueue []simEvent

func (h simQueue) Len() int { return len(h) }
func (h simQueue) Less(i, j int) bool {
	return h[i].at < h[j].at || (h[i].at == h[j].at && h[i].answer && !h[j].answer)
}
func (h simQueue) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *simQueue) Push(x any)   { *h = append(*h, x.(simEvent)) }
func (h *simQueue) Pop() any     { old := *h; e := old[len(old)-1]; *h = old[:len(old)-1]; return e }

type simResult struct {
	goodput   float64   // OK answers/s after measureFrom, ÷ quota rate
	shares    []float64 // each process's goodput ÷ quota rate
	share429  float64   // 429s ÷ calls
	inside    int
	penalties int
	drained   time.Duration // when the last process finished its work (work > 0)
	rates     []float64     // each process's final rate
}

func (r simResult) String() string {
	return fmt.Sprintf("goodput %.3f, 429 %.2f%%, inside %d, penalties %d, jain %.3f, shares %.3v, rates %.3v, drained %v",
		r.goodput, 100*r.share429, r.inside, r.penalties, jain(r.shares), r.shares, r.rates, r.drained)
}

type simConfig struct {
	limit       int
	window      time.Duration
	closeFor    time.Duration
	ceiling     float64 // each process's SPOTIFY_RATE
	procs       int
	starts      []time.Duration // when each process starts (default 0)
	stops       []time.Duration // when each process stops sending (0: never)
	latency     time.Duration
	jitter      time.Duration // mean delay from pacing to arrival (see simulate)
	duration    time.Duration
	measureFrom time.Duration
	work        int // calls each process must make (0: endless)
	seed        uint64
}

func simulate(c simConfig) simResult {
	srv := &simServer{limit: c.limit, window: c.window, closeFor: c.closeFor}
	rng := rand.New(rand.NewPCG(uint64(c.procs)+c.seed<<8, uint64(c.window)))
	// Each answer takes the latency ±50%, as answers over a network do.
	latency := func() time.Duration { return time.Duration(float64(c.latency) * (0.5 + rng.Float64())) }
	// A call reaches the server a little after it was paced: a
	// millisecond or two of network and scheduling, and now and then tens
	// of milliseconds (a busy core, a collection), as on a shared machine.
	// Calls bunch so, and a rate just under the quota draws a 429 now
	// and then, as it does in BenchmarkGateSweep against the stand-in.
	jitter := func() time.Duration {
		d := time.Duration(rng.ExpFloat64() * float64(c.jitter))
		if c.jitter > 0 && rng.Float64() < 0.03 {
			d += time.Duration(rng.Float64() * float64(20*c.jitter))
		}
		return d
	}
	base := time.Unix(1_000_000, 0)
	procs := make([]*simProc, c.procs)
	var h simQueue
	for i := range procs {
		// Processes start a little apart, as tasks do.
		start := time.Duration(i) * 137 * time.Millisecond
		if i < len(c.starts) {
			start = c.starts[i]
		}
		procs[i] = &simProc{q: newQuota(c.ceiling, base.Add(start)), nextSend: start, probing: true, work: -1}
		if c.work > 0 {
			procs[i].work = c.work
		}
		heap.Push(&h, simEvent{at: start, proc: i})
	}
	var drained time.Duration
	for h.Len() > 0 {
		e := heap.Pop(&h).(simEvent)
		if e.at > c.duration {
			break
		}
		p := procs[e.proc]
		now := base.Add(e.at)
		if e.arrive {
			heap.Push(&h, simEvent{at: e.at + latency(), proc: e.proc, answer: true, ra: srv.answer(e.at), probe: e.probe})
			continue
		}
		if e.answer {
			if e.probe {
				p.probeWait = false
			}
			if e.ra == 0 {
				p.ok++
				if e.at >= c.measureFrom {
					p.okAfter++
				}
				if p.work > 0 {
					p.work--
					if p.work == 0 {
						drained = max(drained, e.at)
					}
				}
			} else {
				first := e.at >= p.pausedTo
				ra := time.Duration(math.Ceil(e.ra.Seconds())) * time.Second // whole seconds, as Spotify sends
				p.q.on429(now, first, ra, "")
				if first {
					p.pausedTo = e.at + ra
					p.probing = true
				}
			}
			if !p.probeWait {
				heap.Push(&h, simEvent{at: max(e.at, p.nextSend, p.pausedTo), proc: e.proc})
			}
			continue
		}
		// A send opportunity.
		if e.proc < len(c.stops) && c.stops[e.proc] > 0 && e.at >= c.stops[e.proc] {
			continue // the task was removed
		}
		if p.work == 0 || p.probeWait || e.at < p.pausedTo || e.at < p.nextSend {
			if !p.probeWait && p.work != 0 {
				heap.Push(&h, simEvent{at: max(p.nextSend, p.pausedTo), proc: e.proc})
			}
			continue
		}
		rate := p.q.onSend(now)
		p.sent++
		probe := p.probing
		p.probing = false
		heap.Push(&h, simEvent{at: e.at + jitter(), proc: e.proc, arrive: true, probe: probe})
		p.nextSend = e.at + time.Duration(float64(time.Second)/rate)
		if probe {
			p.probeWait = true
			continue
		}
		heap.Push(&h, simEvent{at: p.nextSend, proc: e.proc})
	}
	q := float64(c.limit) / c.window.Seconds()
	span := (c.duration - c.measureFrom).Seconds()
	res := simResult{inside: srv.inside, penalties: srv.penalties, drained: drained}
	total, sent := 0, 0
	for _, p := range procs {
		total += p.okAfter
		sent += p.sent
		res.shares = append(res.shares, float64(p.okAfter)/span/q)
		res.rates = append(res.rates, p.q.rate)
	}
	res.goodput = float64(total) / span / q
	res.share429 = float64(srv.tooMany) / float64(max(sent, 1))
	return res
}

// jain is Jain's fairness index of xs: 1 when all are equal, 1/n when one
// has everything.
func jain(xs []float64) float64 {
	var s, s2 float64
	for _, x := range xs {
		s += x
		s2 += x * x
	}
	if s2 == 0 {
		return 1
	}
	return s * s / (float64(len(xs)) * s2)
}
