package bench_test

// BenchmarkReprocessWrites: what reprocessing a catalogue whose top tracks
// have not changed costs in DynamoDB writes, with change-aware writes, with
// them off (dynamostore.Options.WriteUnchanged) and with the Lambda
// baseline's write pattern (bench.Baseline itself: 10 + 1 PutItems).
//
// Each round stores reprocessArtists artists once with the real worker
// (default options), enqueues them again and drains the queue a second time:
// the worker with a clock two hours ahead, so that the artists are past
// FreshFor as in a daily refresh (its freshness GetItem runs, then the fetch
// and the Save), or the baseline. The stand-in answers the same ten tracks
// both times, so the second fetch only differs by its fetched_at. Every
// DynamoDB call the worker and the baseline make goes through capacityMeter's
// client option, which asks for ReturnConsumedCapacity=TOTAL and sums the
// answers.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"sync"
	"testing"
	"text/tabwriter"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/smithy-go/middleware"
	"github.com/google/go-cmp/cmp"

	"github.com/sixpotify/top-tracks/internal/fakespotify"
	"github.com/sixpotify/top-tracks/internal/queue/sqsqueue"
	"github.com/sixpotify/top-tracks/internal/spotify"
	"github.com/sixpotify/top-tracks/internal/store"
	"github.com/sixpotify/top-tracks/internal/store/dynamostore"
	"github.com/sixpotify/top-tracks/internal/testenv"
	"github.com/sixpotify/top-tracks/internal/workercmd"
	"github.com/sixpotify/top-tracks/worker"
)

const reprocessArtists = 300

// capacityMeter sums the DynamoDB calls and the capacity units their
// answers report, by kind, of the clients it is an option of (option), which
// ask for ReturnConsumedCapacity=TOTAL on every counted call.
type capacityMeter struct {
	mu sync.Mutex
	c  capacity
}

// capacity is what a capacityMeter counted.
type capacity struct {
	writes, reads int64   // calls, answered or not
	wcu, rcu      float64 // capacity units the answers report
	// noCapacity counts successful answers without ConsumedCapacity.
	noCapacity int64
	// condFailed counts writes refused by their condition. DynamoDB charges
	// them (at least 1 WCU); dynalite's error answers report nothing, so
	// they are not in wcu.
	condFailed int64
}

func (c capacity) minus(o capacity) capacity {
	return capacity{
		writes: c.writes - o.writes, reads: c.reads - o.reads,
		wcu: c.wcu - o.wcu, rcu: c.rcu - o.rcu,
		noCapacity: c.noCapacity - o.noCapacity, condFailed: c.condFailed - o.condFailed,
	}
}

func (d *capacityMeter) snapshot() capacity {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.c
}

func (d *capacityMeter) record(write bool, err error, ccs ...types.ConsumedCapacity) {
	d.mu.Lock()
	defer d.mu.Unlock()
	units := 0.0
	for _, cc := range ccs {
		if cc.CapacityUnits != nil {
			units += *cc.CapacityUnits
		}
	}
	if write {
		d.c.writes++
		d.c.wcu += units
	} else {
		d.c.reads++
		d.c.rcu += units
	}
	var cf *types.ConditionalCheckFailedException
	switch {
	case errors.As(err, &cf):
		d.c.condFailed++
	case err == nil && len(ccs) == 0:
		d.c.noCapacity++
	}
}

// option returns a client option that makes every counted call (dynamoKinds)
// ask for ReturnConsumedCapacity=TOTAL, and records what it answers in d.
func (d *capacityMeter) option() func(*dynamodb.Options) {
	return onDynamoCall("benchCapacity", func(ctx context.Context, write bool, in middleware.InitializeInput, next middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
		in.Parameters = askTotal(in.Parameters)
		out, md, err := next.HandleInitialize(ctx, in)
		var ccs []types.ConsumedCapacity
		if err == nil {
			ccs = consumed(out.Result)
		}
		d.record(write, err, ccs...)
		return out, md, err
	})
}

// askTotal returns a copy of params, the input of a counted call (each has
// the field ReturnConsumedCapacity), that asks for TOTAL. A copy: the
// caller's input stays as it was.
func askTotal(params any) any {
	in := reflect.ValueOf(params).Elem()
	c := reflect.New(in.Type())
	c.Elem().Set(in)
	c.Elem().FieldByName("ReturnConsumedCapacity").Set(reflect.ValueOf(types.ReturnConsumedCapacityTotal))
	return c.Interface()
}

