package worker_test

// Fault injection at the worker level: "nothing lost, nothing doubled, no
// poison loop". Each test wires a worker on the emulators as the rig does,
// wraps one backend to inject a fault, and checks the end state: every
// artist's rows exactly the stand-in's tracks, the queue empty, nothing in
// the dead-letter queue but poison, and no artist fetched more often than
// the fault explains.

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	dbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/aws/smithy-go"
	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/sixpotify/top-tracks/internal/artistid"
	"github.com/sixpotify/top-tracks/internal/fakespotify"
	"github.com/sixpotify/top-tracks/internal/metrics"
	"github.com/sixpotify/top-tracks/internal/queue/sqsqueue"
	"github.com/sixpotify/top-tracks/internal/store"
	"github.com/sixpotify/top-tracks/internal/store/dynamostore"
	"github.com/sixpotify/top-tracks/internal/store/storetest"
	"github.com/sixpotify/top-tracks/internal/testenv"
	"github.com/sixpotify/top-tracks/internal/testutil"
	"github.com/sixpotify/top-tracks/worker"
)

// faultWorld is a rig whose queue goes through a faultySQS, and whose store
// and Spotify client the tests may replace with faulty ones.
type faultWorld struct {
	*rig
	sqsF *faultySQS
}

func newFaultWorld(t *testing.T, o rigOptions) *faultWorld {
	t.Helper()
	r := newRig(t, o)
	f := &faultWorld{rig: r}
	f.sqsF = &faultySQS{API: r.sqs, injected: map[string]int{}, deliveries: map[string]int{}}
	r.q = sqsqueue.New(f.sqsF, r.url, sqsqueue.Options{})
	return f
}

func (f *faultWorld) logText() string {
	return f.logs.String()
}

// start runs a worker in the background until the returned func is called
// (or the test ends); that func waits for Run to return.
func (f *faultWorld) start(opts worker.Options) (*worker.Worker, func()) {
	f.t.Helper()
	w := f.newWorker(opts)
	stop := runInBackground(f.t, w, 30*time.Second)
	f.t.Cleanup(func() {
		if f.t.Failed() {
			f.t.Logf("worker log:\n%s", f.logText())
		}
	})
	return w, stop
}

// queueDepth is every message the queue holds: visible, in flight, delayed.
func (f *faultWorld) queueDepth(url string) int {
	f.t.Helper()
	n, err := testenv.QueueDepth(testenv.Context(f.t), f.sqs, url)
	if err != nil {
		f.t.Fatal(err)
	}
	return n
}

// settle waits until every artist has its artists row and the queue is
// empty, failing the test after d.
func (f *faultWorld) settle(d time.Duration, ids []string) {
	f.t.Helper()
	testutil.Eventually(f.t, d, "every artist stored and the queue empty", func() bool {
		return f.stored(ids) && f.queueDepth(f.url) == 0
	})
}

// checkAll checks the end state: exact rows, empty queue, empty DLQ.
func (f *faultWorld) checkAll(ids []string) {
	f.t.Helper()
	for _, id := range ids {
		f.checkRows(id, 0)
	}
	f.queueEmpty()
	if f.dlqURL != "" {
		if n := f.queueDepth(f.dlqURL); n != 0 {
			f.t.Errorf("the dead-letter queue holds %d messages; want none", n)
		}
	}
}

// fetchedOnce checks that the stand-in answered 200 exactly once per artist.
func (f *faultWorld) fetchedOnce(ids []string) {
	f.t.Helper()
	st := f.fake.Stats()
	for _, id := range ids {
		if n := st.PerArtist[id]; n != 1 {
			f.t.Errorf("artist %s: the stand-in answered 200 %d times; want exactly once", id, n)
		}
	}
}

func counterValue(c prometheus.Counter) float64 {
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		return -1
	}
	return m.GetCounter().GetValue()
}

func processed(w *worker.Worker, outcome string) float64 {
	return counterValue(w.Metrics().Processed.WithLabelValues(worker.LaneChatbot, outcome))
}

// ---------------------------------------------------------------- SQS faults

// faultySQS wraps the emulator's client. Its knobs are read under mu, so
// tests may turn them while the worker runs.
type faultySQS struct {
	sqsqueue.API

	mu sync.Mutex
	sqsKnobs

	injected   map[string]int // fault → times injected
	deliveries map[string]int // body → times handed to the worker
}

// sqsKnobs are the faults a faultySQS injects.
type sqsKnobs struct {
	// failReceives: the next n ReceiveMessage calls fail before reaching SQS.
	failReceives int
	// loseReceives: the next n ReceiveMessage calls that return messages
	// reach SQS, which hands the messages out, but the answer is lost.
	loseReceives int
	// failDeleteCalls: the next n DeleteMessageBatch calls fail as a whole.
	failDeleteCalls int
	// failDeleteEntries: the next n DeleteMessageBatch calls report their
	// first entry failed (InternalError) and delete the others.
	failDeleteEntries int
	// failVisibility makes every ChangeMessageVisibility call fail.
	failVisibility bool
}

