package bench_test

// The quota benchmarks: Spotify's rolling-window quota as the physical limit
// of the worker. They run on the embedded SQLite lanes and store and on the
// stand-in with a quota scaled down from Spotify's 30-second window to 5
// seconds (100 calls per 5 s: 20 calls/s allowed), so that a run sees many
// windows in under a minute.
//
//   - BenchmarkQuotaGoodput: the worker with its rate set 3× too high
//     (60/s, adaptive, as SPOTIFY_RATE=60 would wire
//     it), against a naive consumer in the same run: the same worker and
//     client with a plain fixed-rate limiter at 60/s and a fetcher that, on
//     a 429, sleeps its own Retry-After and retries the request, as typical
//     Go and Node consumers do.
//   - BenchmarkQuotaChatbotLatency: the chatbot lane's latency, enqueue to
//     rows durable, while a 10,000-artist backlog drains on the bulk lane.
//
// Both print their figures and report them as metrics; neither asserts.

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"text/tabwriter"
	"time"

	"golang.org/x/time/rate"

	"github.com/sixpotify/top-tracks/internal/ctxsleep"
	"github.com/sixpotify/top-tracks/internal/fakespotify"
	"github.com/sixpotify/top-tracks/internal/gate"
	"github.com/sixpotify/top-tracks/internal/spotify"
	"github.com/sixpotify/top-tracks/worker"
)

const (
	// quotaLimit calls in any quotaWindow: the stand-in's rolling window.
	quotaLimit  = 100
	quotaWindow = 5 * time.Second
	// quotaRate is what the quota allows, in calls per second.
	quotaRate = float64(quotaLimit) / float64(quotaWindow/time.Second)
	// overRate is the worker's configured rate, 3× the quota.
	overRate = 60
	// goodputArtists keeps a run at the quota for about 40 s: eight
	// windows, of which at least six whole ones after the first.
	goodputArtists = 800
	// goodputTimeout bounds a goodput run that does not drain.
	goodputTimeout = 75 * time.Second

	backlogArtists = 10_000
	chatbotArtists = 50
	chatbotEvery   = 500 * time.Millisecond
	chatbotFirst   = time.Second // after the worker starts
	latencyRun     = 40 * time.Second
	latencyGoal    = 3 * time.Second
)

// fixedRate is the naive consumer's limiter: a token bucket and nothing
// else: it learns nothing from an outcome, so the Spotify client neither
// pauses other goroutines on a 429 nor probes.
type fixedRate struct{ lim *rate.Limiter }

func (f fixedRate) Wait(ctx context.Context) (func(gate.Outcome), error) {
	return func(gate.Outcome) {}, f.lim.Wait(ctx)
}

// StillClear: a fixedRate never pauses.
func (fixedRate) StillClear() bool { return true }

// retryingFetcher is the naive consumer's per-request retry: on a 429 the
// goroutine sleeps the answer's Retry-After (a second when it has none) and
// sends the same request again; other goroutines carry on meanwhile.
type retryingFetcher struct{ c *spotify.Client }

func (f retryingFetcher) TopTracks(ctx context.Context, id, market string) ([]spotify.Track, error) {
	for {
		tracks, err := f.c.TopTracks(ctx, id, market)
		var rl *spotify.RateLimitError
		if !errors.As(err, &rl) {
			return tracks, err
		}
		if !ctxsleep.For(ctx, max(rl.RetryAfter, time.Second)) {
			return nil, ctx.Err()
		}
	}
}

// windowRow is what one quota window of a run saw.
type windowRow struct {
	from          time.Duration // since the first call
	sent, ok, too int
	rate          float64 // the limiter's rate at the window's end (NaN: none)
}

// goodputResult is what one goodput run measured.
type goodputResult struct {
	design                  string
	stored                  int
	elapsed                 time.Duration // worker start to the last artist stored
	requests, ok, tooMany   int64
	inside                  int64 // calls inside an announced Retry-After
	span                    time.Duration
	goodputSpan             float64 // OK/s over the span ÷ quotaRate
	steadyWindows, steadyOK int
	goodput                 float64 // over the steady windows
	timeline                []windowRow
	tooManyAt               []time.Duration // arrival of each 429, since the first call
}