// consumed returns the ConsumedCapacity of result, the output of a counted
// call: one for a single-item call or a Query or Scan, one per table for a
// BatchWriteItem.
func consumed(result any) []types.ConsumedCapacity {
	v := reflect.ValueOf(result)
	if !v.IsValid() || v.IsNil() {
		return nil
	}
	switch cc := v.Elem().FieldByName("ConsumedCapacity").Interface().(type) {
	case *types.ConsumedCapacity:
		if cc != nil {
			return []types.ConsumedCapacity{*cc}
		}
	case []types.ConsumedCapacity:
		return cc
	}
	return nil
}

// The ways to reprocess.
const (
	modeAware    = "change-aware"
	modeAlways   = "always-write"
	modeBaseline = "baseline"
)

var reprocessModes = []string{modeAware, modeAlways, modeBaseline}

// reprocessResult is what one way of reprocessing cost, per artist.
type reprocessResult struct {
	writes, wcu, reads, rcu float64
	condFailed, noCapacity  int64 // in all
	artistsPerSec           float64
	dynamoCPU               time.Duration
	unchanged               int64 // Saves done by the fast path (dynamostore only)
}

// reprocessRound stores n artists with the worker, then reprocesses them in
// mode, and returns what the second pass cost (and the first's, for the
// record).
func reprocessRound(b testing.TB, s *standIn, n int, mode string) (first, again reprocessResult) {
	b.Helper()
	ids := artistIDs(n)
	w := newWorld(b, ids, visibility)
	defer w.close()
	capDB := &capacityMeter{}
	w.db = dynamodb.New(w.rawDB.Options(), capDB.option())
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	c0 := capDB.snapshot()
	if _, err := runWorker(ctx, w, s, workercmd.DefaultConcurrency); err != nil {
		b.Fatalf("first store: %v", err)
	}
	first = perArtist(capDB.snapshot().minus(c0), n)

	if err := enqueue(ctx, sqsqueue.New(w.sqs.Client, w.queueURL, sqsqueue.Options{}), ids); err != nil {
		b.Fatal(err)
	}
	reprocessFrom := time.Now().UTC().Truncate(time.Millisecond)
	c1 := capDB.snapshot()
	_, dynamo0 := emulatorCPU()
	if bb, ok := b.(*testing.B); ok {
		bb.StartTimer()
	}
	start := time.Now()
	var err error
	switch mode {
	case modeBaseline:
		err = baselineDesign(ctx, w, s, workercmd.DefaultConcurrency)
	default:
		later := func(o *worker.Options) {
			o.Clock = func() time.Time { return time.Now().Add(2 * time.Hour) }
		}
		var st *dynamostore.Store
		st, err = runWorkerWith(ctx, w, s, workercmd.DefaultConcurrency,
			dynamostore.Options{WriteUnchanged: mode == modeAlways}, later)
		if err == nil {
			again.unchanged = st.Stats().Unchanged
		}
	}
	elapsed := time.Since(start)
	if bb, ok := b.(*testing.B); ok {
		bb.StopTimer()
	}
	_, dynamo1 := emulatorCPU()
	if err != nil {
		b.Fatalf("%s: reprocess: %v", mode, err)
	}
	unchanged := again.unchanged
	again = perArtist(capDB.snapshot().minus(c1), n)
	again.unchanged = unchanged
	again.artistsPerSec = float64(n) / elapsed.Seconds()
	again.dynamoCPU = (dynamo1 - dynamo0) / time.Duration(n)
	checkReprocessed(b, w, ids, reprocessFrom)
	return first, again
}

func perArtist(c capacity, n int) reprocessResult {
	f := float64(n)
	return reprocessResult{
		writes: float64(c.writes) / f, wcu: c.wcu / f,
		reads: float64(c.reads) / f, rcu: c.rcu / f,
		condFailed: c.condFailed, noCapacity: c.noCapacity,
	}
}

