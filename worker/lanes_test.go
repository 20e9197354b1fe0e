package worker_test

import (
	"context"
	"errors"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sixpotify/top-tracks/internal/fakespotify"
	"github.com/sixpotify/top-tracks/internal/gate"
	"github.com/sixpotify/top-tracks/internal/queue"
	"github.com/sixpotify/top-tracks/internal/queue/sqlitequeue"
	"github.com/sixpotify/top-tracks/internal/spotify"
	"github.com/sixpotify/top-tracks/internal/store/sqlitestore"
	"github.com/sixpotify/top-tracks/internal/testenv"
	"github.com/sixpotify/top-tracks/internal/testutil"
	"github.com/sixpotify/top-tracks/producer"
	"github.com/sixpotify/top-tracks/worker"
)

// local is a worker's world on the embedded backends: two lanes and a store
// in one SQLite file, and the Spotify stand-in.
type local struct {
	t        *testing.T
	chatbot  *sqlitequeue.Queue
	bulk     *sqlitequeue.Queue
	store    *sqlitestore.Store
	fake     *fakespotify.Server
	client   *spotify.Client
	limiter  *gate.Gate
	logs     *testutil.Buffer
	tokenURL string
	apiURL   string
}

func newLocal(t *testing.T, qopts sqlitequeue.Options, fake fakespotify.Config, limiter *gate.Gate) *local {
	t.Helper()
	ctx := testenv.Context(t)
	path := filepath.Join(t.TempDir(), "sixpotify.db")
	l := &local{t: t, limiter: limiter, logs: &testutil.Buffer{}}
	var err error
	if l.chatbot, err = sqlitequeue.Open(ctx, path, "chatbot", qopts); err != nil {
		t.Fatal(err)
	}
	if l.bulk, err = sqlitequeue.Open(ctx, path, "bulk", qopts); err != nil {
		t.Fatal(err)
	}
	if l.store, err = sqlitestore.Open(ctx, path); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.chatbot.Close(); l.bulk.Close(); l.store.Close() })
	fake.ClientID, fake.ClientSecret = "id", "secret"
	l.fake = fakespotify.New(fake)
	srv := httptest.NewServer(l.fake)
	t.Cleanup(srv.Close)
	l.tokenURL = srv.URL + "/api/token"
	l.apiURL = srv.URL + "/v1"
	l.connect(limiter)
	return l
}

// connect gives l a gate and a Spotify client through it, as a new process
// has.
func (l *local) connect(g *gate.Gate) {
	l.t.Helper()
	c, err := spotify.New(spotify.Config{APIURL: l.apiURL, TokenURL: l.tokenURL,
		ClientID: "id", ClientSecret: "secret", Gate: g})
	if err != nil {
		l.t.Fatal(err)
	}
	l.limiter, l.client = g, c
}

func (l *local) enqueue(q producer.Sender, ids ...string) {
	l.t.Helper()
	sum, err := producer.New(q, producer.Options{}).Enqueue(testenv.Context(l.t), ids...)
	if err != nil || sum.Err() != nil {
		l.t.Fatal(err, sum.Err())
	}
}

// start runs a worker until the returned func is called; that func waits
// for Run to return and fails the test if it takes more than 25s.
func (l *local) start(opts worker.Options) (*worker.Worker, func()) {
	return l.startOn(l.store, opts)
}

// startOn is start with the worker saving to st (a wrapper of l.store).
func (l *local) startOn(st worker.Store, opts worker.Options) (*worker.Worker, func()) {
	l.t.Helper()
	w := l.newWorkerOn(st, opts)
	return w, runInBackground(l.t, w, 25*time.Second)
}

// newWorker returns a worker on both lanes, with short waits and the test's
// logger.
func (l *local) newWorker(opts worker.Options) *worker.Worker {
	l.t.Helper()
	return l.newWorkerOn(l.store, opts)
}

