package bench_test

// BenchmarkAskLatency: a chatbot's one call (producer.Asker.Ask) for an
// unknown artist, from the call to its answer, while a bulk backlog drains
// at a saturated quota (the lanes set-up of BenchmarkQuotaChatbotLatency, on
// the SQS and DynamoDB emulators), and how many DynamoDB reads each answered
// ask costs. It prints its figures and reports them as metrics; it asserts
// nothing.

import (
	"context"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"os"
	"slices"
	"sync"
	"testing"
	"text/tabwriter"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/sixpotify/top-tracks/internal/ctxsleep"
	"github.com/sixpotify/top-tracks/internal/fakespotify"
	"github.com/sixpotify/top-tracks/internal/gate"
	"github.com/sixpotify/top-tracks/internal/queue/sqsqueue"
	"github.com/sixpotify/top-tracks/internal/spotify"
	"github.com/sixpotify/top-tracks/internal/store/dynamostore"
	"github.com/sixpotify/top-tracks/producer"
	"github.com/sixpotify/top-tracks/worker"
)

const (
	askBacklog = 3_000
	askCount   = 100
	askEvery   = 400 * time.Millisecond
	// askFirst: after the worker starts, when the bulk lane holds the quota
	// saturated and the gate has learnt it (the gate sweep's steady span). An
	// ask during the cold start waits out the first volley's Retry-After.
	askFirst    = 25 * time.Second
	askDeadline = 20 * time.Second
	askGoalP99  = time.Second
	askGoalRead = 10.0
)

type askResult struct {
	latencies  []time.Duration // of the answered asks, sorted
	toSpotify  []time.Duration // of the answered asks, call to Spotify asked (the answer's fetched_at), sorted
	unanswered int
	reads      int64 // DynamoDB reads of the asker
	workerRead int64 // DynamoDB reads of the worker
	run        time.Duration
	st         fakespotify.Stats
}

func BenchmarkAskLatency(b *testing.B) {
	// Once the gate has learnt the quota, and from a cold start: the first
	// ask as the worker starts, during the gate's first volley.
	for _, c := range []struct {
		name  string
		first time.Duration
	}{{"learnt", askFirst}, {"cold", 0}} {
		b.Run(c.name, func(b *testing.B) {
			var res askResult
			for b.Loop() {
				res = runAsk(b, c.first)
			}
			printAsk(b, c.name, c.first, res)
		})
	}
}

func printAsk(b *testing.B, name string, first time.Duration, res askResult) {
	n := len(res.latencies)
	p50, p99 := percentile(res.latencies, 0.50), percentile(res.latencies, 0.99)
	perAsk := float64(res.reads) / float64(max(n, 1))
	b.ReportMetric(secs(p50), "ask-p50-s")
	b.ReportMetric(secs(p99), "ask-p99-s")
	b.ReportMetric(perAsk, "ddb-reads/ask")
	b.ReportMetric(float64(res.unanswered), "unanswered")

	out := os.Stdout
	fmt.Fprintf(out, "\nAsk latency (%s): quota %d per %v (%.0f/s), worker rate %d/s adaptive, concurrency 16, Spotify latency %v; %d bulk artists queued on the bulk lane; %d asks for unknown artists, one every %v from %v, each with a %v deadline; SQS and DynamoDB emulators; run %.1fs.\n",
		name, quotaLimit, quotaWindow, quotaRate, overRate, spotifyLatency, askBacklog, askCount, askEvery, first, askDeadline, res.run.Seconds())
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
	over := 0
	for _, l := range res.latencies {
		if l > askGoalP99 {
			over++
		}
	}
	fmt.Fprintf(tw, "ask p50\tp99\tmax\tover %v\tcall→Spotify asked p50\tp99\tanswered\tunanswered\tDynamoDB reads/ask\tworker reads\tSpotify OK/s\t429\t\n", askGoalP99)
	fmt.Fprintf(tw, "%.2fs\t%.2fs\t%.2fs\t%d\t%.2fs\t%.2fs\t%d\t%d\t%.1f\t%d\t%.1f\t%d\t\n",
		secs(p50), secs(p99), secs(percentile(res.latencies, 1)), over,
		secs(percentile(res.toSpotify, 0.5)), secs(percentile(res.toSpotify, 0.99)),
		n, res.unanswered, perAsk, res.workerRead, float64(res.st.OK)/res.run.Seconds(), res.st.TooMany)
	tw.Flush()
	fmt.Fprintf(out, "p99 ≤ %v %s; reads per answered ask ≤ %.0f %s (a read is one GetItem of the artists row or one Query of its tracks)\n",
		askGoalP99, verdict(res.unanswered == 0 && p99 <= askGoalP99), askGoalRead, verdict(perAsk <= askGoalRead))
}

