package bench_test

import (
	"context"
	"log/slog"
	"math"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sixpotify/top-tracks/internal/fakespotify"
	"github.com/sixpotify/top-tracks/internal/gate"
	"github.com/sixpotify/top-tracks/internal/queue/sqlitequeue"
	"github.com/sixpotify/top-tracks/internal/spotify"
	"github.com/sixpotify/top-tracks/internal/store"
	"github.com/sixpotify/top-tracks/internal/store/sqlitestore"
	"github.com/sixpotify/top-tracks/worker"
)

// quotaRig is the world of one quota benchmark run: the Spotify stand-in
// with a rolling-window quota behind a recorder of every API call, and two
// lanes and a store on the embedded SQLite backends (no emulator: their
// long-poll quirks are not what is measured here).
type quotaRig struct {
	fake    *fakespotify.Server
	srv     *httptest.Server
	calls   *callRecorder
	chatbot *sqlitequeue.Queue
	bulk    *sqlitequeue.Queue
	store   *timedStore
	watches []*fakespotify.RetryAfterWatch // one per client, in order
}

func newQuotaRig(b *testing.B, cfg fakespotify.Config) *quotaRig {
	b.Helper()
	ctx := testContext(b)
	path := filepath.Join(b.TempDir(), "quota.db")
	r := &quotaRig{}
	var err error
	if r.chatbot, err = sqlitequeue.Open(ctx, path, "chatbot", sqlitequeue.Options{}); err != nil {
		b.Fatal(err)
	}
	if r.bulk, err = sqlitequeue.Open(ctx, path, "bulk", sqlitequeue.Options{}); err != nil {
		b.Fatal(err)
	}
	st, err := sqlitestore.Open(ctx, path)
	if err != nil {
		b.Fatal(err)
	}
	r.store = &timedStore{Store: st, done: map[string]time.Time{}}
	b.Cleanup(func() { r.chatbot.Close(); r.bulk.Close(); st.Close() })
	cfg.ClientID, cfg.ClientSecret = clientID, clientSecret
	r.fake = fakespotify.New(cfg)
	r.calls = &callRecorder{next: r.fake}
	r.srv = httptest.NewServer(r.calls)
	b.Cleanup(r.srv.Close)
	return r
}

// client returns a Spotify client of the stand-in that waits on limiter.
func (r *quotaRig) client(b *testing.B, limiter spotify.Gate) *spotify.Client {
	b.Helper()
	hc := workerHTTPClient(nil)
	w := &fakespotify.RetryAfterWatch{Next: hc.Transport}
	hc.Transport = w
	r.watches = append(r.watches, w)
	c, err := spotify.New(spotify.Config{APIURL: r.srv.URL + "/v1", TokenURL: r.srv.URL + "/api/token",
		ClientID: clientID, ClientSecret: clientSecret, Gate: limiter, HTTPClient: hc})
	if err != nil {
		b.Fatal(err)
	}
	return c
}

// insideRead is the requests of all the rig's clients sent inside a
// Retry-After they had read (see fakespotify.RetryAfterWatch).
func (r *quotaRig) insideRead() int {
	n := 0
	for _, w := range r.watches {
		n += w.SentInside()
	}
	return n
}

// send enqueues one message per artist on q, 500 to a batch.
func send(ctx context.Context, q *sqlitequeue.Queue, ids []string) error {
	return sendBatches(ctx, q, ids, 500)
}

// startWorker runs a worker on the rig's lanes (bulk too when withBulk)
// until the returned func is called, which waits for Run to return.
func (r *quotaRig) startWorker(b *testing.B, f worker.Fetcher, limiter *gate.Gate, withBulk bool) (stop func()) {
	b.Helper()
	var bulk worker.Queue
	if withBulk {
		bulk = r.bulk
	}
	w, err := worker.New(r.chatbot, bulk, r.store, f, worker.Options{
		Concurrency: 16,
		Gate:        limiter, // nil: the worker's own unlimited gate
		Registerer:  prometheus.NewRegistry(),
		Logger:      slog.New(slog.DiscardHandler),
	})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				b.Errorf("worker Run: %v", err)
			}
		})
	}
	b.Cleanup(stop)
	return stop
}

// call is one API call the stand-in answered: when it arrived (the quota
// counts calls on arrival) and its status.
type call struct {
	at     time.Time
	status int
}

// callRecorder records the API calls (not token calls) passed to next.
type callRecorder struct {
	next http.Handler
	mu   sync.Mutex
	log  []call
}

func (c *callRecorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !strings.HasPrefix(r.URL.Path, "/v1/") {
		c.next.ServeHTTP(w, r)
		return
	}
	at := time.Now()
	sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
	c.next.ServeHTTP(sw, r)
	c.mu.Lock()
	c.log = append(c.log, call{at: at, status: sw.status})
	c.mu.Unlock()
}

// all returns the calls so far in order of arrival.
func (c *callRecorder) all() []call {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := slices.Clone(c.log)
	slices.SortFunc(out, func(a, b call) int { return a.at.Compare(b.at) })
	return out
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	w.status = code
	w.ResponseWriter.WriteHeader(code)
}

// Unwrap lets http.ResponseController reach the writer beneath (the
// stand-in flushes a 429 before it counts its Retry-After).
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// timedStore is a worker.Store that records when each artist's rows became
// durable (Save returned nil).
type timedStore struct {
	*sqlitestore.Store
	mu   sync.Mutex
	done map[string]time.Time
}

func (s *timedStore) Save(ctx context.Context, r store.Result) error {
	err := s.Store.Save(ctx, r)
	if err == nil {
		now := time.Now()
		s.mu.Lock()
		if _, ok := s.done[r.ArtistID]; !ok {
			s.done[r.ArtistID] = now
		}
		s.mu.Unlock()
	}
	return err
}

// savedAt returns when id was saved.
func (s *timedStore) savedAt(id string) (time.Time, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.done[id]
	return t, ok
}

// lastSaved returns when the last of ids to be saved was (zero: none was).
func (s *timedStore) lastSaved(ids []string) time.Time {
	var last time.Time
	for _, id := range ids {
		if t, ok := s.savedAt(id); ok && t.After(last) {
			last = t
		}
	}
	return last
}

// saved returns how many artists were saved, and how many of them before t
// (the zero t: all).
func (s *timedStore) saved(before time.Time) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if before.IsZero() {
		return len(s.done)
	}
	n := 0
	for _, t := range s.done {
		if t.Before(before) {
			n++
		}
	}
	return n
}

// rateSample is the limiter's state at one instant.
type rateSample struct {
	at       time.Time
	rate     float64
	cooldown bool
}

// sampleRate records the limiter's rate every 100ms until the returned func
// is called, which returns the samples.
func sampleRate(l *gate.Gate) (stop func() []rateSample) {
	var samples []rateSample
	quit, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			samples = append(samples, rateSample{time.Now(), l.Rate(), l.CooldownLeft() > 0})
			select {
			case <-quit:
				return
			case <-t.C:
			}
		}
	}()
	return func() []rateSample { close(quit); <-done; return samples }
}

// rateAt is the last sample at or before t (NaN when there is none).
func rateAt(samples []rateSample, t time.Time) float64 {
	r := math.NaN()
	for _, s := range samples {
		if s.at.After(t) {
			break
		}
		r = s.rate
	}
	return r
}

// percentile is the nearest-rank p-quantile (0 < p ≤ 1) of sorted ds.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(math.Ceil(p*float64(len(sorted)))) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

func secs(d time.Duration) float64 { return d.Seconds() }
