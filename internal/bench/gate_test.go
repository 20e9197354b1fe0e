package bench_test

// BenchmarkGate measures what the gate cannot know or control, as the issue
// of the one gate to Spotify asks, and prints one table:
//
//   - the sweep: the stand-in's rolling window ∈ {1s, 2s, 5s, 30s}, its quota
//     20 calls/s, every worker process told SPOTIFY_RATE=60 (3× too high)
//     and nothing about the window, 1, 2 and 4 processes sharing the quota
//     (each its own gate, Spotify client and token, one queue), against the
//     naive consumer of BenchmarkQuotaGoodput (fixed 60/s, each goroutine
//     sleeping its own Retry-After) in the same run;
//   - the penalty: 30 calls per 3s, the API closed 35s after any call over
//     it, SPOTIFY_RATE=100, 150 artists;
//   - outages of 60s — Spotify answering 503, Spotify dropping every
//     connection, the store failing every call, the token endpoint answering
//     503 — with the queue at visibility 10s and maxReceiveCount 3, against
//     the same worker with its breaker switched off.
//
// Processes are worker instances in this test binary, each with a gate,
// client and connection pool of its own: what they share is the stand-in's
// quota and the queue, as ECS tasks do. The queue and store are the
// embedded SQLite ones (the emulators' long-poll quirks are not measured
// here); the store outage is injected at the store's port.

import (
	"context"
	"errors"
	"fmt"
	"net/http/httptest"
	"os"
	"sync/atomic"
	"testing"
	"text/tabwriter"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"

	"github.com/sixpotify/top-tracks/internal/fakespotify"
	"github.com/sixpotify/top-tracks/internal/gate"
	"github.com/sixpotify/top-tracks/internal/spotify"
	"github.com/sixpotify/top-tracks/internal/store/storetest"
	"github.com/sixpotify/top-tracks/worker"
)

const (
	gateQuota    = 20.0 // calls/s the stand-in admits
	gateOverRate = 60.0 // SPOTIFY_RATE of each process
)

// sweepRow is one run of the sweep.
type sweepRow struct {
	design     string
	window     time.Duration
	procs      int
	goodput    float64   // OK/s over the steady span ÷ the quota
	whole      float64   // the same from one window after the first call: the cold start included
	share429   float64   // of all calls
	early429   float64   // of the calls of the first minute (the whole run, before runs were two minutes)
	steady429  float64   // of the calls of the steady span
	cold429    int       // 429s before the steady span: the cold start's cost, whatever the run's length
	inside     int64     // calls inside a Retry-After announced to the same process (token)
	anyInside  int64     // calls inside a Retry-After announced to any process
	readInside int       // calls a process sent inside a Retry-After it had read (see fakespotify.RetryAfterWatch)
	perProc    []float64 // OK answers per process
	elapsed    time.Duration
	artists    int
	stored     int
	penalties  int64
}

func (r sweepRow) jain() float64 {
	var s, s2 float64
	for _, x := range r.perProc {
		s += x
		s2 += x * x
	}
	if s2 == 0 {
		return 1
	}
	return s * s / (float64(len(r.perProc)) * s2)
}

// countingFetcher counts one process's successful fetches.
type countingFetcher struct {
	f  worker.Fetcher
	ok atomic.Int64
}

func (c *countingFetcher) TopTracks(ctx context.Context, id, market string) ([]spotify.Track, error) {
	t, err := c.f.TopTracks(ctx, id, market)
	if err == nil || errors.Is(err, spotify.ErrNotFound) {
		c.ok.Add(1)
	}
	return t, err
}

