package worker_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/google/go-cmp/cmp"

	"github.com/sixpotify/top-tracks/internal/fakespotify"
	"github.com/sixpotify/top-tracks/internal/gate"
	"github.com/sixpotify/top-tracks/internal/queue"
	"github.com/sixpotify/top-tracks/internal/queue/sqsqueue"
	"github.com/sixpotify/top-tracks/internal/spotify"
	"github.com/sixpotify/top-tracks/internal/store"
	"github.com/sixpotify/top-tracks/internal/store/dynamostore"
	"github.com/sixpotify/top-tracks/internal/store/storetest"
	"github.com/sixpotify/top-tracks/internal/testenv"
	"github.com/sixpotify/top-tracks/internal/testutil"
	"github.com/sixpotify/top-tracks/producer"
	"github.com/sixpotify/top-tracks/worker"
)

func TestMain(m *testing.M) { testenv.Main(m) }

var seq atomic.Int64

func unique(prefix string) string {
	return fmt.Sprintf("%s-%d-%d", prefix, os.Getpid(), seq.Add(1))
}

// rig is one worker's world on the emulators: a fresh queue (and DLQ), fresh
// tables, and a Spotify stand-in.
type rig struct {
	t       *testing.T
	sqs     *sqs.Client
	url     string
	dlqURL  string
	q       *sqsqueue.Queue
	store   *dynamostore.Store
	fake    *fakespotify.Server
	client  *spotify.Client
	limiter *gate.Gate
	watch   *fakespotify.RetryAfterWatch
	logs    *testutil.Buffer
}

type rigOptions struct {
	maxReceiveCount int // 0: no DLQ
	visibility      int // seconds
	fake            fakespotify.Config
	rate            float64
}

func newRig(t *testing.T, o rigOptions) *rig {
	t.Helper()
	ctx := testenv.Context(t)
	r := &rig{t: t, logs: &testutil.Buffer{}}
	r.sqs = testenv.SQSClient(t)
	if o.visibility == 0 {
		o.visibility = 30
	}
	attrs := map[string]string{"VisibilityTimeout": fmt.Sprint(o.visibility)}
	if o.maxReceiveCount > 0 {
		var policy string
		r.dlqURL, policy = testenv.CreateDeadLetterQueue(ctx, t, r.sqs, unique("dlq"), fmt.Sprint(o.maxReceiveCount))
		attrs["RedrivePolicy"] = policy
	}
	r.url = testenv.CreateQueue(ctx, t, r.sqs, unique("artists"), attrs)
	r.q = sqsqueue.New(r.sqs, r.url, sqsqueue.Options{})

	db := testenv.DynamoDBClient(t)
	r.store = dynamostore.New(db, unique("top_tracks"), unique("artists"))
	if err := r.store.CreateTables(ctx); err != nil {
		t.Fatal(err)
	}

	o.fake.ClientID, o.fake.ClientSecret = testClientID, testClientSecret
	r.fake = fakespotify.New(o.fake)
	srv := httptest.NewServer(r.fake)
	t.Cleanup(srv.Close)
	r.limiter = gate.New(gate.Options{Rate: o.rate, Fixed: true})
	r.watch = &fakespotify.RetryAfterWatch{Next: http.DefaultTransport}
	r.connect(srv.URL, &http.Client{Transport: r.watch, Timeout: 10 * time.Second})
	return r
}

// The credentials the rig's stand-in expects and its clients present.
const (
	testClientID     = "test-client"
	testClientSecret = "test-secret-SHOULD-NOT-LEAK"
)

// connect gives the rig a Spotify client, through its gate, to the server at
// baseURL: the stand-in, or a proxy in front of it.
func (r *rig) connect(baseURL string, hc *http.Client) {
	r.t.Helper()
	c, err := spotify.New(spotify.Config{
		HTTPClient: hc,
		APIURL:     baseURL + "/v1", TokenURL: baseURL + "/api/token",
		ClientID: testClientID, ClientSecret: testClientSecret, Gate: r.limiter,
	})
	if err != nil {
		r.t.Fatal(err)
	}
	r.client = c
}

