package bench_test

// BenchmarkProducer: how fast the producer enqueues a catalogue, and how
// much memory it takes, against one SendMessage call at a time.
//
//   - design=producer: producerArtists artists (distinct, valid, generated
//     line by line by an io.Reader, so the input is never held in memory)
//     through producer.New(sqsqueue.New(…)).EnqueueFrom with its defaults
//     (batches of ten, 8 calls in flight), into a fresh queue of the SQS
//     emulator.
//   - design=sequential: sequentialArtists artists, one SendMessage each,
//     one at a time, with the same bodies. It sends fewer artists only to
//     keep `make bench` short (at its rate 100,000 would take minutes); the
//     rates are what is compared.

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/sixpotify/top-tracks/internal/artistid"
	"github.com/sixpotify/top-tracks/internal/message"
	"github.com/sixpotify/top-tracks/internal/queue/sqsqueue"
	"github.com/sixpotify/top-tracks/internal/testenv"
	"github.com/sixpotify/top-tracks/producer"
)

const (
	producerArtists   = 100_000
	sequentialArtists = 3_000
	producerMarket    = "US"
)

const base62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

// idLines is an io.Reader of n lines, the i-th of which is artistLine(seed,
// i): it generates each line when it is read and holds one at a time.
type idLines struct {
	seed uint64
	n, i int
	line [artistid.Len + 1]byte
	rest []byte // what is left of the current line
}

func newIDLines(seed uint64, n int) *idLines { return &idLines{seed: seed, n: n} }

func (r *idLines) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		if len(r.rest) == 0 {
			if r.i == r.n {
				if n == 0 {
					return 0, io.EOF
				}
				break
			}
			artistLine(r.line[:], r.seed, r.i)
			r.rest = r.line[:]
			r.i++
		}
		k := copy(p[n:], r.rest)
		r.rest = r.rest[k:]
		n += k
	}
	return n, nil
}

// artistLine writes the i-th artist ID of seed and a newline into line: 18
// pseudo-random base-62 characters, then i in base 62 on 4 characters, so
// that the IDs of one seed are distinct (for i < 62⁴).
func artistLine(line []byte, seed uint64, i int) {
	state, x := seed^uint64(i)<<20, uint64(0)
	for k := range 18 {
		if k%10 == 0 {
			state++
			x = splitmix(state)
		}
		line[k] = base62[x%62]
		x /= 62
	}
	v := i
	for k := 21; k >= 18; k-- {
		line[k] = base62[v%62]
		v /= 62
	}
	line[artistid.Len] = '\n'
}

func splitmix(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ x>>30) * 0xbf58476d1ce4e5b9
	x = (x ^ x>>27) * 0x94d049bb133111eb
	return x ^ x>>31
}

// sendCounter counts SendMessageBatch calls.
type sendCounter struct {
	*sqs.Client
	calls atomic.Int64
}

func (c *sendCounter) SendMessageBatch(ctx context.Context, in *sqs.SendMessageBatchInput, optFns ...func(*sqs.Options)) (*sqs.SendMessageBatchOutput, error) {
	c.calls.Add(1)
	return c.Client.SendMessageBatch(ctx, in, optFns...)
}

// producerResult is what one design measured.
type producerResult struct {
	artists       int
	elapsed       time.Duration
	artistsPerSec float64
	cpu           time.Duration // this process, per artist
	sqsCPU        time.Duration // the SQS emulator, per artist
	calls         int64
	peakHeap      uint64
	peakRuntime   uint64
	startHeap     uint64 // live before the run (after a GC): the rest of the test binary
	startRuntime  uint64
	sqsRSSBefore  uint64 // the SQS emulator's resident memory, bytes
	sqsRSSAfter   uint64
	queued        int // ApproximateNumberOfMessages after the run
}

var (
	producerMu      sync.Mutex
	producerResults = map[string]producerResult{}
)