// checkReprocessed checks that every artist's row was written by the second
// pass and that every tenth artist's tracks are still Spotify's.
func checkReprocessed(tb testing.TB, w *world, ids []string, since time.Time) {
	tb.Helper()
	ctx := testContext(tb)
	r := w.reader()
	n := 0
	err := r.ScanArtists(ctx, func(a store.Artist) error {
		if a.Status != store.StatusOK || a.FetchedAt.Before(since) {
			return fmt.Errorf("artist %s: status %s, fetched_at %v: not reprocessed (since %v)", a.ArtistID, a.Status, a.FetchedAt, since)
		}
		n++
		return nil
	})
	if err != nil || n != len(ids) {
		tb.Fatalf("reprocessed %d artists of %d: %v", n, len(ids), err)
	}
	for i := 0; i < len(ids); i += 10 {
		rows, err := r.Tracks(ctx, ids[i])
		if err != nil {
			tb.Fatal(err)
		}
		got := make([]spotify.Track, len(rows))
		for k, row := range rows {
			got[k] = row.Track
		}
		if diff := cmp.Diff(fakespotify.Tracks(ids[i], 0, 10), got); diff != "" {
			tb.Fatalf("artist %s: tracks after reprocessing (-want +got):\n%s", ids[i], diff)
		}
	}
}

// BenchmarkReprocessWrites reports, per artist reprocessed unchanged, the
// DynamoDB write calls and WCU, and read calls and RCU, of each way, and
// the change-aware/always-write and change-aware/baseline ratios.
func BenchmarkReprocessWrites(b *testing.B) {
	b.StopTimer()
	s := newStandIn()
	defer s.srv.Close()
	res := map[string]reprocessResult{}
	var first reprocessResult
	for range b.N {
		for _, mode := range reprocessModes {
			f, r := reprocessRound(b, s, reprocessArtists, mode)
			if mode == modeAware {
				first = f
			}
			res[mode] = sumResults(res[mode], r, b.N)
		}
	}
	aware, always, base := res[modeAware], res[modeAlways], res[modeBaseline]
	for _, m := range reprocessModes {
		r := res[m]
		b.ReportMetric(r.writes, m+"-writes/artist")
		b.ReportMetric(r.wcu, m+"-WCU/artist")
		b.ReportMetric(r.reads, m+"-reads/artist")
		b.ReportMetric(r.rcu, m+"-RCU/artist")
	}
	b.ReportMetric(aware.writes/always.writes, "aware/always-writes")
	b.ReportMetric(aware.wcu/always.wcu, "aware/always-WCU")
	b.ReportMetric(aware.writes/base.writes, "aware/baseline-writes")
	b.ReportMetric(aware.wcu/base.wcu, "aware/baseline-WCU")
	printReprocess(os.Stdout, res, first)
	if aware.unchanged != reprocessArtists || always.unchanged != 0 {
		b.Errorf("fast-path Saves: change-aware %d of %d, always-write %d; want all and none", aware.unchanged, reprocessArtists, always.unchanged)
	}
	for _, m := range reprocessModes {
		if r := res[m]; r.noCapacity > 0 || r.condFailed > 0 {
			b.Errorf("%s: %d answers without ConsumedCapacity, %d refused conditional writes; want 0 and 0", m, r.noCapacity, r.condFailed)
		}
	}
}

// sumResults adds r/rounds to acc (the per-artist mean over the rounds).
func sumResults(acc, r reprocessResult, rounds int) reprocessResult {
	k := float64(rounds)
	acc.writes += r.writes / k
	acc.wcu += r.wcu / k
	acc.reads += r.reads / k
	acc.rcu += r.rcu / k
	acc.artistsPerSec += r.artistsPerSec / k
	acc.dynamoCPU += r.dynamoCPU / time.Duration(rounds)
	acc.condFailed += r.condFailed
	acc.noCapacity += r.noCapacity
	acc.unchanged += r.unchanged / int64(rounds)
	return acc
}

