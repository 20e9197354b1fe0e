package bench_test

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/smithy-go/middleware"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/sixpotify/top-tracks/internal/fakespotify"
	"github.com/sixpotify/top-tracks/internal/gate"
	workermetrics "github.com/sixpotify/top-tracks/internal/metrics"
	"github.com/sixpotify/top-tracks/internal/queue"
	"github.com/sixpotify/top-tracks/internal/queue/sqsqueue"
	"github.com/sixpotify/top-tracks/internal/spotify"
	"github.com/sixpotify/top-tracks/internal/store"
	"github.com/sixpotify/top-tracks/internal/store/dynamostore"
	"github.com/sixpotify/top-tracks/internal/store/storetest"
	"github.com/sixpotify/top-tracks/internal/testenv"
	"github.com/sixpotify/top-tracks/worker"
)

const (
	clientID     = "bench-client"
	clientSecret = "bench-secret"
	// spotifyLatency is the stand-in's delay of every top-tracks answer.
	spotifyLatency = 20 * time.Millisecond
	// workerRate is the worker's Spotify rate limit: high enough never to
	// be what paces it, so that the limiter's cost is measured, not its waits.
	workerRate = 10_000
	// visibility is the benchmark queues' visibility timeout, in seconds.
	visibility = 30
)

// standIn is a Spotify stand-in on an httptest server, in this process
// (fake and srv) or in a child process (child, see tls_test.go).
type standIn struct {
	fake  *fakespotify.Server
	srv   *httptest.Server
	child *childStandIn
	// For a stand-in served over TLS (newTLSStandIn): the configuration
	// the baseline's fresh clients get, and the worker's HTTP client. Nil
	// for plain HTTP: both designs use their defaults.
	tlsConfig *tls.Config
	client    *http.Client
}

func newStandIn() *standIn {
	fake := fakespotify.New(fakespotify.Config{ClientID: clientID, ClientSecret: clientSecret, Latency: spotifyLatency})
	return &standIn{fake: fake, srv: httptest.NewServer(fake)}
}

func (s *standIn) apiURL() string   { return s.baseURL() + "/v1" }
func (s *standIn) tokenURL() string { return s.baseURL() + "/api/token" }

func (s *standIn) baseURL() string {
	if s.child != nil {
		return s.child.url
	}
	return s.srv.URL
}

// stats returns the stand-in's counters.
func (s *standIn) stats() fakespotify.Stats {
	if s.child != nil {
		return s.child.stats().Stats
	}
	return s.fake.Stats()
}

// shared is the stand-in every benchmark of the run uses, closed by TestMain.
var (
	sharedOnce sync.Once
	shared     *standIn
)

func sharedStandIn() *standIn {
	sharedOnce.Do(func() { shared = newStandIn() })
	return shared
}

func closeSharedStandIn() {
	if shared != nil {
		shared.srv.Close()
	}
}

var seq atomic.Int64

func unique(kind string) string {
	return fmt.Sprintf("bench-%s-%d-%d", kind, os.Getpid(), seq.Add(1))
}

// artistIDs returns n artist IDs no other round uses. None starts with
// "0000", which the stand-in answers 404.
func artistIDs(n int) []string {
	round := unique("artists")
	ids := make([]string, 0, n)
	for i := 0; len(ids) < n; i++ {
		id := storetest.ID(fmt.Sprintf("%s/%d", round, i))
		if id[:4] != "0000" {
			ids = append(ids, id)
		}
	}
	return ids
}

// world is one round's fresh queue and tables on the emulators, holding the
// artists, with clients that count their calls.
type world struct {
	sqs      *countingSQS
	queueURL string
	rawDB    *dynamodb.Client
	db       *dynamodb.Client // rawDB's emulator, its calls counted in dbCalls
	dbCalls  *dynamoCalls
	tracks   string
	artists  string
	ids      []string
	once     sync.Once
}

func newWorld(tb testing.TB, ids []string, visibilitySeconds int) *world {
	tb.Helper()
	ctx := testenv.Context(tb)
	sqsClient := testenv.SQSClient(tb)
	db := testenv.DynamoDBClient(tb)
	calls := &dynamoCalls{}
	w := &world{sqs: &countingSQS{Client: sqsClient}, rawDB: db, db: dynamodb.New(db.Options(), calls.option()), dbCalls: calls,
		tracks: unique("tracks"), artists: unique("artists"), ids: ids}
	out, err := sqsClient.CreateQueue(ctx, &sqs.CreateQueueInput{
		QueueName:  aws.String(unique("q")),
		Attributes: map[string]string{"VisibilityTimeout": fmt.Sprint(visibilitySeconds)},
	})
	if err != nil {
		tb.Fatalf("create queue: %v", err)
	}
	w.queueURL = aws.ToString(out.QueueUrl)
	tb.Cleanup(w.close)
	// The tables have the worker's schema; the raw client creates them, so
	// that nothing before the run is counted.
	if err := dynamostore.New(db, w.tracks, w.artists).CreateTables(ctx); err != nil {
		tb.Fatalf("create tables: %v", err)
	}
	if err := enqueue(ctx, sqsqueue.New(sqsClient, w.queueURL, sqsqueue.Options{}), ids); err != nil {
		tb.Fatal(err)
	}
	return w
}

