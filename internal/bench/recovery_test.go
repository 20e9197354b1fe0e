package bench_test

// BenchmarkGateRecovery measures what the gate issue asks of pauses, on the
// stand-in with the embedded queue (visibility 10 s, maxReceiveCount 3) and
// one worker process: a quota of 60 calls per rolling 3 s (20/s) and
// SPOTIFY_RATE=20, nothing told about the window.
//
//   - outages of 180 s after 50 artists are stored: Spotify answering 503,
//     its token endpoint answering 503, the store failing every call;
//   - Spotify flapping: 20 s down (503), 20 s up, four times;
//   - every artist answered with an HTML error page (a 200) for 60 s;
//   - five artists with broken answers of each kind among 55 good ones.
//
// For each: the dead-letter queue (goal 0, or the five), the seconds from
// recovery to drained against the work's time at the quota (goal at most
// 2×), and the learnt rate 10 s after recovery against the rate before
// (goal at least 0.9). It also draws the flapping run and a penalty run
// (30 calls per 3 s, the API closed 35 s after any call over it,
// SPOTIFY_RATE=100) as SVG pictures in docs/: the learnt rate, the quota,
// the 429s and the breaker's state over time.

import (
	"context"
	"fmt"
	"image/color"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"text/tabwriter"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"

	"github.com/sixpotify/top-tracks/internal/fakespotify"
	"github.com/sixpotify/top-tracks/internal/gate"
	"github.com/sixpotify/top-tracks/internal/queue/sqlitequeue"
	"github.com/sixpotify/top-tracks/internal/spotify"
	"github.com/sixpotify/top-tracks/internal/store/sqlitestore"
	"github.com/sixpotify/top-tracks/internal/store/storetest"
	"github.com/sixpotify/top-tracks/worker"
)

// recoveryRun is one run of BenchmarkGateRecovery.
type recoveryRun struct {
	name                 string
	artists, stored      int
	dead, deadBroken     int
	recovery, ideal      time.Duration // from recovery to drained; the work left at the quota
	rateBefore, rateThen float64       // the learnt rate before the first pause, and 10 s after recovery
	opened, postponed    float64
	breakerOpenAtEnd     bool
	samples              []gateSample
	calls                []call
	start                time.Time
	quota                float64
}

// gateSample is the gate's state at one moment.
type gateSample struct {
	at   time.Time
	rate float64
	open bool
}

// brokenAnswers answers the artists of broken (and, while all is set,
// every artist) with a broken 200 of their own kind, and passes the rest on.
type brokenAnswers struct {
	next   http.Handler
	broken map[string]string
	all    atomic.Bool
}

func (h *brokenAnswers) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !strings.Contains(r.URL.Path, "/artists/") {
		h.next.ServeHTTP(w, r)
		return
	}
	kind := ""
	if h.all.Load() {
		kind = "html"
	}
	for id, k := range h.broken {
		if strings.Contains(r.URL.Path, "/artists/"+id+"/") {
			kind = k
		}
	}
	switch kind {
	case "":
		h.next.ServeHTTP(w, r)
	case "truncated":
		_, _ = w.Write([]byte(`{"tracks": [{"id": "4uLU6hMCjMI75M1A2tKUQC", "name": "Never Gon`))
	case "null":
		_, _ = w.Write([]byte(`{"tracks": null}`))
	case "html":
		w.Header().Set("Content-Type", "text/html")
		_, _ = w.Write([]byte(`<html><body><h1>502 Bad Gateway</h1></body></html>`))
	case "no ids":
		_, _ = w.Write([]byte(`{"tracks": [{"name": "nameless"}]}`))
	case "huge":
		_, _ = w.Write([]byte(`{"tracks": [` + strings.Repeat(`{"name": "x"},`, 400_000) + `{"name": "x"}]}`))
	}
}

// openTimed opens the chatbot lane (visibility 10s, maxReceiveCount 3) and
// a timed store in one fresh embedded database named file, closed when b
// ends.
func openTimed(b *testing.B, file string) (*sqlitequeue.Queue, *timedStore) {
	b.Helper()
	ctx := testContext(b)
	path := filepath.Join(b.TempDir(), file)
	q, err := sqlitequeue.Open(ctx, path, "chatbot", sqlitequeue.Options{VisibilityTimeout: 10 * time.Second, MaxReceiveCount: 3})
	if err != nil {
		b.Fatal(err)
	}
	st, err := sqlitestore.Open(ctx, path)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { q.Close(); st.Close() })
	return q, &timedStore{Store: st, done: map[string]time.Time{}}
}