func printReprocess(out io.Writer, res map[string]reprocessResult, first reprocessResult) {
	aware, always, base := res[modeAware], res[modeAlways], res[modeBaseline]
	fmt.Fprintf(out, "\nReprocessing unchanged: %d artists stored once by the worker, then fetched again with the same 10 tracks (newer fetched_at), on dynalite; per artist.\n", reprocessArtists)
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "\tchange-aware\talways-write\tLambda baseline\taware/always\taware/baseline\tbar ≤0.2×\t\n")
	ratio := func(a, b float64) string {
		if b == 0 {
			return "-"
		}
		return fmt.Sprintf("%.3f×", a/b)
	}
	row := func(label, format string, a, w, bl float64, bar bool) {
		bars := ""
		if bar {
			bars = "aware/always " + verdict(5*a <= w) + ", aware/baseline " + verdict(5*a <= bl)
		}
		fmt.Fprintf(tw, "%s\t"+format+"\t"+format+"\t"+format+"\t%s\t%s\t%s\t\n", label, a, w, bl, ratio(a, w), ratio(a, bl), bars)
	}
	row("DynamoDB write calls", "%.2f", aware.writes, always.writes, base.writes, true)
	row("WCU (ConsumedCapacity)", "%.2f", aware.wcu, always.wcu, base.wcu, true)
	row("DynamoDB read calls", "%.2f", aware.reads, always.reads, base.reads, false)
	row("RCU (ConsumedCapacity)", "%.2f", aware.rcu, always.rcu, base.rcu, false)
	row("artists/s (whole reprocess)", "%.1f", aware.artistsPerSec, always.artistsPerSec, base.artistsPerSec, false)
	row("dynalite CPU ms", "%.3f", ms(aware.dynamoCPU), ms(always.dynamoCPU), ms(base.dynamoCPU), false)
	tw.Flush()
	fmt.Fprintf(out, "change-aware: 1 conditional UpdateItem of the artists row per artist; the tracks rows are not touched. always-write: lease UpdateItem (which returns the stored track_ids, so no Query), BatchWriteItem of the 10 rows, PutItem of the artists row. baseline: 10 + 1 PutItems, no reads.\n")
	fmt.Fprintf(out, "Reads: the worker's freshness check is a GetItem per (unforced) message in both worker modes — the change-aware path itself reads nothing, nor since issue 15 does always-write (no Query). A forced message skips the GetItem.\n")
	fmt.Fprintf(out, "First store of the same artists (worker, change-aware, list not yet stored): %.2f write calls/artist (%d refused conditional UpdateItems: the fast path's try, which DynamoDB would charge at least 1 WCU each and dynalite does not report), %.2f WCU/artist, %.2f reads/artist.\n",
		first.writes, first.condFailed, first.wcu, first.reads)
}

// TestCapacityIsReported checks, on a few artists, that dynalite answers
// ReturnConsumedCapacity with non-zero units for every call the benchmark
// counts, and that an unchanged Save takes one UpdateItem.
func TestCapacityIsReported(t *testing.T) {
	ids := artistIDs(3)
	w := newWorld(t, nil, visibility)
	capDB, calls := &capacityMeter{}, &dynamoCalls{}
	db := dynamodb.New(w.rawDB.Options(), capDB.option(), calls.option())
	ctx := testenv.Context(t)
	for _, opts := range []dynamostore.Options{{WriteUnchanged: true}, {}} {
		st, err := dynamostore.NewWithOptions(db, w.tracks, w.artists, opts)
		if err != nil {
			t.Fatal(err)
		}
		for _, id := range ids {
			res := store.Result{ArtistID: id, Market: "US", Status: store.StatusOK, FetchedAt: time.Now(), Tracks: fakespotify.Tracks(id, 0, 10)}
			if err := st.Save(ctx, res); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := st.Tracks(ctx, ids[0]); err != nil {
			t.Fatal(err)
		}
		if _, _, err := st.Artist(ctx, ids[0]); err != nil {
			t.Fatal(err)
		}
	}
	c := capDB.snapshot()
	if c.noCapacity != 0 || c.wcu <= 0 || c.rcu <= 0 {
		t.Errorf("capacity = %+v; want every answer with units, WCU and RCU > 0", c)
	}
	// Second pass: per artist one fast-path UpdateItem; first pass: no
	// fast path (WriteUnchanged), lease, BatchWriteItem, PutItem.
	if want := int64(len(ids) * (3 + 1)); c.writes != want {
		t.Errorf("%d write calls; want %d", c.writes, want)
	}
	if w, r := calls.writes.Load(), calls.reads.Load(); w != c.writes || r != c.reads {
		t.Errorf("dynamoCalls counted %d writes and %d reads; capacityMeter %d and %d", w, r, c.writes, c.reads)
	}
}