// close deletes the queue and the tables, so that the emulators' state does
// not grow from round to round.
func (w *world) close() {
	w.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_, _ = w.sqs.Client.DeleteQueue(ctx, &sqs.DeleteQueueInput{QueueUrl: aws.String(w.queueURL)})
		for _, table := range []string{w.tracks, w.artists} {
			_, _ = w.rawDB.DeleteTable(ctx, &dynamodb.DeleteTableInput{TableName: aws.String(table)})
		}
	})
}

// reader returns a store over the round's tables that reads with the raw
// client (not counted).
func (w *world) reader() *dynamostore.Store {
	return dynamostore.New(w.rawDB, w.tracks, w.artists)
}

// storedArtists counts the artists rows with status ok.
func (w *world) storedArtists(ctx context.Context) (int, error) {
	n := 0
	err := w.reader().ScanArtists(ctx, func(a store.Artist) error {
		if a.Status == store.StatusOK {
			n++
		}
		return nil
	})
	return n, err
}

// runBaseline runs the baseline on w until the queue is drained.
func runBaseline(ctx context.Context, w *world, s *standIn, concurrency int) (*Baseline, error) {
	b, err := NewBaseline(BaselineConfig{
		SQS: w.sqs, QueueURL: w.queueURL,
		DynamoDB: w.db, TracksTable: w.tracks, ArtistsTable: w.artists,
		APIURL: s.apiURL(), TokenURL: s.tokenURL(), ClientID: clientID, ClientSecret: clientSecret,
		TLSClientConfig: s.tlsConfig,
		Concurrency:     concurrency,
		StopWhenIdle:    true,
	})
	if err != nil {
		return nil, err
	}
	return b, b.Run(ctx)
}

// runWorker runs the real worker on w until the queue is drained, wired as
// workercmd.Build wires it: sqsqueue, dynamostore, the Spotify client with
// the shared throttle limiter and the metrics hooks.
func runWorker(ctx context.Context, w *world, s *standIn, concurrency int) (*dynamostore.Store, error) {
	return runWorkerWith(ctx, w, s, concurrency, dynamostore.Options{}, nil)
}

// runWorkerWith is runWorker with the store's options, and tune (if not
// nil) applied to the worker's options.
func runWorkerWith(ctx context.Context, w *world, s *standIn, concurrency int, storeOpts dynamostore.Options, tune func(*worker.Options)) (*dynamostore.Store, error) {
	limiter := gate.New(gate.Options{Rate: workerRate, Fixed: true})
	m := workermetrics.New(prometheus.NewRegistry(), limiter.CooldownLeft, limiter.Rate)
	client, err := spotify.New(spotify.Config{
		APIURL: s.apiURL(), TokenURL: s.tokenURL(), ClientID: clientID, ClientSecret: clientSecret,
		HTTPClient: s.client,
		Gate:       limiter,
		OnResponse: m.ObserveSpotify,
		OnToken:    m.ObserveToken,
	})
	if err != nil {
		return nil, err
	}
	st, err := dynamostore.NewWithOptions(w.db, w.tracks, w.artists, storeOpts)
	if err != nil {
		return nil, err
	}
	q := sqsqueue.New(w.sqs, w.queueURL, sqsqueue.Options{})
	opts := worker.Options{
		Concurrency:  concurrency,
		WaitTime:     time.Millisecond, // a short poll, as RECEIVE_WAIT_TIME=0s
		StopWhenIdle: true,
		Gate:         limiter,
		Metrics:      m,
		Logger:       slog.New(slog.DiscardHandler),
	}
	if tune != nil {
		tune(&opts)
	}
	wk, err := worker.New(q, nil, st, client, opts)
	if err != nil {
		return nil, err
	}
	return st, wk.Run(ctx)
}

// enqueue sends one message per artist, ten per batch.
func enqueue(ctx context.Context, q *sqsqueue.Queue, ids []string) error {
	return sendBatches(ctx, q, ids, 10)
}