// gatedWorker builds the worker of the outage and recovery scenarios: 16
// artists at once from q into st, with a Spotify client of the stand-in at
// url that waits on g, and its metrics in the registry returned.
func gatedWorker(b *testing.B, q *sqlitequeue.Queue, st worker.Store, url string, g *gate.Gate) (*worker.Worker, *prometheus.Registry) {
	b.Helper()
	client, err := spotify.New(spotify.Config{APIURL: url + "/v1", TokenURL: url + "/api/token",
		ClientID: clientID, ClientSecret: clientSecret, Gate: g})
	if err != nil {
		b.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	w, err := worker.New(q, nil, st, client, worker.Options{Concurrency: 16, Gate: g, Registerer: reg,
		WaitTime: time.Second, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	return w, reg
}

// waitDrained waits, until deadline, for the queue to be drained: n
// artists stored in timed, or nothing left on q but the dead letters.
func waitDrained(ctx context.Context, q *sqlitequeue.Queue, timed *timedStore, n int, deadline time.Time) {
	for ; time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		dead, _ := q.DeadLetters(ctx)
		if timed.saved(time.Time{})+len(dead) >= n {
			return
		}
	}
}

// runRecovery runs one scenario: artists queued, the world changed by
// disturb (which returns when the last disturbance ended), then drained.
func runRecovery(b *testing.B, name string, cfg fakespotify.Config, ceiling float64, ids []string, broken map[string]string,
	disturb func(fake *fakespotify.Server, h *brokenAnswers, st *storetest.Outage, stored func() int)) recoveryRun {
	b.Helper()
	ctx := testContext(b)
	q, timed := openTimed(b, "recovery.db")
	outage := &storetest.Outage{Store: timed}
	cfg.ClientID, cfg.ClientSecret, cfg.Latency = clientID, clientSecret, spotifyLatency
	fake := fakespotify.New(cfg)
	h := &brokenAnswers{next: fake, broken: broken}
	rec := &callRecorder{next: h}
	hs := httptest.NewServer(rec)
	b.Cleanup(hs.Close)
	artists := len(ids)
	if err := send(ctx, q, ids); err != nil {
		b.Fatal(err)
	}
	g := gate.New(gate.Options{Rate: ceiling})
	w, reg := gatedWorker(b, q, outage, hs.URL, g)
	run := recoveryRun{name: name, artists: artists, start: time.Now(), quota: float64(cfg.Limit) / cfg.Window.Seconds()}
	var mu sync.Mutex
	sampling, stopSampling := context.WithCancel(context.Background())
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		t := time.NewTicker(250 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-sampling.Done():
				return
			case now := <-t.C:
				mu.Lock()
				run.samples = append(run.samples, gateSample{at: now, rate: g.Rate(), open: g.BreakerOpen()})
				mu.Unlock()
			}
		}
	}()
	runCtx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(runCtx) }()

	stored := func() int { return timed.saved(time.Time{}) }
	rateAt := func(t time.Time) float64 {
		mu.Lock()
		defer mu.Unlock()
		r := 0.0
		for _, s := range run.samples {
			if !s.at.After(t) {
				r = s.rate
			}
		}
		return r
	}
	disturb(fake, h, outage, stored)
	recovered := time.Now()
	left := artists - stored() - len(broken)
	run.ideal = time.Duration(float64(max(left, 0)) / run.quota * float64(time.Second))
	if time.Since(run.start) > 5*time.Second { // something disturbed it: the rate before is the one it had learnt
		run.rateBefore = rateAt(run.start.Add(time.Duration(float64(50) / run.quota * float64(time.Second))))
	}
	ctx, cancelCtx := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancelCtx()
	waitDrained(ctx, q, timed, artists, recovered.Add(5*time.Minute))
	if d := time.Until(recovered.Add(10 * time.Second)); d > 0 {
		time.Sleep(d)
	}
	run.rateThen = rateAt(recovered.Add(10 * time.Second))
	cancel()
	<-done
	stopSampling()
	<-sampled
	run.recovery = max(timed.lastSaved(ids).Sub(recovered), 0)
	dead, err := q.DeadLetters(ctx)
	if err != nil {
		b.Fatal(err)
	}
	run.dead, run.stored = len(dead), stored()
	for _, d := range dead {
		for id := range broken {
			if strings.Contains(string(d.Body), id) {
				run.deadBroken++
			}
		}
	}
	run.opened = counterSum(reg, "sixpotify_outage_breaker_opened_total")
	run.postponed = counterSum(reg, "sixpotify_messages_postponed_total")
	run.breakerOpenAtEnd = g.BreakerOpen()
	run.calls = rec.all()
	return run
}