// freshQueue creates a queue on the SQS emulator, deleted (with its
// messages) by the returned func.
func freshQueue(tb testing.TB) (*sqs.Client, string, func()) {
	tb.Helper()
	client := testenv.SQSClient(tb)
	out, err := client.CreateQueue(testContext(tb), &sqs.CreateQueueInput{QueueName: aws.String(unique("producer"))})
	if err != nil {
		tb.Fatalf("create queue: %v", err)
	}
	url := aws.ToString(out.QueueUrl)
	var once sync.Once
	del := func() {
		once.Do(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			_, _ = client.DeleteQueue(ctx, &sqs.DeleteQueueInput{QueueUrl: aws.String(url)})
		})
	}
	tb.Cleanup(del)
	return client, url, del
}

func queued(tb testing.TB, client *sqs.Client, url string) int {
	tb.Helper()
	out, err := client.GetQueueAttributes(testContext(tb), &sqs.GetQueueAttributesInput{
		QueueUrl:       aws.String(url),
		AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameApproximateNumberOfMessages},
	})
	if err != nil {
		tb.Fatal(err)
	}
	n, _ := strconv.Atoi(out.Attributes[string(sqstypes.QueueAttributeNameApproximateNumberOfMessages)])
	return n
}

// enqueueWithProducer sends n generated artists through the producer.
func enqueueWithProducer(ctx context.Context, tb testing.TB, client *sqs.Client, url string, n int) int64 {
	counter := &sendCounter{Client: client}
	p := producer.New(sqsqueue.New(counter, url, sqsqueue.Options{}), producer.Options{Market: producerMarket})
	sum, err := p.EnqueueFrom(ctx, newIDLines(0x5eed, n))
	if err != nil {
		tb.Fatalf("producer: %v", err)
	}
	if sum.Enqueued != n || sum.Duplicates != 0 || sum.Err() != nil {
		tb.Fatalf("producer: enqueued %d of %d, %d duplicates: %v", sum.Enqueued, n, sum.Duplicates, sum.Err())
	}
	return counter.calls.Load()
}

// enqueueSequentially sends n generated artists one SendMessage at a time.
func enqueueSequentially(ctx context.Context, tb testing.TB, client *sqs.Client, url string, n int) int64 {
	var line [artistid.Len + 1]byte
	for i := range n {
		artistLine(line[:], 0x5eed, i)
		body, err := message.Encode(message.Message{ArtistID: string(line[:artistid.Len]), Market: producerMarket})
		if err != nil {
			tb.Fatal(err)
		}
		if _, err := client.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: aws.String(url), MessageBody: aws.String(string(body))}); err != nil {
			tb.Fatalf("send message %d: %v", i, err)
		}
	}
	return int64(n)
}

func runProducerDesign(b *testing.B, design string, n int, send func(context.Context, testing.TB, *sqs.Client, string, int) int64) {
	b.StopTimer()
	var res producerResult
	for range b.N {
		client, url, del := freshQueue(b)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		rss0, _ := emulatorRSS()
		heap0, rt0 := memNow()
		mem := startMemSampler()
		sqs0, _ := emulatorCPU()
		cpu0, start := cpuTime(), time.Now()
		b.StartTimer()
		calls := send(ctx, b, client, url, n)
		b.StopTimer()
		elapsed := time.Since(start)
		cpu := cpuTime() - cpu0
		sqs1, _ := emulatorCPU()
		heap, rt := mem.Stop()
		rss1, _ := emulatorRSS()
		cancel()
		res = producerResult{
			artists: n, elapsed: elapsed, artistsPerSec: float64(n) / elapsed.Seconds(),
			cpu: cpu / time.Duration(n), sqsCPU: (sqs1 - sqs0) / time.Duration(n), calls: calls,
			peakHeap: heap, peakRuntime: rt, startHeap: heap0, startRuntime: rt0,
			sqsRSSBefore: rss0, sqsRSSAfter: rss1,
			queued: queued(b, client, url),
		}
		del()
		if res.queued != n {
			b.Fatalf("%s: %d messages on the queue; want %d", design, res.queued, n)
		}
	}
	b.ReportMetric(res.artistsPerSec, "artists/s")
	b.ReportMetric(float64(res.artists), "artists")
	b.ReportMetric(ms(res.cpu)*1000, "cpu-µs/artist")
	b.ReportMetric(ms(res.sqsCPU)*1000, "sqs-emulator-cpu-µs/artist")
	b.ReportMetric(float64(res.calls)/float64(n), "sqs-calls/artist")
	b.ReportMetric(mb(res.peakHeap), "peak-heap-MB")
	b.ReportMetric(mb(res.peakRuntime), "peak-mem-MB")
	b.ReportMetric(mb(res.peakRuntime-min(res.startRuntime, res.peakRuntime)), "mem-growth-MB")
	b.ReportMetric(mb(res.sqsRSSAfter), "sqs-emulator-rss-MB")
	producerMu.Lock()
	producerResults[design] = res
	producerMu.Unlock()
}