// newWorkerOn is newWorker with the worker saving to st.
func (l *local) newWorkerOn(st worker.Store, opts worker.Options) *worker.Worker {
	l.t.Helper()
	opts.WaitTime = 200 * time.Millisecond
	opts.Gate = l.limiter
	opts.RetryBase = 10 * time.Millisecond
	opts.Logger = testLogger(l.logs)
	w, err := worker.New(l.chatbot, l.bulk, st, l.client, opts)
	if err != nil {
		l.t.Fatal(err)
	}
	return w
}

// sendRaw sends bodies to q as they are.
func (l *local) sendRaw(q *sqlitequeue.Queue, bodies ...string) {
	l.t.Helper()
	entries := make([]queue.Entry, len(bodies))
	for i, b := range bodies {
		entries[i] = queue.Entry{Body: []byte(b)}
	}
	errs, err := q.SendBatch(testenv.Context(l.t), entries)
	if err := errors.Join(append(errs, err)...); err != nil {
		l.t.Fatal(err)
	}
}

// runInBackground runs w until the returned func (or the test's end) stops
// it; that func waits for Run to return and fails the test if it takes more
// than limit.
func runInBackground(t *testing.T, w *worker.Worker, limit time.Duration) func() {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Run: %v", err)
				}
			case <-time.After(limit):
				t.Errorf("Run did not return within %v of the stop", limit)
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

// runToIdle runs w, made with StopWhenIdle, until it stops, and fails the
// test unless Run returns nil within two minutes.
func runToIdle(t *testing.T, w *worker.Worker) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := w.Run(ctx); err != nil {
		t.Fatalf("Run: %v", err)
	}
}

// noDeadLetters wants the chatbot lane's dead-letter queue empty.
func (l *local) noDeadLetters(t *testing.T) {
	t.Helper()
	dead, err := l.chatbot.DeadLetters(testenv.Context(t))
	if err != nil {
		t.Fatal(err)
	}
	if len(dead) != 0 {
		t.Errorf("%d messages went to the dead-letter queue; want none", len(dead))
	}
}

func (l *local) stored(id string) bool {
	_, ok, err := l.store.Artist(testenv.Context(l.t), id)
	return err == nil && ok
}

// allStored reports whether every one of ids is stored.
func (l *local) allStored(ids []string) bool {
	for _, id := range ids {
		if !l.stored(id) {
			return false
		}
	}
	return true
}

func TestForbiddenEndpointStopsConsumption(t *testing.T) {
	l := newLocal(t, sqlitequeue.Options{VisibilityTimeout: time.Second, MaxReceiveCount: 2}, fakespotify.Config{}, gate.New(gate.Options{}))
	l.fake.SetEndpointRemoved(true)
	artists := ids(20, "forbidden")
	l.enqueue(l.chatbot, artists...)
	w, stop := l.start(worker.Options{Concurrency: 4})
	testutil.Eventually(t, 30*time.Second, "readyz reports the 403", func() bool {
		err := w.Ready()
		return err != nil && strings.Contains(err.Error(), "403")
	})
	// Give the worker time in which it could have cycled every message to
	// the DLQ (visibility 1s, maxReceiveCount 2): it must not.
	time.Sleep(3 * time.Second)
	stop()
	if n := l.fake.Stats().Requests; n > 4 {
		t.Errorf("Spotify got %d requests after refusing the endpoint; want at most one per slot (4)", n)
	}
	l.noDeadLetters(t)
	visible, inflight, _, err := l.chatbot.Len(testenv.Context(t))
	if err != nil {
		t.Fatal(err)
	}
	if visible+inflight != len(artists) {
		t.Errorf("queue holds %d messages; want all %d kept", visible+inflight, len(artists))
	}
	if got := strings.Count(l.logs.String(), "Spotify refuses this app's calls"); got != 1 {
		t.Errorf("the 403 was logged %d times; want once", got)
	}
}