// afterStored waits until n artists are stored.
func afterStored(stored func() int, n int) {
	for stored() < n {
		time.Sleep(50 * time.Millisecond)
	}
}

// BenchmarkGateRecovery: outages, flapping, broken answers, and the
// pictures. Each scenario is a sub-benchmark (-bench 'GateRecovery/flapping'
// runs one); the table prints those that ran.
func BenchmarkGateRecovery(b *testing.B) {
	quota := fakespotify.Config{Limit: 60, Window: 3 * time.Second}
	var runs []recoveryRun
	scenario := func(name string, f func(b *testing.B) recoveryRun) {
		b.Run(name, func(b *testing.B) {
			var r recoveryRun
			for b.Loop() {
				r = f(b)
			}
			runs = append(runs, r)
		})
	}
	for _, kind := range []string{"Spotify 503", "token endpoint 503", "store"} {
		scenario(kind, func(b *testing.B) recoveryRun {
			return runRecovery(b, kind+" for 180s", quota, 20, artistIDs(200), nil,
				func(fake *fakespotify.Server, _ *brokenAnswers, st *storetest.Outage, stored func() int) {
					afterStored(stored, 50)
					switch kind {
					case "Spotify 503":
						fake.SetDown(503)
					case "token endpoint 503":
						fake.ExpireTokens()
						fake.SetTokenDown(503)
					case "store":
						st.Down.Store(true)
					}
					time.Sleep(180 * time.Second)
					fake.SetDown(0)
					fake.SetTokenDown(0)
					st.Down.Store(false)
				})
		})
	}
	scenario("flapping", func(b *testing.B) recoveryRun {
		return runRecovery(b, "flapping: 20s down, 20s up, ×4", quota, 20, artistIDs(1200), nil,
			func(fake *fakespotify.Server, _ *brokenAnswers, _ *storetest.Outage, stored func() int) {
				afterStored(stored, 50)
				for i := range 4 {
					fake.SetDown(503)
					time.Sleep(20 * time.Second)
					fake.SetDown(0)
					if i < 3 {
						time.Sleep(20 * time.Second)
					}
				}
			})
	})
	scenario("html", func(b *testing.B) recoveryRun {
		return runRecovery(b, "an HTML page for every artist, 60s", quota, 20, artistIDs(200), nil,
			func(_ *fakespotify.Server, h *brokenAnswers, _ *storetest.Outage, stored func() int) {
				afterStored(stored, 50)
				h.all.Store(true)
				time.Sleep(60 * time.Second)
				h.all.Store(false)
			})
	})
	scenario("broken", func(b *testing.B) recoveryRun {
		ids := artistIDs(60)
		broken := map[string]string{ids[3]: "truncated", ids[17]: "null", ids[29]: "html", ids[41]: "no ids", ids[55]: "huge"}
		return runRecovery(b, "five broken artists among 60", quota, 20, ids, broken,
			func(*fakespotify.Server, *brokenAnswers, *storetest.Outage, func() int) {})
	})
	scenario("penalty", func(b *testing.B) recoveryRun {
		return runRecovery(b, "penalty", fakespotify.Config{Limit: 30, Window: 3 * time.Second, CloseFor: 35 * time.Second}, 100, artistIDs(150), nil,
			func(*fakespotify.Server, *brokenAnswers, *storetest.Outage, func() int) {})
	})
	out := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(out, "\nRecovery: quota 60 per rolling 3s (20/s), SPOTIFY_RATE=20, one process, visibility 10s, maxReceiveCount 3 (penalty: 30 per 3s, closed 35s after a call over it, SPOTIFY_RATE=100).")
	fmt.Fprintln(out, "scenario\tin the DLQ\tstored\tseconds from recovery to drained\tthe work left at the quota\tratio (goal ≤ 2)\trate 10s after ÷ before (goal ≥ 0.9)\tbreaker openings\topen at the end\tpostponed")
	for _, r := range runs {
		ratio := r.recovery.Seconds() / max(r.ideal.Seconds(), 1)
		rate := "—"
		if r.rateBefore > 0 {
			rate = fmt.Sprintf("%.2f (%.2f/%.2f)", r.rateThen/r.rateBefore, r.rateThen, r.rateBefore)
		}
		fmt.Fprintf(out, "%s\t%d (%d broken)\t%d/%d\t%.1f\t%.1f\t%.2f\t%s\t%.0f\t%v\t%.0f\n", r.name, r.dead, r.deadBroken, r.stored, r.artists,
			r.recovery.Seconds(), r.ideal.Seconds(), ratio, rate, r.opened, r.breakerOpenAtEnd, r.postponed)
	}
	out.Flush()
	for _, r := range runs {
		file := map[string]string{"flapping: 20s down, 20s up, ×4": "gate-flapping.svg", "penalty": "gate-penalty.svg"}[r.name]
		if file == "" {
			continue
		}
		if err := drawRun(r, filepath.Join("..", "..", "docs", file)); err != nil {
			b.Fatal(err)
		}
		fmt.Printf("drew docs/%s\n", file)
	}
}

