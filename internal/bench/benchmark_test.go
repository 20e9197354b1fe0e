package bench_test

import (
	"context"
	"fmt"
	"io"
	"math"
	"runtime/debug"
	"sync"
	"testing"
	"text/tabwriter"
	"time"

	"github.com/sixpotify/top-tracks/internal/workercmd"
)

// Artists is how many artists each benchmark round processes.
const Artists = 300

// bigConcurrency is the worker concurrency at which the memory bar applies.
const bigConcurrency = 64

// warmUpArtists go through each design once, unmeasured, before the first
// benchmark: the emulators' JIT warms up, so that running first costs no
// design anything.
const warmUpArtists = 60

// result is what one benchmark measured, per artist over all its rounds.
type result struct {
	concurrency   int
	artistsPerSec float64
	cpu           time.Duration // of this process, per artist
	sqsCPU        time.Duration // of the SQS emulator, per artist
	dynamoCPU     time.Duration // of dynalite, per artist
	spotifyCalls  float64
	tokens        float64 // token requests per round
	ddbWrites     float64
	ddbCalls      float64 // reads included
	sqsCalls      float64
	peakHeap      uint64 // bytes
	peakRuntime   uint64 // bytes
	peakHeld      int64  // messages received and not yet deleted
}

var (
	resultsMu sync.Mutex
	results   = map[string]result{}
	warmUp    sync.Once
)

// design runs one design on a world until its queue is drained.
type design func(ctx context.Context, w *world, s *standIn, concurrency int) error

func baselineDesign(ctx context.Context, w *world, s *standIn, c int) error {
	b, err := runBaseline(ctx, w, s, c)
	if err == nil && b.Stats().Failed > 0 {
		err = fmt.Errorf("%d invocations failed", b.Stats().Failed)
	}
	return err
}

func workerDesign(ctx context.Context, w *world, s *standIn, c int) error {
	_, err := runWorker(ctx, w, s, c)
	return err
}

// measure runs b.N rounds of Artists artists through run, each on a fresh
// queue and fresh tables and on the shared stand-in, and reports the metrics
// under name.
func measure(b *testing.B, name string, concurrency int, run design) {
	measureOn(b, name, sharedStandIn(), concurrency, run)
}