func (r goodputResult) share429() float64 { return float64(r.tooMany) / float64(max(r.requests, 1)) }

var (
	goodputMu      sync.Mutex
	goodputResults = map[string]goodputResult{}
)

// BenchmarkQuotaGoodput measures, for the worker and the naive consumer,
// how much of the quota becomes successful calls, how many calls draw a
// 429 and how many are sent inside an announced Retry-After.
func BenchmarkQuotaGoodput(b *testing.B) {
	designs := []string{"worker", "naive"}
	for _, d := range designs {
		b.Run("design="+d, func(b *testing.B) {
			var res goodputResult
			for b.Loop() {
				res = runGoodput(b, d)
			}
			b.ReportMetric(res.goodput, "goodput")
			b.ReportMetric(res.goodputSpan, "goodput-first-to-last")
			b.ReportMetric(100*res.share429(), "429-%")
			b.ReportMetric(float64(res.inside), "inside-retry-after")
			b.ReportMetric(float64(res.requests), "calls")
			goodputMu.Lock()
			goodputResults[d] = res
			goodputMu.Unlock()
		})
	}
	goodputMu.Lock()
	defer goodputMu.Unlock()
	printGoodput(designs)
}

func runGoodput(b *testing.B, design string) goodputResult {
	b.Helper()
	rig := newQuotaRig(b, fakespotify.Config{Limit: quotaLimit, Window: quotaWindow, Latency: spotifyLatency})
	ids := artistIDs(goodputArtists)
	if err := send(testContext(b), rig.chatbot, ids); err != nil {
		b.Fatal(err)
	}
	var (
		fetcher worker.Fetcher
		limiter *gate.Gate
		samples func() []rateSample
	)
	switch design {
	case "worker":
		limiter = gate.New(gate.Options{Rate: overRate})
		fetcher = rig.client(b, limiter)
		samples = sampleRate(limiter)
	case "naive":
		fetcher = retryingFetcher{rig.client(b, fixedRate{rate.NewLimiter(overRate, 1)})}
	}
	start := time.Now()
	stop := rig.startWorker(b, fetcher, limiter, false)
	for deadline := start.Add(goodputTimeout); rig.store.saved(time.Time{}) < len(ids) && time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond)
	}
	stop()
	var rs []rateSample
	if samples != nil {
		rs = samples()
	}

	res := goodputResult{design: design, stored: rig.store.saved(time.Time{})}
	var lastSaved time.Time
	for _, id := range ids {
		if t, ok := rig.store.savedAt(id); ok && t.After(lastSaved) {
			lastSaved = t
		}
	}
	res.elapsed = lastSaved.Sub(start)
	st := rig.fake.Stats()
	res.requests, res.ok, res.tooMany, res.inside = st.Requests, st.OK, st.TooMany, st.InsideRetryAfter

	calls := rig.calls.all()
	if len(calls) == 0 {
		b.Fatalf("%s: no call reached the stand-in", design)
	}
	first, last := calls[0].at, time.Time{}
	for _, c := range calls {
		if c.status == 200 {
			last = c.at
		}
		if c.status == 429 {
			res.tooManyAt = append(res.tooManyAt, c.at.Sub(first))
		}
	}
	// Goodput is counted on the stand-in's side, by the arrival of each call,
	// as the quota counts them.
	//
	// goodputSpan is over [first call, last success]: nothing was sent before
	// the first call, and after the last success there was nothing left to
	// do, so no idle time is charged to the design. But the span is not a
	// whole number of windows, and a rolling window lets through up to
	// quotaLimit·⌈span/window⌉ calls in it: the first window's full
	// allowance, spent at once at 60/s, can push this figure over 1.
	//
	// goodput (the headline figure) is over the steady part: the k whole
	// windows (last−k·W, last] ending at the last success, where k leaves out
	// at least the first window from the first call. The first window is the
	// cold start — no limiter can know the quota before its first 429, and
	// both designs spend that window's allowance in a burst. Over k whole
	// windows a rolling window allows exactly k·quotaLimit calls, so the
	// figure is the share of what Spotify physically allowed that became
	// successes: at most 1, with no edge bonus.
	res.span = last.Sub(first)
	res.goodputSpan = float64(res.ok) / res.span.Seconds() / quotaRate
	if k := int((res.span - quotaWindow) / quotaWindow); k >= 1 {
		from := last.Add(-time.Duration(k) * quotaWindow)
		for _, c := range calls {
			if c.status == 200 && c.at.After(from) && !c.at.After(last) {
				res.steadyOK++
			}
		}
		res.steadyWindows = k
		res.goodput = float64(res.steadyOK) / float64(k*quotaLimit)
	} else {
		res.goodput = math.NaN()
	}
	res.timeline = timeline(calls, first, rs)
	return res
}