// drawRun draws a run's learnt rate, the quota, its 429s a second and the
// breaker's state over time.
func drawRun(r recoveryRun, file string) error {
	p := plot.New()
	p.Title.Text = "The gate: " + r.name
	p.X.Label.Text = "seconds"
	p.Y.Label.Text = "calls a second"
	var rate, open plotter.XYs
	for _, s := range r.samples {
		x := s.at.Sub(r.start).Seconds()
		rate = append(rate, plotter.XY{X: x, Y: s.rate})
		y := 0.0
		if s.open {
			y = r.quota * 1.2
		}
		open = append(open, plotter.XY{X: x, Y: y})
	}
	perSecond := map[int]int{}
	last := 0
	for _, c := range r.calls {
		if c.status == 429 {
			sec := int(c.at.Sub(r.start).Seconds())
			perSecond[sec]++
			last = max(last, sec)
		}
	}
	var tooMany plotter.XYs
	for sec, n := range perSecond {
		tooMany = append(tooMany, plotter.XY{X: float64(sec) + 0.5, Y: float64(n)})
	}
	end := 0.0
	if len(rate) > 0 {
		end = rate[len(rate)-1].X
	}
	quota := plotter.XYs{{X: 0, Y: r.quota}, {X: end, Y: r.quota}}
	lines := []struct {
		name string
		xys  plotter.XYs
		dash bool
	}{{"learnt rate", rate, false}, {"quota", quota, true}, {"breaker open", open, true}}
	for i, l := range lines {
		if len(l.xys) == 0 {
			continue
		}
		line, err := plotter.NewLine(l.xys)
		if err != nil {
			return err
		}
		line.Color = plotColor(i)
		if l.dash {
			line.Dashes = []vg.Length{vg.Points(4), vg.Points(3)}
		}
		p.Add(line)
		p.Legend.Add(l.name, line)
	}
	if len(tooMany) > 0 {
		sc, err := plotter.NewScatter(tooMany)
		if err != nil {
			return err
		}
		sc.Color = plotColor(3)
		p.Add(sc)
		p.Legend.Add("429s in that second", sc)
	}
	p.Legend.Top = true
	return p.Save(10*vg.Inch, 4*vg.Inch, file)
}

// plotColor is the i-th colour of the pictures.
func plotColor(i int) color.Color {
	palette := []color.RGBA{{0x1f, 0x77, 0xb4, 0xff}, {0x2c, 0xa0, 0x2c, 0xff}, {0x94, 0x67, 0xbd, 0xff}, {0xd6, 0x27, 0x28, 0xff}}
	return palette[i%len(palette)]
}
