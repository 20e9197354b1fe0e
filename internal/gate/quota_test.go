package gate

import (
	"fmt"
	"math"
	"sync"
	"testing"
	"time"
)

// sweepCase is one point of the sweep.
type sweepCase struct {
	window time.Duration
	over   float64 // SPOTIFY_RATE ÷ the quota
	procs  int
}

type sweepGoals struct{ single, fleet, share429, jain float64 }

func runSweepB(b *testing.B, windows []time.Duration, overs []float64, procs []int, duration time.Duration, g sweepGoals) []string {
	return sweep(b.Logf, windows, overs, procs, duration, g)
}

func runSweep(t *testing.T, windows []time.Duration, overs []float64, procs []int, duration time.Duration, g sweepGoals) []string {
	return sweep(t.Logf, windows, overs, procs, duration, g)
}

func sweep(logf func(string, ...any), windows []time.Duration, overs []float64, procs []int, duration time.Duration, g sweepGoals) (fails []string) {
	var cases []sweepCase
	for _, w := range windows {
		for _, o := range overs {
			for _, n := range procs {
				cases = append(cases, sweepCase{w, o, n})
			}
		}
	}
	results := make([]simResult, len(cases))
	var wg sync.WaitGroup
	sem := make(chan struct{}, 2)
	for i, c := range cases {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			from := max(2*c.window, 10*time.Second)
			results[i] = simulate(simConfig{limit: int(20 * c.window.Seconds()), window: c.window, ceiling: c.over * 20,
				procs: c.procs, latency: 20 * time.Millisecond, duration: max(duration, 2*from), measureFrom: from})
		}()
	}
	wg.Wait()
	for i, c := range cases {
		r := results[i]
		admitted := min(1, c.over*float64(c.procs))
		good := r.goodput / admitted
		var bad []string
		if math.IsNaN(good) || math.IsNaN(jain(r.shares)) {
			bad = append(bad, "nothing measured")
		}
		if goal := map[bool]float64{true: g.single, false: g.fleet}[c.procs == 1]; good < goal {
			bad = append(bad, fmt.Sprintf("goodput %.3f < %.2f", good, goal))
		}
		if r.share429 > g.share429 {
			bad = append(bad, fmt.Sprintf("429 %.2f%% > %.0f%%", 100*r.share429, 100*g.share429))
		}
		if r.inside > 0 {
			bad = append(bad, fmt.Sprintf("%d inside Retry-After", r.inside))
		}
		if j := jain(r.shares); j < g.jain {
			bad = append(bad, fmt.Sprintf("Jain %.3f < %.1f", j, g.jain))
		}
		line := fmt.Sprintf("window %4v, rate %4.1f× quota, %d procs: goodput %.3f of admitted, 429 %.2f%%, Jain %.3f, rates %.3v",
			c.window, c.over, c.procs, good, 100*r.share429, jain(r.shares), r.rates)
		logf("%s", line)
		if len(bad) > 0 {
			fails = append(fails, fmt.Sprintf("%s: %v", line, bad))
		}
	}
	return fails
}

// TestQuotaLearnsAnyWindow runs the controller against rolling windows from
// 1s to 60s, SPOTIFY_RATE 3× and 10× too high, alone and two
// processes sharing the quota, in virtual time. It holds the floor every
// change must keep (the goals and the full sweep are BenchmarkQuotaSweep's).
func TestQuotaLearnsAnyWindow(t *testing.T) {
	fails := runSweep(t, []time.Duration{time.Second, 5 * time.Second, 60 * time.Second},
		[]float64{3, 10}, []int{1, 2}, 120*time.Second, floors)
	for _, f := range fails {
		t.Error(f)
	}
}

// floors are what TestQuotaLearnsAnyWindow requires; goals what the
// benchmark reports against.
var (
	floors = sweepGoals{single: 0.92, fleet: 0.88, share429: 0.025, jain: 0.9}
	goals  = sweepGoals{single: 0.95, fleet: 0.90, share429: 0.02, jain: 0.9}
)

// BenchmarkQuotaSweep prints the whole sweep: windows 1s–60s, SPOTIFY_RATE
// from half the quota to 10× it, 1, 2 and 4 processes, 300 virtual seconds
// each, and the cases that miss a goal.
func BenchmarkQuotaSweep(b *testing.B) {
	var fails []string
	for b.Loop() {
		fails = runSweepB(b, []time.Duration{time.Second, 2 * time.Second, 5 * time.Second, 30 * time.Second, 60 * time.Second},
			[]float64{0.5, 1.5, 3, 10}, []int{1, 2, 4}, 300*time.Second, goals)
	}
	b.Logf("%d cases miss a goal:", len(fails))
	for _, f := range fails {
		b.Log(f)
	}
}

// TestPenaltyDrawnAtMostTwice: a stand-in that admits 30 calls per 3s and
// closes the API for 35s after any call over it, SPOTIFY_RATE 100.
func TestPenaltyDrawnAtMostTwice(t *testing.T) {
	r := simulate(simConfig{limit: 30, window: 3 * time.Second, closeFor: 35 * time.Second, ceiling: 100, procs: 1,
		latency: 20 * time.Millisecond, duration: 30 * time.Minute, work: 150})
	t.Logf("150 artists: %v (ideal 15s)", r)
	if r.penalties > 2 || r.inside > 0 {
		t.Errorf("%d penalties, %d calls inside a Retry-After; want at most 2 and none", r.penalties, r.inside)
	}
	if r.drained == 0 {
		t.Error("the 150 calls never all succeeded")
	}
	long := simulate(simConfig{limit: 30, window: 3 * time.Second, closeFor: 35 * time.Second, ceiling: 100, procs: 1,
		latency: 20 * time.Millisecond, duration: 10 * time.Minute, measureFrom: 5 * time.Minute})
	t.Logf("endless backlog: %v", long)
	if long.penalties > 2 {
		t.Errorf("an endless backlog drew %d penalties in 10 minutes; want at most 2", long.penalties)
	}
}

// TestFleetTasksComeAndGo: autoscaling adds a task to one that holds the
// quota, then removes the first. The newcomer must get a fair share, and the
// one left must take the freed share, with no window told to either.
func TestFleetTasksComeAndGo(t *testing.T) {
	for _, w := range []time.Duration{2 * time.Second, 30 * time.Second} {
		added := simulate(simConfig{limit: int(20 * w.Seconds()), window: w, ceiling: 60, procs: 2,
			starts: []time.Duration{0, 2 * time.Minute}, latency: 20 * time.Millisecond,
			duration: 8 * time.Minute, measureFrom: 5 * time.Minute})
		t.Logf("window %v, a task added at 2m, measured from 5m: %v", w, added)
		if added.goodput < 0.9 || jain(added.shares) < 0.9 {
			t.Errorf("window %v: with a task added, goodput %.3f and Jain %.3f; want both ≥ 0.9", w, added.goodput, jain(added.shares))
		}
		removed := simulate(simConfig{limit: int(20 * w.Seconds()), window: w, ceiling: 60, procs: 2,
			stops: []time.Duration{2 * time.Minute, 0}, latency: 20 * time.Millisecond,
			duration: 8 * time.Minute, measureFrom: 5 * time.Minute})
		t.Logf("window %v, a task removed at 2m, measured from 5m: %v", w, removed)
		if removed.goodput < 0.9 {
			t.Errorf("window %v: with a task removed, the one left reached %.3f of the quota; want ≥ 0.9", w, removed.goodput)
		}
	}
}