// runFleet drains artists through procs worker processes against cfg's
// stand-in and measures the run.
func runFleet(b *testing.B, design string, cfg fakespotify.Config, procs, artists int, ceiling float64, timeout time.Duration) sweepRow {
	b.Helper()
	rig := newQuotaRig(b, cfg)
	ids := artistIDs(artists)
	if err := send(testContext(b), rig.chatbot, ids); err != nil {
		b.Fatal(err)
	}
	counters := make([]*countingFetcher, procs)
	var stops []func()
	start := time.Now()
	for i := range procs {
		var g *gate.Gate
		var f worker.Fetcher
		switch design {
		case "worker":
			g = gate.New(gate.Options{Rate: ceiling})
			f = rig.client(b, g)
		case "naive":
			f = retryingFetcher{rig.client(b, fixedRate{rate.NewLimiter(rate.Limit(ceiling), 1)})}
		}
		counters[i] = &countingFetcher{f: f}
		stops = append(stops, rig.startWorker(b, counters[i], g, false))
	}
	for deadline := start.Add(timeout); rig.store.saved(time.Time{}) < len(ids) && time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond)
	}
	for _, stop := range stops {
		stop()
	}
	row := sweepRow{design: design, window: cfg.Window, procs: procs, artists: artists, stored: rig.store.saved(time.Time{})}
	var last time.Time
	for _, id := range ids {
		if t, ok := rig.store.savedAt(id); ok && t.After(last) {
			last = t
		}
	}
	row.elapsed = last.Sub(start)
	for _, c := range counters {
		row.perProc = append(row.perProc, float64(c.ok.Load()))
	}
	st := rig.fake.Stats()
	row.share429 = float64(st.TooMany) / float64(max(st.Requests, 1))
	row.inside, row.anyInside, row.penalties = st.InsideOwnRetryAfter, st.InsideRetryAfter, st.Penalties
	row.readInside = rig.insideRead()
	// Goodput, counted by arrival at the stand-in as the quota counts, up to
	// the last success: over the steady span, from steadyAfter after the
	// first call (when the gates have learnt the quota), and over the whole
	// run from one window after the first call (the cold start, when no
	// gate can know the quota, included).
	calls := rig.calls.all()
	if len(calls) == 0 {
		b.Fatalf("%s: no call reached the stand-in", design)
	}
	steady := calls[0].at.Add(steadyAfter(cfg.Window))
	row.goodput = goodputSince(calls, steady, cfg)
	row.steady429 = share429Between(calls, steady, time.Time{})
	row.early429 = share429Between(calls, time.Time{}, calls[0].at.Add(time.Minute))
	for _, c := range calls {
		if c.status == 429 && c.at.Before(steady) {
			row.cold429++
		}
	}
	row.whole = goodputSince(calls, calls[0].at.Add(cfg.Window), cfg)
	return row
}

// steadyAfter is when the sweep's steady span begins: 25s, or two windows.
func steadyAfter(window time.Duration) time.Duration { return max(25*time.Second, 2*window) }

// goodputSince is the OK answers per second from from to the last one, ÷ the
// quota.
func goodputSince(calls []call, from time.Time, cfg fakespotify.Config) float64 {
	var lastOK time.Time
	for _, c := range calls {
		if c.status == 200 {
			lastOK = c.at
		}
	}
	okN := 0
	for _, c := range calls {
		if c.status == 200 && c.at.After(from) && !c.at.After(lastOK) {
			okN++
		}
	}
	span := lastOK.Sub(from).Seconds()
	if span <= 0 {
		return 0
	}
	return float64(okN) / span / (float64(cfg.Limit) / cfg.Window.Seconds())
}

// share429Between is the share of the calls that came after from and before
// until (a zero time: no bound) that were answered 429: from the steady
// span's start, the steady state's without the cold start's.
func share429Between(calls []call, from, until time.Time) float64 {
	n, tooMany := 0, 0
	for _, c := range calls {
		if c.at.After(from) && (until.IsZero() || c.at.Before(until)) {
			n++
			if c.status == 429 {
				tooMany++
			}
		}
	}
	return float64(tooMany) / float64(max(n, 1))
}

// outageRow is one outage run.
type outageRow struct {
	kind, design     string
	dead             int
	stored, artists  int
	callsDuring      int64 // API calls during the outage
	tokensDuring     int64 // token requests during the outage
	recovery         time.Duration
	opened, postpone float64
}

const (
	outageArtists = 200
	outageFor     = 60 * time.Second
	outageAfter   = 3 * time.Second
)