var errSQSInjected = &smithy.GenericAPIError{Code: "InternalError", Message: "injected fault", Fault: smithy.FaultServer}

func (f *faultySQS) take(n *int, fault string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if *n > 0 {
		*n--
		f.injected[fault]++
		return true
	}
	return false
}

func (f *faultySQS) count(fault string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.injected[fault]
}

func (f *faultySQS) injectedCounts() map[string]int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return copyCounts(f.injected)
}

func (f *faultySQS) delivered(body string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.deliveries[body]
}

func (f *faultySQS) ReceiveMessage(ctx context.Context, in *sqs.ReceiveMessageInput, optFns ...func(*sqs.Options)) (*sqs.ReceiveMessageOutput, error) {
	if f.take(&f.failReceives, "receive") {
		return nil, errSQSInjected
	}
	out, err := f.API.ReceiveMessage(ctx, in, optFns...)
	if err != nil {
		return out, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(out.Messages) > 0 && f.loseReceives > 0 {
		f.loseReceives--
		f.injected["receive answer lost"] += len(out.Messages)
		return nil, errSQSInjected
	}
	for _, m := range out.Messages {
		f.deliveries[aws.ToString(m.Body)]++
	}
	return out, nil
}

func (f *faultySQS) DeleteMessageBatch(ctx context.Context, in *sqs.DeleteMessageBatchInput, optFns ...func(*sqs.Options)) (*sqs.DeleteMessageBatchOutput, error) {
	if f.take(&f.failDeleteCalls, "delete call") {
		return nil, errSQSInjected
	}
	if len(in.Entries) == 0 || !f.take(&f.failDeleteEntries, "delete entry") {
		return f.API.DeleteMessageBatch(ctx, in, optFns...)
	}
	out := &sqs.DeleteMessageBatchOutput{}
	if rest := in.Entries[1:]; len(rest) > 0 {
		var err error
		if out, err = f.API.DeleteMessageBatch(ctx, &sqs.DeleteMessageBatchInput{QueueUrl: in.QueueUrl, Entries: rest}, optFns...); err != nil {
			return nil, err
		}
	}
	out.Failed = append(out.Failed, sqstypes.BatchResultErrorEntry{
		Id: in.Entries[0].Id, Code: aws.String("InternalError"), Message: aws.String("injected fault"), SenderFault: false,
	})
	return out, nil
}

func (f *faultySQS) ChangeMessageVisibility(ctx context.Context, in *sqs.ChangeMessageVisibilityInput, optFns ...func(*sqs.Options)) (*sqs.ChangeMessageVisibilityOutput, error) {
	f.mu.Lock()
	fail := f.failVisibility
	if fail {
		f.injected["change visibility"]++
	}
	f.mu.Unlock()
	if fail {
		return nil, errSQSInjected
	}
	return f.API.ChangeMessageVisibility(ctx, in, optFns...)
}

func TestFaultsSQS(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		visibility int
		knobs      sqsKnobs
		maxRetries int
		// spotify, when set, puts faults on the Spotify side too.
		spotify func(f *faultWorld, artists []string)
		fault   string // the injected fault that must have happened
	}{
		{name: "receive fails three times", knobs: sqsKnobs{failReceives: 3}, fault: "receive"},
		// SQS handed the messages out but the worker never heard: they come
		// back when their visibility timeout ends.
		{name: "receive answer lost", visibility: 2, knobs: sqsKnobs{loseReceives: 1}, fault: "receive answer lost"},
		// The deleted-too-late messages come back, are found fresh and
		// deleted without a second Spotify call.
		{name: "delete batch fails once", visibility: 2, knobs: sqsKnobs{failDeleteCalls: 1}, fault: "delete call"},
		{name: "delete entry fails", visibility: 2, knobs: sqsKnobs{failDeleteEntries: 2}, fault: "delete entry"},
		{
			// Every ChangeMessageVisibility fails: a release after a failure
			// (artist 0 fails two attempts with MaxRetries 1) and the
			// heartbeat of a slow artist (artist 1 takes 2.5s, visibility 2s).
			name: "change visibility fails", visibility: 2,
			knobs: sqsKnobs{failVisibility: true}, maxRetries: 1,
			spotify: func(f *faultWorld, artists []string) {
				f.useProxy(&spotifyProxy{plan: func(id string, n int) spotifyFault {
					switch {
					case id == artists[0] && n <= 2:
						return fault503
					case id == artists[1] && n == 1:
						return faultDelay
					}
					return pass
				}, delay: 2500 * time.Millisecond}, 10*time.Second)
			},
			fault: "change visibility",
		},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newFaultWorld(t, rigOptions{visibility: tt.visibility})
			artists := ids(12, fmt.Sprintf("sqsfault%d-", i))
			f.sqsF.sqsKnobs = tt.knobs
			if tt.spotify != nil {
				tt.spotify(f, artists)
			}
			f.enqueue(artists...)
			w, stop := f.start(worker.Options{Concurrency: 4, MaxRetries: tt.maxRetries})
			f.settle(45*time.Second, artists)
			stop()
			f.checkAll(artists)
			f.fetchedOnce(artists)
			if n := f.sqsF.count(tt.fault); n == 0 {
				t.Errorf("the fault %q was never injected: the test tests nothing", tt.fault)
			}
			t.Logf("injected %v; deleted %v, delete failures %v, receive errors %v, released %v",
				f.sqsF.injectedCounts(), counterValue(w.Metrics().Deleted.WithLabelValues(worker.LaneChatbot)),
				counterValue(w.Metrics().DeleteFailures.WithLabelValues(worker.LaneChatbot)),
				counterValue(w.Metrics().ReceiveErrors.WithLabelValues(worker.LaneChatbot)),
				processed(w, metrics.OutcomeReleased))
		})
	}
}