// BenchmarkProducer runs the sequential baseline, then the producer, each on
// a fresh queue, and prints the comparison.
func BenchmarkProducer(b *testing.B) {
	// Warm the emulator's JIT up with both call kinds first, unmeasured,
	// so that the design that runs first pays nothing for it.
	client, url, del := freshQueue(b)
	enqueueSequentially(testContext(b), b, client, url, 300)
	enqueueWithProducer(testContext(b), b, client, url, 3000)
	del()
	b.Run("design=sequential", func(b *testing.B) {
		runProducerDesign(b, "sequential", sequentialArtists, enqueueSequentially)
	})
	b.Run("design=producer", func(b *testing.B) {
		runProducerDesign(b, "producer", producerArtists, enqueueWithProducer)
	})
	producerMu.Lock()
	defer producerMu.Unlock()
	printProducer(os.Stdout)
}

func printProducer(out io.Writer) {
	seq, okSeq := producerResults["sequential"]
	p, okP := producerResults["producer"]
	if !okSeq || !okP {
		return
	}
	fmt.Fprintf(out, "\nProducer: distinct valid artist IDs streamed from an io.Reader into a fresh queue of the SQS emulator.\n")
	row := func(name string, r producerResult) {
		fmt.Fprintf(out, "  %-10s %7d artists in %4.1fs: %6.0f artists/s, %.2f SQS calls/artist, CPU %3.0f µs/artist (this process) + %3.0f µs/artist (SQS emulator), peak runtime memory %.1f MB (%.1f MB before; heap %.1f MB, %.1f before), SQS emulator RSS %.0f → %.0f MB\n",
			name, r.artists, r.elapsed.Seconds(), r.artistsPerSec, float64(r.calls)/float64(r.artists),
			ms(r.cpu)*1000, ms(r.sqsCPU)*1000, mb(r.peakRuntime), mb(r.startRuntime), mb(r.peakHeap), mb(r.startHeap),
			mb(r.sqsRSSBefore), mb(r.sqsRSSAfter))
	}
	row("sequential", seq)
	row("producer", p)
	ratio := p.artistsPerSec / seq.artistsPerSec
	fmt.Fprintf(out, "  producer/sequential: %.1f× the rate (bar ≥8× %s). The sequential run sends %d artists, not %d, to keep make bench short: the rates are compared.\n",
		ratio, verdict(ratio >= 8), seq.artists, p.artists)
}

// TestIDLines checks the benchmark's generated input: distinct valid IDs,
// one a line, the same however it is read.
func TestIDLines(t *testing.T) {
	const n = 5000
	all, err := io.ReadAll(newIDLines(1, n))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(string(all), "\n"), "\n")
	seen := map[string]bool{}
	for _, l := range lines {
		if !artistid.Valid(l) || seen[l] {
			t.Fatalf("line %q: invalid or repeated", l)
		}
		seen[l] = true
	}
	if len(seen) != n {
		t.Fatalf("%d lines; want %d", len(seen), n)
	}
	// Read through a 7-byte buffer: the same bytes.
	var small bytes.Buffer
	if _, err := io.CopyBuffer(&small, struct{ io.Reader }{newIDLines(1, n)}, make([]byte, 7)); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(small.Bytes(), all) {
		t.Fatal("reading in small pieces gives other bytes")
	}
}