// timeline cuts the calls into quota windows from the first call.
func timeline(calls []call, first time.Time, rs []rateSample) []windowRow {
	var rows []windowRow
	for _, c := range calls {
		i := int(c.at.Sub(first) / quotaWindow)
		for len(rows) <= i {
			from := time.Duration(len(rows)) * quotaWindow
			rows = append(rows, windowRow{from: from, rate: rateAt(rs, first.Add(from+quotaWindow))})
		}
		rows[i].sent++
		switch c.status {
		case 200:
			rows[i].ok++
		case 429:
			rows[i].too++
		}
	}
	return rows
}

func printGoodput(designs []string) {
	out := os.Stdout
	fmt.Fprintf(out, "\nQuota goodput: stand-in quota %d calls per %v rolling (%.0f/s), latency %v; %d artists, concurrency 16, rate set to %d/s.\n",
		quotaLimit, quotaWindow, quotaRate, spotifyLatency, goodputArtists, overRate)
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "design\tstored\tcalls\tOK\t429\t429 share\tinside Retry-After\tfirst→last success\tgoodput (first→last)\tsteady windows\tgoodput (steady)\t\n")
	var rows []goodputResult
	for _, d := range designs {
		r, ok := goodputResults[d]
		if !ok {
			continue
		}
		rows = append(rows, r)
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%.2f%%\t%d\t%.1fs\t%.3f\t%d\t%.3f\t\n",
			r.design, r.stored, r.requests, r.ok, r.tooMany, 100*r.share429(), r.inside, r.span.Seconds(), r.goodputSpan, r.steadyWindows, r.goodput)
	}
	if w, ok1 := goodputResults["worker"]; ok1 {
		if n, ok2 := goodputResults["naive"]; ok2 {
			ratio := func(a, b float64) string {
				if b == 0 {
					return "-"
				}
				return fmt.Sprintf("%.2f×", a/b)
			}
			fmt.Fprintf(tw, "worker/naive\t\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t\t%s\t\n",
				ratio(float64(w.requests), float64(n.requests)), ratio(float64(w.ok), float64(n.ok)),
				ratio(float64(w.tooMany), float64(n.tooMany)), ratio(w.share429(), n.share429()),
				ratio(float64(w.inside), float64(n.inside)), ratio(w.span.Seconds(), n.span.Seconds()),
				ratio(w.goodputSpan, n.goodputSpan), ratio(w.goodput, n.goodput))
		}
	}
	tw.Flush()
	for _, r := range rows {
		fmt.Fprintf(out, "%s: goodput ≥ 0.95 %s, 429 share ≤ 2%% %s, inside Retry-After = 0 %s\n",
			r.design, verdict(r.goodput >= 0.95), verdict(r.share429() <= 0.02), verdict(r.inside == 0))
	}
	for _, r := range rows {
		fmt.Fprintf(out, "%s by window (from the first call): sent/OK/429", r.design)
		if r.design == "worker" {
			fmt.Fprint(out, " @rate at the window's end")
		}
		fmt.Fprintln(out)
		var cells []string
		for _, w := range r.timeline {
			c := fmt.Sprintf("%2.0fs %d/%d/%d", w.from.Seconds(), w.sent, w.ok, w.too)
			if !math.IsNaN(w.rate) {
				c += fmt.Sprintf(" @%.1f", w.rate)
			}
			cells = append(cells, c)
		}
		fmt.Fprintf(out, "  %s\n", strings.Join(cells, " | "))
		fmt.Fprintf(out, "  429s at %s\n", clusters(r.tooManyAt))
	}
}