// ----------------------------------------------------------- DynamoDB faults

// faultyDB wraps dynalite's client.
type faultyDB struct {
	dynamostore.API

	mu sync.Mutex
	// throttleFirst: the next n calls of an operation fail with a throttling
	// error (ProvisionedThroughputExceededException and ThrottlingException in
	// turn) before reaching DynamoDB.
	throttleFirst map[string]int
	// answerLost: the next n calls of an operation that succeed in DynamoDB
	// answer a throttling error instead, as if the answer were lost.
	answerLost map[string]int
	// outage makes every BatchWriteItem, PutItem and UpdateItem throttled.
	outage atomic.Bool
	// partial: the next n BatchWriteItem calls write only their first
	// request and hand the rest back as UnprocessedItems.
	partial atomic.Int32

	throttles, lost, unprocessed atomic.Int64
}

func newFaultyDB(api dynamostore.API) *faultyDB {
	return &faultyDB{API: api, throttleFirst: map[string]int{}, answerLost: map[string]int{}}
}

func (f *faultyDB) throttle() error {
	if f.throttles.Add(1)%2 == 0 {
		return &dbtypes.ThrottlingException{Message: aws.String("injected")}
	}
	return &dbtypes.ProvisionedThroughputExceededException{Message: aws.String("injected")}
}