// measureOn is measure on the stand-in s (the warm-up, the first time,
// always runs on the shared one).
func measureOn(b *testing.B, name string, s *standIn, concurrency int, run design) {
	b.StopTimer()
	warmUp.Do(func() {
		for _, d := range []design{baselineDesign, workerDesign} {
			w := newWorld(b, artistIDs(warmUpArtists), visibility)
			if err := d(testContext(b), w, sharedStandIn(), workercmd.DefaultConcurrency); err != nil {
				b.Fatalf("warm-up: %v", err)
			}
			w.close()
		}
	})
	var (
		elapsed, cpu, sqsCPU, dynamoCPU  time.Duration
		spotify, tokens, writes, ddb, sq int64
		heap, rt                         uint64
		held                             int64
	)
	for range b.N {
		w := newWorld(b, artistIDs(Artists), visibility)
		before := s.stats()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		mem := startMemSampler()
		sqs0, dynamo0 := emulatorCPU()
		cpu0, start := cpuTime(), time.Now()
		b.StartTimer()
		err := run(ctx, w, s, concurrency)
		b.StopTimer()
		elapsed += time.Since(start)
		cpu += cpuTime() - cpu0
		sqs1, dynamo1 := emulatorCPU()
		sqsCPU += sqs1 - sqs0
		dynamoCPU += dynamo1 - dynamo0
		h, r := mem.Stop()
		cancel()
		if err != nil {
			b.Fatalf("%s: %v", name, err)
		}
		after := s.stats()
		if stored, err := w.storedArtists(testContext(b)); err != nil || stored != Artists {
			b.Fatalf("%s stored %d artists of %d (%v)", name, stored, Artists, err)
		}
		spotify += after.Requests - before.Requests
		tokens += after.TokenRequests - before.TokenRequests
		writes += w.dbCalls.writes.Load()
		ddb += w.dbCalls.writes.Load() + w.dbCalls.reads.Load()
		sq += w.sqs.calls.Load()
		heap, rt, held = max(heap, h), max(rt, r), max(held, w.sqs.peak.Load())
		w.close()
	}
	n := float64(Artists * b.N)
	res := result{
		concurrency:   concurrency,
		artistsPerSec: n / elapsed.Seconds(),
		cpu:           time.Duration(float64(cpu) / n),
		sqsCPU:        time.Duration(float64(sqsCPU) / n),
		dynamoCPU:     time.Duration(float64(dynamoCPU) / n),
		spotifyCalls:  float64(spotify) / n,
		tokens:        float64(tokens) / float64(b.N),
		ddbWrites:     float64(writes) / n,
		ddbCalls:      float64(ddb) / n,
		sqsCalls:      float64(sq) / n,
		peakHeap:      heap,
		peakRuntime:   rt,
		peakHeld:      held,
	}
	b.ReportMetric(res.artistsPerSec, "artists/s")
	b.ReportMetric(ms(res.cpu), "cpu-ms/artist")
	b.ReportMetric(ms(res.sqsCPU), "sqs-emulator-cpu-ms/artist")
	b.ReportMetric(ms(res.dynamoCPU), "ddb-emulator-cpu-ms/artist")
	b.ReportMetric(res.spotifyCalls, "spotify-calls/artist")
	b.ReportMetric(res.tokens, "tokens/run")
	b.ReportMetric(res.ddbWrites, "ddb-writes/artist")
	b.ReportMetric(res.ddbCalls, "ddb-calls/artist")
	b.ReportMetric(res.sqsCalls, "sqs-calls/artist")
	b.ReportMetric(mb(res.peakHeap), "peak-heap-MB")
	b.ReportMetric(mb(res.peakRuntime), "peak-mem-MB")
	b.ReportMetric(float64(res.peakHeld), "peak-held-msgs")
	resultsMu.Lock()
	results[name] = res
	resultsMu.Unlock()
}

func testContext(tb testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	tb.Cleanup(cancel)
	return ctx
}

func mb(n uint64) float64        { return float64(n) / (1 << 20) }
func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// verdict says whether a bar is met, for the benchmarks' tables.
func verdict(ok bool) string {
	if ok {
		return "met"
	}
	return "MISSED"
}

// compareRow adds a row to a worker/baseline comparison table: the
// baseline's value bv, the worker's wv, and the bar with its verdict.
type compareRow func(label, format string, bv, wv float64, bar string)

// speedRows adds the rows the plain and the HTTPS comparisons share, each
// label after prefix: artists/s and the CPU per artist of this process and
// of each emulator, with the bars on throughput and this process's CPU.
func speedRows(row compareRow, prefix string, base, wk result) {
	row(prefix+"artists/s", "%.1f", base.artistsPerSec, wk.artistsPerSec,
		"≥5× "+verdict(wk.artistsPerSec >= 5*base.artistsPerSec))
	row(prefix+"CPU ms/artist (this process)", "%.3f", ms(base.cpu), ms(wk.cpu),
		"≤0.33× "+verdict(3*wk.cpu <= base.cpu))
	row(prefix+"CPU ms/artist (SQS emulator)", "%.3f", ms(base.sqsCPU), ms(wk.sqsCPU), "")
	row(prefix+"CPU ms/artist (dynalite)", "%.3f", ms(base.dynamoCPU), ms(wk.dynamoCPU), "")
}

// BenchmarkBaseline runs the original design (bench.Baseline) with as many
// invocations at once as the worker's default concurrency.
func BenchmarkBaseline(b *testing.B) {
	measure(b, "baseline", workercmd.DefaultConcurrency, baselineDesign)
}