// clusters prints instants as groups: "1.7s×3, 21.4s×1".
func clusters(ts []time.Duration) string {
	if len(ts) == 0 {
		return "none"
	}
	var parts []string
	for i := 0; i < len(ts); {
		j := i + 1
		for j < len(ts) && ts[j]-ts[j-1] < 500*time.Millisecond {
			j++
		}
		parts = append(parts, fmt.Sprintf("%.1fs×%d", ts[i].Seconds(), j-i))
		i = j
	}
	return strings.Join(parts, ", ")
}

// latencyResult is what one chatbot-latency run measured.
type latencyResult struct {
	latencies []time.Duration // of the chatbot artists stored, sorted
	enqueued  []time.Duration // when each chatbot artist was enqueued, since the start
	lat       []time.Duration // by chatbot artist, -1: not stored within the run
	missing   int
	bulk      int // bulk artists stored within the run
	st        fakespotify.Stats
	tooManyAt []time.Duration
	timeline  []windowRow
}

// BenchmarkQuotaChatbotLatency measures how long a chatbot artist takes from
// enqueue to its rows being durable while a bulk backlog drains at the
// quota, and the bulk lane's throughput meanwhile.
func BenchmarkQuotaChatbotLatency(b *testing.B) {
	var res latencyResult
	for b.Loop() {
		res = runLatency(b)
	}
	p50, p99 := percentile(res.latencies, 0.50), percentile(res.latencies, 0.99)
	bulkRate := float64(res.bulk) / latencyRun.Seconds()
	b.ReportMetric(secs(p50), "chatbot-p50-s")
	b.ReportMetric(secs(p99), "chatbot-p99-s")
	b.ReportMetric(float64(res.missing), "chatbot-missing")
	b.ReportMetric(bulkRate, "bulk-artists/s")
	b.ReportMetric(float64(res.st.TooMany), "429s")
	b.ReportMetric(float64(res.st.InsideRetryAfter), "inside-retry-after")

	out := os.Stdout
	fmt.Fprintf(out, "\nChatbot latency: quota %d per %v (%.0f/s), rate set to %d/s adaptive, concurrency 16; %d bulk artists queued, %d chatbot artists one every %v from %v; run %v.\n",
		quotaLimit, quotaWindow, quotaRate, overRate, backlogArtists, chatbotArtists, chatbotEvery, chatbotFirst, latencyRun)
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "chatbot p50\tp99\tmax\tover %v\tnot stored\tbulk artists/s\tbulk/quota\tAPI OK/s\t429\tinside Retry-After\t\n", latencyGoal)
	over := 0
	for _, l := range res.latencies {
		if l > latencyGoal {
			over++
		}
	}
	fmt.Fprintf(tw, "%.2fs\t%.2fs\t%.2fs\t%d\t%d\t%.1f\t%.2f\t%.1f\t%d\t%d\t\n",
		secs(p50), secs(p99), secs(percentile(res.latencies, 1)), over, res.missing,
		bulkRate, bulkRate/quotaRate, float64(res.st.OK)/latencyRun.Seconds(), res.st.TooMany, res.st.InsideRetryAfter)
	tw.Flush()
	fmt.Fprintf(out, "p99 ≤ %v %s (nearest rank: with %d samples p99 is the %s)\n", latencyGoal,
		verdict(res.missing == 0 && p99 <= latencyGoal), len(res.latencies), map[bool]string{true: "maximum", false: "99th percentile"}[len(res.latencies) < 100])
	// The slowest three, and every one not stored, with when each was enqueued.
	order := make([]int, len(res.lat))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(i, j int) int {
		li, lj := res.lat[i], res.lat[j]
		if li < 0 {
			li = time.Duration(math.MaxInt64)
		}
		if lj < 0 {
			lj = time.Duration(math.MaxInt64)
		}
		return -cmp.Compare(li, lj)
	})
	var slow []string
	for n, i := range order {
		if n >= 3 && res.lat[i] >= 0 {
			break
		}
		s := "not stored"
		if res.lat[i] >= 0 {
			s = fmt.Sprintf("%.2fs", res.lat[i].Seconds())
		}
		slow = append(slow, fmt.Sprintf("%s (enqueued at %.1fs)", s, res.enqueued[i].Seconds()))
	}
	fmt.Fprintf(out, "slowest chatbot artists: %s\n", strings.Join(slow, ", "))
	fmt.Fprintln(out, "by window (from the first call): sent/OK/429 @rate at the window's end")
	var cells []string
	for _, w := range res.timeline {
		cells = append(cells, fmt.Sprintf("%2.0fs %d/%d/%d @%.1f", w.from.Seconds(), w.sent, w.ok, w.too, w.rate))
	}
	fmt.Fprintf(out, "  %s\n  429s at %s\n", strings.Join(cells, " | "), clusters(res.tooManyAt))
}