// before returns the error to answer instead of calling DynamoDB, if any.
func (f *faultyDB) before(op string) error {
	if f.outage.Load() {
		return f.throttle()
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.throttleFirst[op] > 0 {
		f.throttleFirst[op]--
		return f.throttle()
	}
	return nil
}

// lose reports whether the answer of a call that succeeded is to be lost.
func (f *faultyDB) lose(op string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.answerLost[op] > 0 {
		f.answerLost[op]--
		f.lost.Add(1)
		return true
	}
	return false
}

// faultyCall makes the DynamoDB call op with its faults: refused before it
// reaches DynamoDB, or its answer lost after it succeeded.
func faultyCall[Out any](f *faultyDB, op string, call func() (*Out, error)) (*Out, error) {
	if err := f.before(op); err != nil {
		return nil, err
	}
	out, err := call()
	if err == nil && f.lose(op) {
		return nil, f.throttle()
	}
	return out, err
}

func (f *faultyDB) PutItem(ctx context.Context, in *dynamodb.PutItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error) {
	return faultyCall(f, "PutItem", func() (*dynamodb.PutItemOutput, error) { return f.API.PutItem(ctx, in, optFns...) })
}

func (f *faultyDB) UpdateItem(ctx context.Context, in *dynamodb.UpdateItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error) {
	return faultyCall(f, "UpdateItem", func() (*dynamodb.UpdateItemOutput, error) { return f.API.UpdateItem(ctx, in, optFns...) })
}

func (f *faultyDB) BatchWriteItem(ctx context.Context, in *dynamodb.BatchWriteItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.BatchWriteItemOutput, error) {
	if err := f.before("BatchWriteItem"); err != nil {
		return nil, err
	}
	if f.partial.Add(-1) < 0 {
		out, err := f.API.BatchWriteItem(ctx, in, optFns...)
		if err == nil && len(out.UnprocessedItems) == 0 && f.lose("BatchWriteItem") {
			return nil, f.throttle()
		}
		return out, err
	}
	first := map[string][]dbtypes.WriteRequest{}
	rest := map[string][]dbtypes.WriteRequest{}
	for table, reqs := range in.RequestItems {
		first[table] = reqs[:1]
		if len(reqs) > 1 {
			rest[table] = reqs[1:]
			f.unprocessed.Add(int64(len(reqs) - 1))
		}
	}
	out, err := f.API.BatchWriteItem(ctx, &dynamodb.BatchWriteItemInput{RequestItems: first}, optFns...)
	if err != nil {
		return nil, err
	}
	out.UnprocessedItems = rest
	return out, nil
}

// useFaultyStore replaces the rig's store with one over fresh tables whose
// client is a faultyDB.
func (f *faultWorld) useFaultyStore(opts dynamostore.Options) *faultyDB {
	f.t.Helper()
	db := testenv.DynamoDBClient(f.t)
	tracks, artists := unique("faulty_tracks"), unique("faulty_artists")
	if err := dynamostore.New(db, tracks, artists).CreateTables(testenv.Context(f.t)); err != nil {
		f.t.Fatal(err)
	}
	fdb := newFaultyDB(db)
	s, err := dynamostore.NewWithOptions(fdb, tracks, artists, opts)
	if err != nil {
		f.t.Fatal(err)
	}
	f.store = s
	return fdb
}

func TestFaultsDynamoDB(t *testing.T) {
	t.Parallel()
	fast := dynamostore.Options{RetryBase: 5 * time.Millisecond, RetryMax: 100 * time.Millisecond, Lease: 3 * time.Second}

	// Each fault is one the store rides out: every artist is fetched once
	// and stored, and the store's stats tell of the fault.
	tests := []struct {
		name   string
		seed   string
		inject func(db *faultyDB)
		check  func(t *testing.T, db *faultyDB, st dynamostore.Stats)
	}{
		{
			name: "throttled for a while", seed: "dbthrottle",
			inject: func(db *faultyDB) {
				for _, op := range []string{"BatchWriteItem", "PutItem", "UpdateItem"} {
					db.throttleFirst[op] = 8
				}
			},
			check: func(t *testing.T, db *faultyDB, st dynamostore.Stats) {
				if n := db.throttles.Load(); n != 24 || st.Throttled != n {
					t.Errorf("injected %d throttling errors, the store retried %d; want 24 and 24", n, st.Throttled)
				}
			},
		},
		{
			name: "partial UnprocessedItems", seed: "dbpartial",
			inject: func(db *faultyDB) { db.partial.Store(30) },
			check: func(t *testing.T, db *faultyDB, st dynamostore.Stats) {
				if db.unprocessed.Load() == 0 || st.Unprocessed != db.unprocessed.Load() {
					t.Errorf("handed back %d items as unprocessed; the store saw %d", db.unprocessed.Load(), st.Unprocessed)
				}
			},
		},
		{
			name: "writes land but their answers are lost", seed: "dblost",
			inject: func(db *faultyDB) {
				for _, op := range []string{"BatchWriteItem", "PutItem", "UpdateItem"} {
					db.answerLost[op] = 4
				}
			},
			check: func(t *testing.T, db *faultyDB, _ dynamostore.Stats) {
				if db.lost.Load() != 12 {
					t.Errorf("lost %d answers; want 12", db.lost.Load())
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newFaultWorld(t, rigOptions{})
			db := f.useFaultyStore(fast)
			tt.inject(db)
			artists := ids(12, tt.seed)
			f.enqueue(artists...)
			f.start(worker.Options{Concurrency: 4})
			f.settle(45*time.Second, artists)
			f.checkAll(artists)
			f.fetchedOnce(artists) // the store waited the fault out
			tt.check(t, db, f.store.Stats())
		})
	}

	t.Run("outage long enough to give the messages back", func(t *testing.T) {
		t.Parallel()
		f := newFaultWorld(t, rigOptions{})
		opts := fast
		opts.RetryFor = 300 * time.Millisecond
		db := f.useFaultyStore(opts)
		db.outage.Store(true)
		artists := ids(6, "dboutage")
		f.enqueue(artists...)
		w, stop := f.start(worker.Options{Concurrency: 6})
		testutil.Eventually(t, 45*time.Second, "every message given back during the outage", func() bool {
			return processed(w, metrics.OutcomeReleased) >= float64(len(artists))
		})
		db.outage.Store(false)
		f.settle(60*time.Second, artists)
		stop()
		f.checkAll(artists)
		st := f.fake.Stats()
		for _, id := range artists {
			if st.PerArtist[id] < 2 {
				t.Errorf("artist %s fetched %d times; want a fetch before and after the outage", id, st.PerArtist[id])
			}
		}
		t.Logf("outage: %d throttling errors; %v deliveries given back; fetches %v", db.throttles.Load(), processed(w, metrics.OutcomeReleased), st.PerArtist)
	})
}

// ------------------------------------------------------------ Spotify faults

type spotifyFault int

const (
	pass              spotifyFault = iota
	fault503                       // a 503 with Spotify's error body, the stand-in not asked
	faultBadRequest                // a 400 with Spotify's error body, the stand-in not asked
	faultTimeout                   // no answer until the client gives up
	faultDelay                     // proxy.delay, then the stand-in's answer
	faultResetBefore               // the connection reset before any answer
	faultResetMidBody              // the connection reset half-way through the body
	faultSlowBody                  // the body trickles in, within the client's timeout
	faultStallBody                 // half the body, then nothing until the client gives up
	faultMalformed                 // a 200 whose body is not a top-tracks answer
	faultHold                      // the stand-in answers at once; the answer is held until proxy.hold returns
)

var faultNames = map[spotifyFault]string{
	fault503: "503", faultBadRequest: "400", faultTimeout: "timeout", faultDelay: "delay",
	faultResetBefore: "reset before the answer", faultResetMidBody: "reset mid-body",
	faultSlowBody: "slow body", faultStallBody: "stalled body", faultMalformed: "malformed JSON", faultHold: "held answer",
}

// spotifyProxy sits in front of the stand-in and spoils some of its answers
// as plan says, by artist and attempt (1-based).
type spotifyProxy struct {
	fake  *fakespotify.Server
	plan  func(id string, attempt int) spotifyFault
	delay time.Duration
	hold  func(id string)

	mu       sync.Mutex
	attempts map[string]int
	served   map[string]int // 200 answers delivered whole, by artist
	injected map[string]int
	invalid  int // requests whose path held no valid artist ID
}

func (p *spotifyProxy) servedCounts() map[string]int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return copyCounts(p.served)
}

func (p *spotifyProxy) injectedCounts() map[string]int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return copyCounts(p.injected)
}