// newWorker returns a worker on the rig's queue, store and client, with
// short waits and the test's logger.
func (r *rig) newWorker(opts worker.Options) *worker.Worker {
	r.t.Helper()
	opts.WaitTime = time.Second
	opts.Gate = r.limiter
	opts.RetryBase = 10 * time.Millisecond
	opts.Logger = testLogger(r.logs)
	w, err := worker.New(r.q, nil, r.store, r.client, opts)
	if err != nil {
		r.t.Fatal(err)
	}
	return w
}

// run runs a worker until the queue is empty and nothing is in flight.
func (r *rig) run(opts worker.Options) {
	r.t.Helper()
	opts.StopWhenIdle = true
	runToIdle(r.t, r.newWorker(opts))
}

// stored reports whether every artist has its artists row.
func (r *rig) stored(ids []string) bool {
	for _, id := range ids {
		if _, ok, err := r.store.Artist(testenv.Context(r.t), id); err != nil || !ok {
			return false
		}
	}
	return true
}

// runUntil runs workers until done() holds, for at most 30 seconds.
func (r *rig) runUntil(done func() bool) {
	r.t.Helper()
	for deadline := time.Now().Add(30 * time.Second); !done(); {
		if time.Now().After(deadline) {
			r.t.Fatal("the work was not done within 30s")
		}
		r.run(worker.Options{})
	}
}

func (r *rig) enqueue(ids ...string) {
	r.t.Helper()
	sum, err := producer.New(r.q, producer.Options{}).Enqueue(testenv.Context(r.t), ids...)
	if err != nil || sum.Err() != nil {
		r.t.Fatalf("Enqueue: %v %v", err, sum.Err())
	}
}

func (r *rig) sendRaw(bodies ...string) {
	r.t.Helper()
	entries := make([]queue.Entry, len(bodies))
	for i, b := range bodies {
		entries[i] = queue.Entry{Body: []byte(b)}
	}
	errs, err := r.q.SendBatch(testenv.Context(r.t), entries)
	if err := errors.Join(append(errs, err)...); err != nil {
		r.t.Fatal(err)
	}
}

// checkRows asserts that the artist's rows are exactly the stand-in's tracks.
func (r *rig) checkRows(id string, gen int) {
	r.t.Helper()
	ctx := testenv.Context(r.t)
	rows, err := r.store.Tracks(ctx, id)
	if err != nil {
		r.t.Fatal(err)
	}
	want := fakespotify.Tracks(id, gen, 10)
	got := make([]spotify.Track, len(rows))
	for i, row := range rows {
		got[i] = row.Track
		if row.Rank != i+1 || row.Market != "US" {
			r.t.Errorf("artist %s row %d: rank %d market %q", id, i, row.Rank, row.Market)
		}
	}
	if diff := cmp.Diff(got, want); diff != "" {
		r.t.Errorf("artist %s rows (-got +want):\n%s", id, diff)
	}
	a, ok, err := r.store.Artist(ctx, id)
	if err != nil || !ok || a.Status != store.StatusOK {
		r.t.Errorf("artists row of %s = %+v, %v, %v; want status ok", id, a, ok, err)
	}
}

// queueEmpty asserts that nothing is left on the queue, visible or not.
func (r *rig) queueEmpty() {
	r.t.Helper()
	out, err := r.sqs.GetQueueAttributes(testenv.Context(r.t), &sqs.GetQueueAttributesInput{
		QueueUrl: aws.String(r.url), AttributeNames: []sqstypes.QueueAttributeName{"ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"},
	})
	if err != nil {
		r.t.Fatal(err)
	}
	if v, nv := out.Attributes["ApproximateNumberOfMessages"], out.Attributes["ApproximateNumberOfMessagesNotVisible"]; v != "0" || nv != "0" {
		r.t.Errorf("queue holds %s visible and %s invisible messages; want none", v, nv)
	}
}