func runLatency(b *testing.B) latencyResult {
	b.Helper()
	rig := newQuotaRig(b, fakespotify.Config{Limit: quotaLimit, Window: quotaWindow, Latency: spotifyLatency})
	backlog := artistIDs(backlogArtists)
	if err := send(testContext(b), rig.bulk, backlog); err != nil {
		b.Fatal(err)
	}
	asked := artistIDs(chatbotArtists)
	limiter := gate.New(gate.Options{Rate: overRate})
	samples := sampleRate(limiter)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	start := time.Now()
	stop := rig.startWorker(b, rig.client(b, limiter), limiter, true)
	enqueued := make([]time.Time, len(asked))
	sent := make(chan error, 1)
	go func() {
		for i, id := range asked {
			if !ctxsleep.For(ctx, time.Until(start.Add(chatbotFirst+time.Duration(i)*chatbotEvery))) {
				sent <- ctx.Err()
				return
			}
			enqueued[i] = time.Now()
			if err := send(ctx, rig.chatbot, []string{id}); err != nil {
				sent <- err
				return
			}
		}
		sent <- nil
	}()
	end := start.Add(latencyRun)
	time.Sleep(time.Until(end))
	if err := <-sent; err != nil {
		b.Fatal(err)
	}
	// The figures are the run's: what the stop's drain sends is left out.
	st := rig.fake.Stats()
	stop()
	rs := samples()

	res := latencyResult{st: st}
	for i, id := range asked {
		res.enqueued = append(res.enqueued, enqueued[i].Sub(start))
		t, ok := rig.store.savedAt(id)
		if !ok || t.After(end) {
			res.missing++
			res.lat = append(res.lat, -1)
			continue
		}
		res.lat = append(res.lat, t.Sub(enqueued[i]))
		res.latencies = append(res.latencies, t.Sub(enqueued[i]))
	}
	slices.Sort(res.latencies)
	for _, id := range backlog {
		if t, ok := rig.store.savedAt(id); ok && !t.After(end) {
			res.bulk++
		}
	}
	calls := rig.calls.all()
	calls = slices.DeleteFunc(calls, func(c call) bool { return c.at.After(end) })
	if len(calls) > 0 {
		first := calls[0].at
		for _, c := range calls {
			if c.status == 429 {
				res.tooManyAt = append(res.tooManyAt, c.at.Sub(first))
			}
		}
		res.timeline = timeline(calls, first, rs)
	}
	return res
}