func copyCounts(m map[string]int) map[string]int {
	out := make(map[string]int, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

func (p *spotifyProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rest, ok1 := strings.CutPrefix(r.URL.EscapedPath(), "/v1/artists/")
	id, ok2 := strings.CutSuffix(rest, "/top-tracks")
	if !ok1 || !ok2 {
		p.fake.ServeHTTP(w, r) // the token endpoint
		return
	}
	p.mu.Lock()
	if !artistid.Valid(id) {
		p.invalid++
	}
	p.attempts[id]++
	attempt := p.attempts[id]
	fault := pass
	if p.plan != nil {
		fault = p.plan(id, attempt)
	}
	if fault != pass {
		p.injected[faultNames[fault]]++
	}
	p.mu.Unlock()

	switch fault {
	case fault503, faultBadRequest:
		status := http.StatusServiceUnavailable
		if fault == faultBadRequest {
			status = http.StatusBadRequest
		}
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		w.WriteHeader(status)
		fmt.Fprintf(w, `{"error":{"status":%d,"message":%q}}`, status, http.StatusText(status))
		return
	case faultTimeout:
		waitGone(r, 5*time.Second)
		return
	case faultResetBefore:
		resetConn(w)
		return
	case faultDelay:
		waitGone(r, p.delay)
	}

	rec := httptest.NewRecorder()
	p.fake.ServeHTTP(rec, r)
	body, whole := rec.Body.Bytes(), rec.Code == http.StatusOK
	switch {
	case fault == faultHold:
		p.hold(id)
	case fault == faultMalformed && whole:
		body, whole = corrupt(body, attempt+len(id)), false
	}
	for k, v := range rec.Header() {
		w.Header()[k] = v
	}
	w.WriteHeader(rec.Code)
	flusher := w.(http.Flusher)
	switch fault {
	case faultResetMidBody:
		_, _ = w.Write(body[:len(body)/2])
		flusher.Flush()
		resetConn(w)
		return
	case faultStallBody:
		_, _ = w.Write(body[:len(body)/2])
		flusher.Flush()
		waitGone(r, 5*time.Second)
		return
	case faultSlowBody:
		const chunks = 8
		for i := range chunks {
			_, _ = w.Write(body[i*len(body)/chunks : (i+1)*len(body)/chunks])
			flusher.Flush()
			time.Sleep(25 * time.Millisecond)
		}
	default:
		_, _ = w.Write(body)
	}
	if whole {
		p.mu.Lock()
		p.served[id]++
		p.mu.Unlock()
	}
}

// waitGone waits d or until the client goes away.
func waitGone(r *http.Request, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-r.Context().Done():
	}
}

// resetConn sends what was written so far, then a TCP reset.
func resetConn(w http.ResponseWriter) {
	conn, buf, err := w.(http.Hijacker).Hijack()
	if err != nil {
		return
	}
	_ = buf.Flush()
	if tc, ok := conn.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	_ = conn.Close()
}

// corrupt returns a body a top-tracks answer must not be taken from.
func corrupt(body []byte, n int) []byte {
	switch n % 6 {
	case 0:
		return body[:len(body)/2] // truncated
	case 1:
		return []byte("<html><body><h1>200 OK</h1></body></html>")
	case 2:
		return []byte(`{"tracks":[{"name":"no id","popularity":1}]}`)
	case 3:
		return []byte(`{"tracks":null}`)
	case 4:
		return []byte(`{"tracks":"ten"}`)
	default:
		return []byte("\x00\xff{{{")
	}
}

// useProxy puts p in front of the rig's stand-in and gives the worker a
// Spotify client with the given HTTP timeout that goes through it.
func (f *faultWorld) useProxy(p *spotifyProxy, timeout time.Duration) *spotifyProxy {
	f.t.Helper()
	p.fake = f.fake
	p.attempts, p.served, p.injected = map[string]int{}, map[string]int{}, map[string]int{}
	srv := httptest.NewServer(p)
	f.t.Cleanup(srv.Close)
	f.connect(srv.URL, &http.Client{Timeout: timeout})
	return p
}

func TestFaultsSpotify(t *testing.T) {
	t.Parallel()
	// byIndex builds a plan from a rule on the artist's index.
	byIndex := func(artists []string, rule func(i, attempt int) spotifyFault) func(string, int) spotifyFault {
		return func(id string, attempt int) spotifyFault {
			if i := slices.Index(artists, id); i >= 0 {
				return rule(i, attempt)
			}
			return pass
		}
	}
	tests := []struct {
		name  string
		fake  fakespotify.Config
		setup func(f *faultWorld, artists []string)
		rule  func(i, attempt int) spotifyFault
	}{
		{
			name: "5xx bursts",
			fake: fakespotify.Config{ErrorRate: 0.2, Seed: 7},
			setup: func(f *faultWorld, artists []string) {
				f.fake.FailNext(8, http.StatusServiceUnavailable)
				go func() {
					// A second burst once the first artists are stored.
					ctx := f.t.Context()
					for f.fake.Stats().OK < 3 && ctx.Err() == nil {
						time.Sleep(10 * time.Millisecond)
					}
					f.fake.FailNext(6, http.StatusBadGateway)
				}()
			},
		},
		{
			name: "timeouts",
			rule: func(i, attempt int) spotifyFault {
				if (i%3 == 0 && attempt == 1) || (i%3 == 1 && attempt <= 2) {
					return faultTimeout
				}
				return pass
			},
		},
		{
			name: "connection resets",
			rule: func(i, attempt int) spotifyFault {
				switch {
				case i%3 == 0 && attempt == 1:
					return faultResetBefore
				case i%3 == 1 && attempt == 1:
					return faultResetMidBody
				case i%3 == 1 && attempt == 2:
					return faultResetBefore
				}
				return pass
			},
		},
		{
			name: "slow and stalled bodies",
			rule: func(i, attempt int) spotifyFault {
				switch {
				case i%4 == 0 && attempt == 1:
					return faultStallBody
				case attempt <= 2:
					return faultSlowBody
				}
				return pass
			},
		},
		{
			name: "malformed JSON",
			rule: func(i, attempt int) spotifyFault {
				if (i%2 == 0 && attempt == 1) || (i%4 == 1 && attempt <= 2) {
					return faultMalformed
				}
				return pass
			},
		},
	}
	for k, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newFaultWorld(t, rigOptions{fake: tt.fake})
			artists := ids(12, fmt.Sprintf("spotifyfault%d-", k))
			p := &spotifyProxy{}
			if tt.rule != nil {
				p.plan = byIndex(artists, tt.rule)
			}
			f.useProxy(p, 750*time.Millisecond)
			if tt.setup != nil {
				tt.setup(f, artists)
			}
			f.enqueue(artists...)
			w, stop := f.start(worker.Options{Concurrency: 4})
			f.settle(45*time.Second, artists)
			stop()
			f.checkAll(artists)
			served := p.servedCounts()
			for _, id := range artists {
				if served[id] != 1 {
					t.Errorf("artist %s: %d whole 200 answers delivered; want exactly one", id, served[id])
				}
			}
			st := f.fake.Stats()
			if st.InvalidIDs != 0 || p.invalid != 0 {
				t.Errorf("invalid artist IDs reached Spotify: %d (stand-in), %d (proxy)", st.InvalidIDs, p.invalid)
			}
			retries := 0.0
			for _, cause := range []string{"server", "transport", "rate_limited"} {
				retries += counterValue(w.Metrics().Retries.WithLabelValues(cause))
			}
			injected := p.injectedCounts()
			if len(injected) == 0 && st.ServerErrors == 0 {
				t.Error("no fault was injected: the test tests nothing")
			}
			t.Logf("injected %v, stand-in 5xx %d; the worker retried %v times and gave back %v deliveries",
				injected, st.ServerErrors, retries, processed(w, metrics.OutcomeReleased))
		})
	}
}