func ids(n int, seed string) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = storetest.ID(seed + fmt.Sprint(i))
	}
	return out
}

func TestEndToEnd(t *testing.T) {
	r := newRig(t, rigOptions{})
	artists := ids(60, "e2e")
	r.enqueue(append(artists, artists[0], "spotify:artist:"+artists[1])...) // duplicates dropped
	r.run(worker.Options{Concurrency: 16})
	for _, id := range artists {
		r.checkRows(id, 0)
	}
	st := r.fake.Stats()
	for _, id := range artists {
		if n := st.PerArtist[id]; n != 1 {
			t.Errorf("artist %s was fetched %d times; want exactly once", id, n)
		}
	}
	if st.TokenRequests != 1 {
		t.Errorf("token requests = %d; want 1", st.TokenRequests)
	}
	r.queueEmpty()
}

func TestFreshArtistsAreSkippedUnlessForced(t *testing.T) {
	r := newRig(t, rigOptions{})
	artists := ids(5, "fresh")
	r.enqueue(artists...)
	r.run(worker.Options{})
	r.fake.SetGeneration(artists[0], 1)
	r.enqueue(artists...) // fresh: skipped
	r.run(worker.Options{})
	r.checkRows(artists[0], 0)
	sum, err := producer.New(r.q, producer.Options{Force: true}).Enqueue(testenv.Context(t), artists[0])
	if err != nil || sum.Err() != nil {
		t.Fatal(err, sum.Err())
	}
	r.run(worker.Options{})
	r.checkRows(artists[0], 1) // forced: the new list replaced the old rows
	if got := r.fake.Stats().PerArtist[artists[0]]; got != 2 {
		t.Errorf("fetches of the forced artist = %d; want 2", got)
	}
	if got := r.fake.Stats().PerArtist[artists[1]]; got != 1 {
		t.Errorf("fetches of a fresh artist = %d; want 1", got)
	}
	r.queueEmpty()
}

func TestPoisonAndUnknownArtistsWithoutDLQ(t *testing.T) {
	r := newRig(t, rigOptions{})
	good := ids(3, "good")
	unknown := "0000" + storetest.ID("unknown")[4:]
	r.sendRaw(`not json`, `{}`, `{"artist_id":"short"}`, `{"artist_id":"../../../../../../etc/pw"}`,
		`{"artist_id":"0TnOYISbd1XYRBk9my%2Fg"}`, `{"artist_id":"0TnOYISbd1XYRBk9mya?eg"}`,
		`{"artist_id":"0TnOYISbd1XYRBk9mya#eg"}`, `{"artist_id":"`+unknown+`"}`)
	r.enqueue(good...)
	r.run(worker.Options{})
	for _, id := range good {
		r.checkRows(id, 0)
	}
	a, ok, err := r.store.Artist(testenv.Context(t), unknown)
	if err != nil || !ok || a.Status != store.StatusNotFound {
		t.Errorf("unknown artist row = %+v, %v, %v; want status not_found", a, ok, err)
	}
	st := r.fake.Stats()
	if st.InvalidIDs != 0 || st.BadRequests != 0 {
		t.Errorf("the stand-in saw %d invalid IDs and %d bad requests; want none", st.InvalidIDs, st.BadRequests)
	}
	if st.Requests != 4 {
		t.Errorf("Spotify requests = %d; want 4 (3 artists and the unknown one)", st.Requests)
	}
	if !strings.Contains(r.logs.String(), "poison message deleted") {
		t.Error("no poison message was logged")
	}
	r.queueEmpty()
}