func runOutage(b *testing.B, kind, design string) outageRow {
	b.Helper()
	ctx := testContext(b)
	q, timed := openTimed(b, "outage.db")
	fs := &storetest.Outage{Store: timed}
	fake := fakespotify.New(fakespotify.Config{ClientID: clientID, ClientSecret: clientSecret, Limit: 100, Window: 5 * time.Second, Latency: spotifyLatency})
	rec := &callRecorder{next: fake}
	hs := httptest.NewServer(rec)
	b.Cleanup(hs.Close)
	srv := hs.URL
	ids := artistIDs(outageArtists)
	if err := send(ctx, q, ids); err != nil {
		b.Fatal(err)
	}
	opts := gate.Options{Rate: gateOverRate}
	if design == "no breaker" {
		opts.BreakerFailures = 1 << 30
	}
	w, reg := gatedWorker(b, q, fs, srv, gate.New(opts))
	runCtx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(runCtx) }()
	defer func() { cancel(); <-done }()

	time.Sleep(outageAfter)
	before := fake.Stats()
	switch kind {
	case "Spotify 503":
		fake.SetDown(503)
	case "Spotify unreachable":
		fake.SetDown(-1)
	case "store":
		fs.Down.Store(true)
	case "store writes": // reads still answer
		fs.WritesDown.Store(true)
	case "token endpoint 503":
		fake.ExpireTokens() // the next calls need a token
		fake.SetTokenDown(503)
	}
	time.Sleep(outageFor)
	fake.SetDown(0)
	fake.SetTokenDown(0)
	fs.Down.Store(false)
	fs.WritesDown.Store(false)
	recovered := time.Now()
	after := fake.Stats()
	row := outageRow{kind: kind, design: design, artists: outageArtists,
		callsDuring: after.Requests - before.Requests, tokensDuring: after.TokenRequests - before.TokenRequests}
	// The setup's context may have ended during the outage.
	ctx, cancelCtx := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancelCtx()
	waitDrained(ctx, q, timed, outageArtists, recovered.Add(3*time.Minute))
	row.recovery = max(timed.lastSaved(ids).Sub(recovered), 0)
	dead, err := q.DeadLetters(ctx)
	if err != nil {
		b.Fatal(err)
	}
	row.dead, row.stored = len(dead), timed.saved(time.Time{})
	row.opened = counterSum(reg, "sixpotify_outage_breaker_opened_total")
	row.postpone = counterSum(reg, "sixpotify_messages_postponed_total")
	return row
}

// BenchmarkGateSweep: the windows × processes table.
func BenchmarkGateSweep(b *testing.B) {
	var rows []sweepRow
	for b.Loop() {
		rows = nil
		for _, w := range []time.Duration{time.Second, 2 * time.Second, 5 * time.Second, 30 * time.Second} {
			// Two minutes for every window: a cold start's 429s are a
			// fixed cost (printed on their own), which a run of one
			// minute, a tenth of a short backfill, spreads over too few
			// calls to say what a fleet draws; the first minute's share
			// is printed too.
			run := max(120*time.Second, 4*w)
			artists := int(gateQuota * run.Seconds())
			limit := int(gateQuota * w.Seconds())
			cfg := fakespotify.Config{Limit: limit, Window: w, Latency: spotifyLatency}
			rows = append(rows, runFleet(b, "naive", cfg, 1, artists, gateOverRate, run+run/2+w))
			for _, n := range []int{1, 2, 4} {
				rows = append(rows, runFleet(b, "worker", cfg, n, artists, gateOverRate, run+run/2+w))
			}
		}
	}
	printSweep(rows)
}

// BenchmarkGatePenalty: 30 calls per 3s, closed 35s after any call over it.
func BenchmarkGatePenalty(b *testing.B) {
	var penalty sweepRow
	for b.Loop() {
		penalty = runFleet(b, "worker", fakespotify.Config{Limit: 30, Window: 3 * time.Second, CloseFor: 35 * time.Second,
			Latency: spotifyLatency}, 1, 150, 100, 5*time.Minute)
	}
	printPenalty(penalty)
}

// BenchmarkGateOutages: 60-second outages, with and without the breaker.
func BenchmarkGateOutages(b *testing.B) {
	var outages []outageRow
	for b.Loop() {
		outages = nil
		for _, kind := range []string{"Spotify 503", "Spotify unreachable", "store", "store writes", "token endpoint 503"} {
			for _, design := range []string{"worker", "no breaker"} {
				outages = append(outages, runOutage(b, kind, design))
			}
		}
	}
	printOutages(outages)
}