// sendBatches sends one message per artist (market US) on q, size to a
// batch.
func sendBatches(ctx context.Context, q interface {
	SendBatch(context.Context, []queue.Entry) ([]error, error)
}, ids []string, size int) error {
	for start := 0; start < len(ids); start += size {
		batch := ids[start:min(start+size, len(ids))]
		entries := make([]queue.Entry, len(batch))
		for i, id := range batch {
			entries[i] = queue.Entry{Body: fmt.Appendf(nil, `{"artist_id":%q,"market":"US"}`, id)}
		}
		errs, err := q.SendBatch(ctx, entries)
		if err != nil {
			return fmt.Errorf("enqueue: %w", err)
		}
		if err := errors.Join(errs...); err != nil {
			return fmt.Errorf("enqueue: %w", err)
		}
	}
	return nil
}

// dynamoKinds are the DynamoDB calls the benchmarks count, each a write
// (true) or a read; the tables' creation and description are not counted.
var dynamoKinds = map[string]bool{
	"PutItem": true, "UpdateItem": true, "DeleteItem": true, "BatchWriteItem": true,
	"GetItem": false, "Query": false, "Scan": false,
}

// onDynamoCall returns a client option that passes each counted call
// (dynamoKinds) of the client through fn, named id in its middleware stack:
// once a call, before its retries.
func onDynamoCall(id string, fn func(ctx context.Context, write bool, in middleware.InitializeInput, next middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error)) func(*dynamodb.Options) {
	step := middleware.InitializeMiddlewareFunc(id, func(ctx context.Context, in middleware.InitializeInput, next middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
		write, counted := dynamoKinds[middleware.GetOperationName(ctx)]
		if !counted {
			return next.HandleInitialize(ctx, in)
		}
		return fn(ctx, write, in, next)
	})
	return func(o *dynamodb.Options) {
		o.APIOptions = append(o.APIOptions, func(s *middleware.Stack) error {
			return s.Initialize.Add(step, middleware.Before)
		})
	}
}

// dynamoCalls counts the DynamoDB calls of the clients it is an option of,
// by kind.
type dynamoCalls struct {
	writes, reads atomic.Int64
}

func (c *dynamoCalls) option() func(*dynamodb.Options) {
	return onDynamoCall("benchCountCalls", func(ctx context.Context, write bool, in middleware.InitializeInput, next middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
		if write {
			c.writes.Add(1)
		} else {
			c.reads.Add(1)
		}
		return next.HandleInitialize(ctx, in)
	})
}

// countingSQS counts the SQS calls made through it, and the most messages
// held at once: received and not yet deleted.
type countingSQS struct {
	*sqs.Client
	calls      atomic.Int64
	held, peak atomic.Int64
}

func (c *countingSQS) hold(n int64) {
	h := c.held.Add(n)
	for {
		p := c.peak.Load()
		if h <= p || c.peak.CompareAndSwap(p, h) {
			return
		}
	}
}

func (c *countingSQS) ReceiveMessage(ctx context.Context, in *sqs.ReceiveMessageInput, optFns ...func(*sqs.Options)) (*sqs.ReceiveMessageOutput, error) {
	c.calls.Add(1)
	out, err := c.Client.ReceiveMessage(ctx, in, optFns...)
	if err == nil {
		c.hold(int64(len(out.Messages)))
	}
	return out, err
}

func (c *countingSQS) DeleteMessage(ctx context.Context, in *sqs.DeleteMessageInput, optFns ...func(*sqs.Options)) (*sqs.DeleteMessageOutput, error) {
	c.calls.Add(1)
	out, err := c.Client.DeleteMessage(ctx, in, optFns...)
	if err == nil {
		c.hold(-1)
	}
	return out, err
}

func (c *countingSQS) DeleteMessageBatch(ctx context.Context, in *sqs.DeleteMessageBatchInput, optFns ...func(*sqs.Options)) (*sqs.DeleteMessageBatchOutput, error) {
	c.calls.Add(1)
	out, err := c.Client.DeleteMessageBatch(ctx, in, optFns...)
	if err == nil {
		c.hold(-int64(len(out.Successful)))
	}
	return out, err
}

func (c *countingSQS) ChangeMessageVisibility(ctx context.Context, in *sqs.ChangeMessageVisibilityInput, optFns ...func(*sqs.Options)) (*sqs.ChangeMessageVisibilityOutput, error) {
	c.calls.Add(1)
	return c.Client.ChangeMessageVisibility(ctx, in, optFns...)
}

func (c *countingSQS) GetQueueAttributes(ctx context.Context, in *sqs.GetQueueAttributesInput, optFns ...func(*sqs.Options)) (*sqs.GetQueueAttributesOutput, error) {
	c.calls.Add(1)
	return c.Client.GetQueueAttributes(ctx, in, optFns...)
}