// ----------------------------------------------------------- poison messages

// poisonBodies are message bodies no worker may send to Spotify; every ID in
// them is 22 bytes long unless its length is the fault.
func poisonBodies() []string {
	v := storetest.ID("poison-template")
	withID := func(id string) string { return `{"artist_id":"` + id + `"}` }
	return []string{
		`not json`,
		`{"artist_id":`,
		`[]`,
		`null`,
		`{}`,
		`{"market":"US","force":true}`,
		`{"artist_id":12345}`,
		withID(""),
		withID(v[:21]),  // too short
		withID(v + "x"), // too long
		withID(v[:10] + "/" + v[11:]),
		withID(v[:10] + ".." + v[12:]),
		withID("../../../../../../etc/"),
		withID(v[:10] + "%2F" + v[13:]),
		withID(v[:10] + "?" + v[11:]),
		withID(v[:10] + "#" + v[11:]),
		withID(v[:20] + "é"),
		withID(v[:10] + " " + v[11:]),
		`{"artist_id":"` + storetest.ID("poison-market") + `","market":"usa"}`,
		`{"artist_id":"` + storetest.ID("poison-trailing") + `"} {"artist_id":"x"}`,
	}
}

func TestFaultsPoisonMessages(t *testing.T) {
	t.Parallel()
	for _, dlq := range []bool{true, false} {
		name := "without DLQ: deleted and logged"
		o := rigOptions{}
		if dlq {
			name = "with DLQ: dead-lettered"
			o = rigOptions{maxReceiveCount: 3, visibility: 2}
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			f := newFaultWorld(t, o)
			seed := fmt.Sprint(dlq)
			wave1, wave2 := ids(6, "poison-wave1-"+seed), ids(6, "poison-wave2-"+seed)
			unknown := "0000" + storetest.ID("poison-unknown-" + seed)[4:]
			refused := storetest.ID("poison-400-" + seed) // Spotify answers 400 for it
			p := f.useProxy(&spotifyProxy{plan: func(id string, _ int) spotifyFault {
				if id == refused {
					return faultBadRequest
				}
				return pass
			}}, 10*time.Second)

			poison := append(poisonBodies(), `{"artist_id":"`+refused+`"}`)
			// Poison and valid messages interleaved, poison first.
			var bodies []string
			for i, b := range poison {
				bodies = append(bodies, b)
				if i < len(wave1) {
					bodies = append(bodies, `{"artist_id":"`+wave1[i]+`"}`)
				}
			}
			bodies = append(bodies, `{"artist_id":"`+unknown+`"}`)
			for len(bodies) > 0 {
				n := min(10, len(bodies))
				f.sendRaw(bodies[:n]...)
				bodies = bodies[n:]
			}
			w, stop := f.start(worker.Options{Concurrency: 8})
			// Valid messages keep being served while poison is around.
			testutil.Eventually(t, 30*time.Second, "a poison message handled", func() bool { return processed(w, metrics.OutcomePoison) > 0 })
			f.enqueue(wave2...)
			valid := append(slices.Clone(wave1), wave2...)
			testutil.Eventually(t, 45*time.Second, "every valid artist stored", func() bool { return f.stored(valid) && f.stored([]string{unknown}) })

			var dead []string
			if dlq {
				testutil.Eventually(t, 45*time.Second, "every poison message in the DLQ", func() bool {
					out, err := f.sqs.ReceiveMessage(testenv.Context(t), &sqs.ReceiveMessageInput{
						QueueUrl: aws.String(f.dlqURL), MaxNumberOfMessages: 10, WaitTimeSeconds: 1,
					})
					if err != nil {
						t.Fatal(err)
					}
					for _, m := range out.Messages {
						dead = append(dead, aws.ToString(m.Body))
						if _, err := f.sqs.DeleteMessage(testenv.Context(t), &sqs.DeleteMessageInput{QueueUrl: aws.String(f.dlqURL), ReceiptHandle: m.ReceiptHandle}); err != nil {
							t.Fatal(err)
						}
					}
					return len(dead) >= len(poison)
				})
			}
			testutil.Eventually(t, 45*time.Second, "the queue empty", func() bool { return f.queueDepth(f.url) == 0 })
			stop()

			for _, id := range valid {
				f.checkRows(id, 0)
			}
			if a, ok, err := f.store.Artist(testenv.Context(t), unknown); err != nil || !ok || a.Status != store.StatusNotFound {
				t.Errorf("unknown artist: artists row %+v, %v, %v; want status not_found", a, ok, err)
			}
			f.queueEmpty()
			if dlq {
				slices.Sort(dead)
				want := slices.Sorted(slices.Values(poison))
				if diff := cmp.Diff(dead, want); diff != "" {
					t.Errorf("DLQ (-got +want):\n%s", diff)
				}
			}

			// No invalid ID reached Spotify; only the valid artists, the
			// unknown one and the refused one did.
			st := f.fake.Stats()
			if st.InvalidIDs != 0 || st.BadRequests != 0 || p.invalid != 0 {
				t.Errorf("Spotify saw %d invalid IDs and %d bad requests, the proxy %d invalid IDs; want none", st.InvalidIDs, st.BadRequests, p.invalid)
			}
			if want := int64(len(valid) + 1); st.Requests != want {
				t.Errorf("the stand-in got %d requests; want %d (each valid artist once, the unknown one once)", st.Requests, want)
			}
			for id, n := range st.PerArtist {
				if !slices.Contains(valid, id) || n != 1 {
					t.Errorf("the stand-in answered artist %s %d times; want only valid artists, once each", id, n)
				}
			}

			// A bounded number of attempts for each poison message.
			limit := 1
			if dlq {
				limit = 3 // maxReceiveCount
			}
			for _, b := range poison {
				if n := f.sqsF.delivered(b); n < 1 || n > limit {
					t.Errorf("poison message %q was delivered %d times; want 1 to %d", b, n, limit)
				}
			}
			p.mu.Lock()
			refusedCalls := p.attempts[refused]
			p.mu.Unlock()
			if refusedCalls < 1 || refusedCalls > limit {
				t.Errorf("the artist Spotify refuses (400) was asked for %d times; want 1 to %d", refusedCalls, limit)
			}
			if !dlq {
				if n := strings.Count(f.logText(), "poison message deleted"); n != len(poison) {
					t.Errorf("%d poison messages deleted and logged; want %d", n, len(poison))
				}
			}
			t.Logf("poison outcomes %v, released %v; the refused artist was asked %d times",
				processed(w, metrics.OutcomePoison), processed(w, metrics.OutcomeReleased), refusedCalls)
		})
	}
}