// BenchmarkWorker runs the worker with its default concurrency, to compare
// with the baseline, and with 64 artists in flight, for the memory bar. It
// runs with no soft memory limit, whatever GOMEMLIMIT says, as bin/worker
// runs when GOMEMLIMIT is unset: the collector at its default pace.
func BenchmarkWorker(b *testing.B) {
	defer debug.SetMemoryLimit(debug.SetMemoryLimit(math.MaxInt64))
	for _, c := range []int{workercmd.DefaultConcurrency, bigConcurrency} {
		name := "worker"
		if c != workercmd.DefaultConcurrency {
			name = fmt.Sprintf("worker-%d", c)
		}
		b.Run(fmt.Sprintf("concurrency=%d", c), func(b *testing.B) { measure(b, name, c, workerDesign) })
	}
}

// printComparison writes the worker/baseline ratios against the project's
// bars, for the benchmarks that ran.
func printComparison(out io.Writer) {
	resultsMu.Lock()
	defer resultsMu.Unlock()
	base, okBase := results["baseline"]
	wk, okWorker := results["worker"]
	big, okBig := results[fmt.Sprintf("worker-%d", bigConcurrency)]
	_, okTLS := results["worker-tls"]
	if _, ok := results["baseline-tls"]; !ok {
		okTLS = false
	}
	if !okBase && !okWorker && !okBig && !okTLS {
		return
	}
	fmt.Fprintf(out, "\nComparison: %d artists per run on the same emulators and Spotify stand-in (latency %v).\n", Artists, spotifyLatency)
	if okBase && okWorker || okTLS {
		tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintf(tw, "concurrency %d\tbaseline\tworker\tworker/baseline\tbar\t\n", workercmd.DefaultConcurrency)
		row := func(label, format string, bv, wv float64, bar string) {
			ratio := "-"
			if bv != 0 {
				ratio = fmt.Sprintf("%.2f×", wv/bv)
			}
			fmt.Fprintf(tw, "%s\t"+format+"\t"+format+"\t%s\t%s\t\n", label, bv, wv, ratio, bar)
		}
		if okBase && okWorker {
			speedRows(row, "", base, wk)
			row("DynamoDB writes/artist", "%.2f", base.ddbWrites, wk.ddbWrites, "")
			row("DynamoDB calls/artist", "%.2f", base.ddbCalls, wk.ddbCalls, "")
			row("SQS calls/artist", "%.2f", base.sqsCalls, wk.sqsCalls, "")
			row("Spotify calls/artist", "%.2f", base.spotifyCalls, wk.spotifyCalls, "=1 "+verdict(wk.spotifyCalls == 1))
			row("token requests/run", "%.0f", base.tokens, wk.tokens, "1/hour "+verdict(wk.tokens <= 1))
			row("peak heap MB", "%.1f", mb(base.peakHeap), mb(wk.peakHeap), "")
			row("peak runtime memory MB", "%.1f", mb(base.peakRuntime), mb(wk.peakRuntime), "")
		}
		if okTLS {
			tlsRows(row)
		}
		tw.Flush()
	} else {
		fmt.Fprintln(out, "(run BenchmarkBaseline and BenchmarkWorker together for the ratios)")
	}
	if okBig {
		fmt.Fprintf(out, "worker at concurrency %d: %.1f artists/s, %.3f CPU ms/artist, peak runtime memory %.1f MB (heap %.1f MB), %d messages held at peak: <40 MB %s\n",
			big.concurrency, big.artistsPerSec, ms(big.cpu), mb(big.peakRuntime), mb(big.peakHeap), big.peakHeld, verdict(mb(big.peakRuntime) < 40))
	}
	if okTLS {
		tlsNote(out)
	}
	fmt.Fprintln(out, "CPU and memory are this process's, the in-process stand-in's included; the emulators run apart. The machine is shared: read the ratios.")
}