func printSweep(rows []sweepRow) {
	out := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
	defer out.Flush()
	fmt.Fprintln(out, "\nThe gate: quota 20 calls/s on the stand-in's rolling window, SPOTIFY_RATE=60 in every process, no window configured.")
	fmt.Fprintln(out, "Goodput ÷ quota over the steady span (from 25s or two windows after the first call, to the last success) and over the whole run (from one window after it).")
	fmt.Fprintln(out, "429 share: of all calls of the two-minute run (the goal's measure, cold start included); first minute: of the calls of its first 60s (the runs were that long before); steady: of the calls of the steady span.")
	fmt.Fprintln(out, "Cold-start 429s: those before the steady span, in all and per process: a fixed cost of starting, which the 429 share spreads over the run's length.")
	fmt.Fprintln(out, "Inside Retry-After: calls a process sent inside a Retry-After announced to it, counted by the stand-in from when it flushed the 429 (goal 0); in brackets, inside one announced to any process.")
	fmt.Fprintln(out, "Sent after reading: calls a process handed to its transport after it had read a 429, inside that Retry-After (a call on its way when the 429 left counts at the stand-in, not here).")
	fmt.Fprintln(out, "window\tdesign\tprocesses\tgoodput (steady)\tgoal\tgoodput (whole run)\t429 share\t429 share (first minute)\t429 share (steady)\tcold-start 429s (per process)\tinside Retry-After\tsent after reading\tJain\tstored\tseconds")
	naive := map[time.Duration]float64{}
	for _, r := range rows {
		goal := "≥ 0.95"
		if r.procs > 1 {
			goal = "≥ 0.90"
		}
		if r.design == "naive" {
			naive[r.window] = r.goodput
			goal = "(baseline)"
		} else {
			ok := r.goodput >= map[bool]float64{true: 0.95, false: 0.90}[r.procs == 1] && r.share429 <= 0.02 && r.inside == 0 && r.jain() >= 0.9
			goal += " " + verdict(ok)
		}
		fmt.Fprintf(out, "%v\t%s\t%d\t%.3f\t%s\t%.3f\t%.2f%%\t%.2f%%\t%.2f%%\t%d (%.1f)\t%d (%d)\t%d\t%.3f\t%d/%d\t%.1f\n", r.window, r.design, r.procs, r.goodput, goal,
			r.whole, 100*r.share429, 100*r.early429, 100*r.steady429, r.cold429, float64(r.cold429)/float64(r.procs), r.inside, r.anyInside, r.readInside, r.jain(), r.stored, r.artists, r.elapsed.Seconds())
	}
	fmt.Fprintln(out, "\nSteady goodput of one worker process ÷ the naive consumer's, same window, same run:")
	for _, r := range rows {
		if r.design == "worker" && r.procs == 1 && naive[r.window] > 0 {
			fmt.Fprintf(out, "  window %v: %.2f×\n", r.window, r.goodput/naive[r.window])
		}
	}
}

func printPenalty(penalty sweepRow) {
	out := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
	defer out.Flush()
	fmt.Fprintf(out, "\nPenalty: 30 calls per 3s, closed 35s after any call over it, SPOTIFY_RATE=100, 150 artists: %d penalties (goal ≤ 2 %s), %d/%d stored in %.1fs (ideal %.0fs: %.1f× it), %.2f%% of calls 429, %d inside a Retry-After (counted from the 429's flush; %d sent after the worker had read it).\n",
		penalty.penalties, verdict(penalty.penalties <= 2), penalty.stored, penalty.artists, penalty.elapsed.Seconds(), 150/10.0,
		penalty.elapsed.Seconds()/15, 100*penalty.share429, penalty.inside, penalty.readInside)
}

func printOutages(outages []outageRow) {
	out := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
	defer out.Flush()
	fmt.Fprintf(out, "\nOutages of %v, %d artists queued, visibility 10s, maxReceiveCount 3, one process at SPOTIFY_RATE=60 (quota 20/s):\n", outageFor, outageArtists)
	fmt.Fprintln(out, "outage\tdesign\tin the DLQ (goal 0)\tstored\tSpotify calls during\ttoken requests during\tseconds from recovery to drained\tbreaker openings\tpostponed")
	for _, o := range outages {
		fmt.Fprintf(out, "%s\t%s\t%d\t%d/%d\t%d\t%d\t%.1f\t%.0f\t%.0f\n", o.kind, o.design, o.dead, o.stored, o.artists,
			o.callsDuring, o.tokensDuring, o.recovery.Seconds(), o.opened, o.postpone)
	}
}

// counterSum adds every series of the counter name in reg.
func counterSum(reg *prometheus.Registry, name string) float64 {
	mfs, err := reg.Gather()
	if err != nil {
		return -1
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			sum += m.GetCounter().GetValue()
		}
	}
	return sum
}