// ------------------------------------------------------------------ ordering

// TestFaultsOlderResultNeverOverwritesNewer: the first delivery's Spotify
// answer (generation 0) is slow to arrive; meanwhile the artist's list
// changes (generation 1) and a second, forced delivery stores it. When the
// old answer finally arrives, it must not replace the newer rows.
func TestFaultsOlderResultNeverOverwritesNewer(t *testing.T) {
	t.Parallel()
	f := newFaultWorld(t, rigOptions{})
	x := storetest.ID("ordering")
	held, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	f.useProxy(&spotifyProxy{
		plan: func(id string, attempt int) spotifyFault {
			if id == x && attempt == 1 {
				return faultHold
			}
			return pass
		},
		hold: func(string) {
			once.Do(func() { close(held) })
			select {
			case <-release:
			case <-time.After(30 * time.Second):
			}
		},
	}, 60*time.Second)

	// A first artist ends the limiter's start-up probe (one call at a time
	// until Spotify has answered once), which the held answer would prolong.
	warm := storetest.ID("ordering-warm-up")
	f.sendRaw(`{"artist_id":"` + warm + `"}`)
	w, stop := f.start(worker.Options{Concurrency: 4})
	testutil.Eventually(t, 30*time.Second, "the first artist stored", func() bool { return f.stored([]string{warm}) })
	f.sendRaw(`{"artist_id":"` + x + `"}`)
	select {
	case <-held:
	case <-time.After(30 * time.Second):
		t.Fatal("the first fetch did not reach Spotify within 30s")
	}
	// Spotify has answered generation 0; the answer is on its way.
	f.fake.SetGeneration(x, 1)
	f.sendRaw(`{"artist_id":"` + x + `","force":true}`)
	newer := fakespotify.Tracks(x, 1, 10)
	testutil.Eventually(t, 30*time.Second, "the newer generation stored", func() bool {
		rows, err := f.store.Tracks(testenv.Context(t), x)
		if err != nil || len(rows) != len(newer) {
			return false
		}
		for i := range rows {
			if rows[i].ID != newer[i].ID {
				return false
			}
		}
		return true
	})
	close(release) // the old answer arrives
	testutil.Eventually(t, 30*time.Second, "both deliveries done", func() bool { return f.queueDepth(f.url) == 0 })
	stop()
	rows, err := f.store.Tracks(testenv.Context(t), x)
	if err != nil {
		t.Fatal(err)
	}
	switch gen := generationOf(x, rows); gen {
	case 1:
		f.checkRows(x, 1)
	default:
		t.Errorf("the artist's rows are generation %d's (the older answer, which arrived last), not generation 1's: an older result overwrote a newer one", gen)
	}
	if got := f.fake.Stats().PerArtist[x]; got != 2 {
		t.Errorf("the stand-in answered %d times; want 2", got)
	}
	t.Logf("outcomes: ok %v, stale %v", processed(w, metrics.OutcomeOK), processed(w, metrics.OutcomeStale))
}

// generationOf tells which generation of the artist's list rows are (by track
// IDs, in order), or -1 for neither 0 nor 1.
func generationOf(id string, rows []store.Row) int {
	got := make([]string, len(rows))
	for i, r := range rows {
		got[i] = r.ID
	}
	for gen := range 2 {
		var want []string
		for _, t := range fakespotify.Tracks(id, gen, 10) {
			want = append(want, t.ID)
		}
		if slices.Equal(got, want) {
			return gen
		}
	}
	return -1
}