func TestPoisonEndsInDLQ(t *testing.T) {
	r := newRig(t, rigOptions{maxReceiveCount: 2, visibility: 1})
	r.sendRaw(`{"artist_id":"bad"}`)
	good := ids(2, "dlq")
	r.enqueue(good...)
	// The emulator moves a message to the DLQ when its visibility expires, so
	// run until the DLQ holds it, with a deadline.
	var got []string
	r.runUntil(func() bool {
		out, err := r.sqs.ReceiveMessage(testenv.Context(t), &sqs.ReceiveMessageInput{QueueUrl: aws.String(r.dlqURL), WaitTimeSeconds: 1, MaxNumberOfMessages: 1})
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range out.Messages {
			got = append(got, aws.ToString(m.Body))
		}
		return len(got) > 0
	})
	if diff := cmp.Diff(got, []string{`{"artist_id":"bad"}`}); diff != "" {
		t.Errorf("DLQ (-got +want):\n%s", diff)
	}
	for _, id := range good {
		r.checkRows(id, 0)
	}
}

func TestTransientFailuresAreRetried(t *testing.T) {
	r := newRig(t, rigOptions{})
	artists := ids(3, "retry")
	r.fake.FailNext(3, 503)
	r.enqueue(artists...)
	r.run(worker.Options{Concurrency: 1, MaxRetries: 4})
	for _, id := range artists {
		r.checkRows(id, 0)
	}
	if st := r.fake.Stats(); st.ServerErrors != 3 || st.OK != 3 {
		t.Errorf("stand-in saw %d server errors and %d OK; want 3 and 3", st.ServerErrors, st.OK)
	}
	r.queueEmpty()
}

func TestRateLimitIsWaitedOutTogether(t *testing.T) {
	// The stand-in allows 10 calls a second; the worker is told 1000.
	r := newRig(t, rigOptions{fake: fakespotify.Config{Limit: 10, Window: time.Second}, rate: 1000})
	artists := ids(40, "rl")
	r.enqueue(artists...)
	const concurrency = 16
	r.run(worker.Options{Concurrency: concurrency})
	for _, id := range artists {
		r.checkRows(id, 0)
	}
	st := r.fake.Stats()
	// Only requests that had passed the limiter before a 429 reached the
	// process may go out inside its Retry-After: at most one per slot.
	if n := r.watch.SentInside(); n > concurrency {
		t.Errorf("%d requests were sent inside a Retry-After the process had received; want at most %d (those already in flight)", n, concurrency)
	}
	if st.Requests > 2*int64(len(artists)) {
		t.Errorf("%d Spotify requests for %d artists: the 429s were not waited out together", st.Requests, len(artists))
	}
	t.Logf("stand-in: %d requests, %d answered 429, %d arrived inside a Retry-After (sent before the 429 arrived)", st.Requests, st.TooMany, st.InsideRetryAfter)
	if st.TooMany == 0 {
		t.Error("the stand-in never answered 429: the test does not test the cooldown")
	}
	r.queueEmpty()
}

func TestStopGivesWorkBack(t *testing.T) {
	// A short visibility timeout: the emulator's long poll that the stop
	// abandons may still take the released messages, which then come back
	// when their visibility ends (on SQS too, such messages are delayed, not lost).
	r := newRig(t, rigOptions{fake: fakespotify.Config{Latency: time.Hour}, visibility: 2})
	artists := ids(8, "stop")
	r.enqueue(artists...)
	w, err := worker.New(r.q, nil, r.store, r.client, worker.Options{
		WaitTime: time.Second, DrainTimeout: 200 * time.Millisecond, Gate: r.limiter,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- w.Run(ctx) }()
	// Wait until the artists are in flight (the stand-in holds them), then stop.
	deadline := time.Now().Add(30 * time.Second)
	for r.fake.Stats().Requests < int64(len(artists)) && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(25 * time.Second):
		t.Fatal("Run did not return within 25s of the stop")
	}
	// What was in flight went back to the queue: a second worker finishes it.
	r.fake.SetLatency(0)
	r.runUntil(func() bool { return r.stored(artists) })
	for _, id := range artists {
		r.checkRows(id, 0)
	}
	r.queueEmpty()
}

func testLogger(w io.Writer) *slog.Logger {
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}