func runAsk(b *testing.B, first time.Duration) askResult {
	b.Helper()
	ctx := testContext(b)
	fake := fakespotify.New(fakespotify.Config{ClientID: clientID, ClientSecret: clientSecret,
		Limit: quotaLimit, Window: quotaWindow, Latency: spotifyLatency})
	srv := httptest.NewServer(fake)
	b.Cleanup(srv.Close)

	// The bulk lane holds the backlog; the chatbot's lane is empty.
	w := newWorld(b, artistIDs(askBacklog), visibility)
	out, err := w.sqs.Client.CreateQueue(ctx, &sqs.CreateQueueInput{
		QueueName:  aws.String(unique("chatbot")),
		Attributes: map[string]string{"VisibilityTimeout": fmt.Sprint(visibility)},
	})
	if err != nil {
		b.Fatal(err)
	}
	chatbotURL := aws.ToString(out.QueueUrl)
	b.Cleanup(func() {
		_, _ = w.sqs.Client.DeleteQueue(context.Background(), &sqs.DeleteQueueInput{QueueUrl: aws.String(chatbotURL)})
	})
	chatbot := sqsqueue.New(w.sqs.Client, chatbotURL, sqsqueue.Options{})
	bulk := sqsqueue.New(w.sqs, w.queueURL, sqsqueue.Options{})

	limiter := gate.New(gate.Options{Rate: overRate})
	client, err := spotify.New(spotify.Config{APIURL: srv.URL + "/v1", TokenURL: srv.URL + "/api/token",
		ClientID: clientID, ClientSecret: clientSecret, Gate: limiter})
	if err != nil {
		b.Fatal(err)
	}
	wk, err := worker.New(chatbot, bulk, dynamostore.New(w.db, w.tracks, w.artists), client, worker.Options{
		Concurrency: 16,
		WaitTime:    time.Millisecond, // a short poll, as RECEIVE_WAIT_TIME=0s: the emulator's long poll waits out a batch that does not fill
		Gate:        limiter,
		Registerer:  prometheus.NewRegistry(),
		Logger:      slog.New(slog.DiscardHandler),
	})
	if err != nil {
		b.Fatal(err)
	}
	// The chatbot reads through a client of its own, counted apart.
	askCalls := &dynamoCalls{}
	asker := producer.NewAsker(producer.New(chatbot, producer.Options{}),
		dynamostore.New(dynamodb.New(w.rawDB.Options(), askCalls.option()), w.tracks, w.artists), producer.AskOptions{})

	runCtx, stopWorker := context.WithCancel(context.Background())
	done := make(chan error, 1)
	start := time.Now()
	go func() { done <- wk.Run(runCtx) }()

	asked := artistIDs(askCount)
	lat := make([]time.Duration, len(asked))
	asking := make([]time.Duration, len(asked))
	var wg sync.WaitGroup
	for i, id := range asked {
		if !ctxsleep.For(runCtx, time.Until(start.Add(first+time.Duration(i)*askEvery))) {
			break
		}
		wg.Go(func() {
			actx, cancel := context.WithTimeout(runCtx, askDeadline)
			defer cancel()
			t0 := time.Now()
			ans, err := asker.Ask(actx, id)
			if err != nil {
				lat[i] = -1
				return
			}
			lat[i] = time.Since(t0)
			asking[i] = ans.FetchedAt.Sub(t0)
		})
	}
	wg.Wait()
	res := askResult{run: time.Since(start), st: fake.Stats(), reads: askCalls.reads.Load(), workerRead: w.dbCalls.reads.Load()}
	stopWorker()
	if err := <-done; err != nil {
		b.Errorf("worker Run: %v", err)
	}
	for i, l := range lat {
		if l < 0 {
			res.unanswered++
			continue
		}
		res.latencies = append(res.latencies, l)
		res.toSpotify = append(res.toSpotify, asking[i])
	}
	slices.Sort(res.latencies)
	slices.Sort(res.toSpotify)
	return res
}