func TestLongCooldownEndsWithEveryArtistDoneAndAnEmptyDLQ(t *testing.T) {
	// A quota cooldown (3s) longer than visibility timeout × maxReceiveCount
	// (1s × 2): holding or releasing the messages would dead-letter them.
	l := newLocal(t, sqlitequeue.Options{VisibilityTimeout: time.Second, MaxReceiveCount: 2}, fakespotify.Config{}, gate.New(gate.Options{MaxWait: time.Second}))
	l.fake.SetQuotaExceeded(3 * time.Second)
	artists := ids(6, "quota")
	l.enqueue(l.chatbot, artists...)
	_, stop := l.start(worker.Options{Concurrency: 4})
	testutil.Eventually(t, 30*time.Second, "the stand-in answered QUOTA_EXCEEDED", func() bool { return l.fake.Stats().TooMany > 0 })
	time.Sleep(4 * time.Second) // longer than visibility × maxReceiveCount
	l.fake.SetQuotaExceeded(0)
	testutil.Eventually(t, 30*time.Second, "every artist stored", func() bool { return l.allStored(artists) })
	stop()
	l.noDeadLetters(t)
	if st := l.fake.Stats(); st.InsideRetryAfter != 0 {
		t.Errorf("%d requests arrived inside a Retry-After; want 0", st.InsideRetryAfter)
	}
}

func TestChatbotLaneIsServedBeforeTheBulkBacklog(t *testing.T) {
	// Spotify allows 20 calls a second; a bulk backlog of 200 takes 10s.
	lim := gate.New(gate.Options{Rate: 20})
	l := newLocal(t, sqlitequeue.Options{}, fakespotify.Config{Limit: 20, Window: time.Second, Latency: 10 * time.Millisecond}, lim)
	backlog := ids(200, "backlog")
	l.enqueue(l.bulk, backlog...)
	_, stop := l.start(worker.Options{Concurrency: 8})
	testutil.Eventually(t, 30*time.Second, "the bulk lane started", func() bool { return l.stored(backlog[0]) || l.fake.Stats().OK > 5 })
	asked := ids(3, "asked")
	l.enqueue(l.chatbot, asked...)
	testutil.Eventually(t, 30*time.Second, "the chatbot's artists stored", func() bool {
		return l.stored(asked[0]) && l.stored(asked[1]) && l.stored(asked[2])
	})
	done := 0
	for _, id := range backlog {
		if l.stored(id) {
			done++
		}
	}
	stop()
	if done > len(backlog)/2 {
		t.Errorf("the chatbot's artists waited for %d of %d bulk artists; want them served first", done, len(backlog))
	}
	t.Logf("chatbot artists stored while %d of %d bulk artists were done", done, len(backlog))
}

func TestRejectedCredentialsPauseInsteadOfDrainingTheQueue(t *testing.T) {
	l := newLocal(t, sqlitequeue.Options{VisibilityTimeout: time.Second, MaxReceiveCount: 2}, fakespotify.Config{}, gate.New(gate.Options{}))
	// The stand-in accepts only its own credentials; the client has others.
	bad, err := spotify.New(spotify.Config{APIURL: "http://127.0.0.1:1/v1", TokenURL: l.tokenURL,
		ClientID: "id", ClientSecret: "rotated-away", Gate: l.limiter})
	if err != nil {
		t.Fatal(err)
	}
	l.client = bad
	artists := ids(10, "badcreds")
	l.enqueue(l.chatbot, artists...)
	w, stop := l.start(worker.Options{Concurrency: 4})
	testutil.Eventually(t, 30*time.Second, "readyz reports the refusal", func() bool { return w.Ready() != nil && l.fake.Stats().TokenRequests > 0 })
	time.Sleep(3 * time.Second) // room to cycle every message to the DLQ (visibility 1s × 2)
	stop()
	dead, err := l.chatbot.DeadLetters(testenv.Context(t))
	if err != nil {
		t.Fatal(err)
	}
	visible, inflight, _, err := l.chatbot.Len(testenv.Context(t))
	if err != nil {
		t.Fatal(err)
	}
	if len(dead) != 0 || visible+inflight != len(artists) {
		t.Errorf("after rejected credentials: %d dead letters, %d messages kept; want 0 and all %d", len(dead), visible+inflight, len(artists))
	}
	if n := l.fake.Stats().TokenRequests; n > 4 {
		t.Errorf("%d token requests after the credentials were rejected; want at most one per slot (4)", n)
	}
}
