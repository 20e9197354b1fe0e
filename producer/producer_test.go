package producer_test

import (
	"bufio"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/iotest"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/sqs"
	gocmp "github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/sixpotify/top-tracks/internal/artistid"
	"github.com/sixpotify/top-tracks/internal/message"
	"github.com/sixpotify/top-tracks/internal/queue"
	"github.com/sixpotify/top-tracks/internal/queue/sqlitequeue"
	"github.com/sixpotify/top-tracks/internal/queue/sqsqueue"
	"github.com/sixpotify/top-tracks/internal/testenv"
	"github.com/sixpotify/top-tracks/producer"
)

func TestMain(m *testing.M) { testenv.MainNoLeaks(m) }

// Artists used throughout: real Spotify IDs.
const (
	pitbull = "0TnOYISbd1XYRBk9myaseg"
	taylor  = "06HL4z0CvFAxyc27GXpf02"
	drake   = "3TVXtAsR1Inumwj472S9r4"
	weeknd  = "1Xyo4u8uXC1ZmMpatF05PJ"
)

// testQueue is what the tests need of a queue backend: the producer's side
// and the worker's.
type testQueue interface {
	producer.Sender
	Receive(ctx context.Context, max int, wait time.Duration) ([]queue.Delivery, error)
}

type backendCase struct {
	name string
	open func(t *testing.T) testQueue
}

// backends are the real queues the producer is tested against.
var backends = []backendCase{
	{"sqlite", func(t *testing.T) testQueue { return openSQLite(t) }},
	{"sqs", func(t *testing.T) testQueue { return openSQS(t) }},
}

func openSQLite(t *testing.T) *sqlitequeue.Queue {
	t.Helper()
	q, err := sqlitequeue.Open(t.Context(), filepath.Join(t.TempDir(), "queue.db"), sqlitequeue.DefaultName, sqlitequeue.Options{})
	if err != nil {
		t.Fatalf("open the embedded queue: %v", err)
	}
	t.Cleanup(func() { q.Close() })
	return q
}

var (
	queueSeq   atomic.Int64
	unsafeName = regexp.MustCompile(`[^A-Za-z0-9_-]+`)
)

// sqsClient returns a client of the SQS emulator whose connections are
// closed when t ends.
func sqsClient(t *testing.T) *sqs.Client {
	t.Helper()
	return testenv.SQSClient(t, func(o *sqs.Options) { o.HTTPClient = testenv.HTTPClient(t) })
}

// createSQSQueue creates a queue with a unique name on the emulator,
// deleted when t ends, and returns its URL.
func createSQSQueue(t *testing.T, client *sqs.Client) string {
	t.Helper()
	name := fmt.Sprintf("p%d-%s", queueSeq.Add(1), unsafeName.ReplaceAllString(t.Name(), "-"))
	name = name[:min(len(name), 80)]
	return testenv.CreateQueue(t.Context(), t, client, name, nil)
}

func openSQS(t *testing.T) *sqsqueue.Queue {
	t.Helper()
	client := sqsClient(t)
	return sqsqueue.New(client, createSQSQueue(t, client), sqsqueue.Options{})
}

// receiveAll receives until want messages came (or 20 seconds passed), then
// once more to catch any extra, and returns the decoded bodies sorted by
// artist and market.
func receiveAll(t *testing.T, q testQueue, want int) []producer.Message {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	var got []producer.Message
	receive := func(wait time.Duration) int {
		msgs, err := q.Receive(ctx, queue.MaxBatch, wait)
		if err != nil {
			t.Fatalf("receive after %d of %d messages: %v", len(got), want, err)
		}
		for _, m := range msgs {
			d, err := message.Decode(m.Body)
			if err != nil {
				t.Errorf("received body %s: %v", m.Body, err)
				continue
			}
			got = append(got, d)
		}
		return len(msgs)
	}
	// A short poll first: the emulator's long poll waits out its time
	// unless the batch fills.
	for wait := time.Duration(0); len(got) < want; {
		if receive(wait) == 0 {
			wait = time.Second
		}
	}
	for receive(0) > 0 {
	}
	sortMessages(got)
	return got
}

func sortMessages(msgs []producer.Message) {
	slices.SortFunc(msgs, func(a, b producer.Message) int {
		return cmp.Or(strings.Compare(a.ArtistID, b.ArtistID), strings.Compare(a.Market, b.Market))
	})
}

// ignoreErrs compares rejections and failures by everything but their error,
// which the tests check on their own.
var ignoreErrs = cmpopts.IgnoreFields(producer.Rejection{}, "Err")

func TestEnqueue(t *testing.T) {
	tests := []struct {
		name    string
		opts    producer.Options
		artists []string
		want    producer.Summary
		wantMsg []producer.Message
	}{
		{
			name: "every form of an artist",
			artists: []string{
				pitbull,
				"spotify:artist:" + taylor,
				"https://open.spotify.com/artist/" + drake + "?si=4f1c2e9b8a7d4c3e",
				"https://open.spotify.com/intl-de/artist/" + weeknd,
			},
			want:    producer.Summary{Enqueued: 4},
			wantMsg: []producer.Message{{ArtistID: taylor}, {ArtistID: pitbull}, {ArtistID: weeknd}, {ArtistID: drake}},
		},
		{
			name: "invalid inputs are rejected with their position and never sent",
			artists: []string{
				pitbull,
				"0TnOYISbd1XYRBk9myase",               // 21 characters
				"spotify:track:" + taylor,             // a track, not an artist
				"https://example.com/artist/" + drake, // not open.spotify.com
				"0TnOYISbd1XYRBk9myase!",
				taylor,
			},
			want: producer.Summary{Enqueued: 2, Rejected: []producer.Rejection{
				{Line: 2, Input: "0TnOYISbd1XYRBk9myase"},
				{Line: 3, Input: "spotify:track:" + taylor},
				{Line: 4, Input: "https://example.com/artist/" + drake},
				{Line: 5, Input: "0TnOYISbd1XYRBk9myase!"},
			}},
			wantMsg: []producer.Message{{ArtistID: taylor}, {ArtistID: pitbull}},
		},
		{
			name: "duplicates are dropped, in any form",
			artists: []string{
				pitbull,
				pitbull,
				"spotify:artist:" + pitbull,
				"https://open.spotify.com/artist/" + pitbull + "?si=x",
				" " + pitbull + " ",
				taylor,
			},
			want:    producer.Summary{Enqueued: 2, Duplicates: 4},
			wantMsg: []producer.Message{{ArtistID: taylor}, {ArtistID: pitbull}},
		},
		{
			name:    "force and market go into every body",
			opts:    producer.Options{Force: true, Market: "SE"},
			artists: []string{pitbull, taylor},
			want:    producer.Summary{Enqueued: 2},
			wantMsg: []producer.Message{
				{ArtistID: taylor, Market: "SE", Force: true},
				{ArtistID: pitbull, Market: "SE", Force: true},
			},
		},
		{
			name:    "nothing at all",
			artists: nil,
			want:    producer.Summary{},
		},
	}
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					q := b.open(t)
					p := producer.New(q, tt.opts)
					got, err := p.Enqueue(t.Context(), tt.artists...)
					if err != nil {
						t.Fatalf("Enqueue: %v", err)
					}
					if diff := gocmp.Diff(got, tt.want, ignoreErrs); diff != "" {
						t.Errorf("Summary (-got +want):\n%s", diff)
					}
					for _, r := range got.Rejected {
						if !errors.Is(r.Err, artistid.ErrInvalid) {
							t.Errorf("rejection of %q: got %v, want an error wrapping artistid.ErrInvalid", r.Input, r.Err)
						}
					}
					if diff := gocmp.Diff(receiveAll(t, q, len(tt.wantMsg)), tt.wantMsg, cmpopts.EquateEmpty()); diff != "" {
						t.Errorf("received messages (-got +want):\n%s", diff)
					}
				})
			}
		})
	}
}

func TestEnqueueMessages(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			q := b.open(t)
			// Options.Market and Options.Force do not apply to messages.
			p := producer.New(q, producer.Options{Market: "DE", Force: true})
			in := []producer.Message{
				{ArtistID: pitbull, Market: "US"},
				{ArtistID: pitbull, Market: "SE", Force: true},
				{ArtistID: pitbull, Market: "US", Force: true}, // same artist and market: dropped
				{ArtistID: taylor},
				{ArtistID: "not-an-artist", Market: "US"},
				{ArtistID: drake, Market: "USA"},
				{ArtistID: weeknd, Market: "GB"},
			}
			got, err := p.EnqueueMessages(t.Context(), slices.Values(in))
			if err != nil {
				t.Fatalf("EnqueueMessages: %v", err)
			}
			want := producer.Summary{Enqueued: 4, Duplicates: 1, Rejected: []producer.Rejection{
				{Line: 5, Input: "not-an-artist"},
				{Line: 6, Input: drake},
			}}
			if diff := gocmp.Diff(got, want, ignoreErrs); diff != "" {
				t.Errorf("Summary (-got +want):\n%s", diff)
			}
			if len(got.Rejected) == 2 && !strings.Contains(got.Rejected[1].Err.Error(), "USA") {
				t.Errorf("rejection of a bad market: got %q, want it to name the market", got.Rejected[1].Err)
			}
			wantMsg := []producer.Message{
				{ArtistID: taylor},
				{ArtistID: pitbull, Market: "SE", Force: true},
				{ArtistID: pitbull, Market: "US"},
				{ArtistID: weeknd, Market: "GB"},
			}
			if diff := gocmp.Diff(receiveAll(t, q, len(wantMsg)), wantMsg); diff != "" {
				t.Errorf("received messages (-got +want):\n%s", diff)
			}
		})
	}
}

// makeArtists returns n distinct valid artist IDs.
func makeArtists(n int) []string {
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("artist%016d", i)
	}
	return ids
}

// countingSender passes every call to q and records the size of each.
type countingSender struct {
	q     producer.Sender
	mu    sync.Mutex
	sizes []int
}

func (c *countingSender) SendBatch(ctx context.Context, entries []producer.Entry) ([]error, error) {
	c.mu.Lock()
	c.sizes = append(c.sizes, len(entries))
	c.mu.Unlock()
	return c.q.SendBatch(ctx, entries)
}

func TestEnqueueBatchesOfTen(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			q := b.open(t)
			c := &countingSender{q: q}
			artists := makeArtists(25)
			got, err := producer.New(c, producer.Options{}).Enqueue(t.Context(), artists...)
			if err != nil {
				t.Fatalf("Enqueue: %v", err)
			}
			if diff := gocmp.Diff(got, producer.Summary{Enqueued: 25}); diff != "" {
				t.Errorf("Summary (-got +want):\n%s", diff)
			}
			slices.Sort(c.sizes)
			if diff := gocmp.Diff(c.sizes, []int{5, 10, 10}); diff != "" {
				t.Errorf("sizes of the batch calls (-got +want):\n%s", diff)
			}
			var want []producer.Message
			for _, id := range artists {
				want = append(want, producer.Message{ArtistID: id})
			}
			if diff := gocmp.Diff(receiveAll(t, q, len(want)), want); diff != "" {
				t.Errorf("received messages (-got +want):\n%s", diff)
			}
		})
	}
}

func TestEnqueueFrom(t *testing.T) {
	input := strings.Join([]string{
		"# artists the chatbot was asked about", // 1
		pitbull,                                 // 2
		"",                                      // 3
		"   spotify:artist:" + taylor + "   ",   // 4
		"# " + weeknd + " is commented out",     // 5
		"not-an-artist",                         // 6
		"https://open.spotify.com/artist/" + drake + "?si=abc\r", // 7, CRLF
		"   ",   // 8
		pitbull, // 9: a duplicate
	}, "\n")
	q := openSQLite(t)
	got, err := producer.New(q, producer.Options{}).EnqueueFrom(t.Context(), strings.NewReader(input))
	if err != nil {
		t.Fatalf("EnqueueFrom: %v", err)
	}
	want := producer.Summary{Enqueued: 3, Duplicates: 1, Rejected: []producer.Rejection{{Line: 6, Input: "not-an-artist"}}}
	if diff := gocmp.Diff(got, want, ignoreErrs); diff != "" {
		t.Errorf("Summary (-got +want):\n%s", diff)
	}
	wantMsg := []producer.Message{{ArtistID: taylor}, {ArtistID: pitbull}, {ArtistID: drake}}
	if diff := gocmp.Diff(receiveAll(t, q, len(wantMsg)), wantMsg); diff != "" {
		t.Errorf("received messages (-got +want):\n%s", diff)
	}
}

func TestEnqueueFromReadError(t *testing.T) {
	errDisk := errors.New("disk on fire")
	tests := []struct {
		name    string
		r       io.Reader
		wantErr error
	}{
		{"reader fails", io.MultiReader(strings.NewReader(pitbull+"\n"), iotest.ErrReader(errDisk)), errDisk},
		{"line too long", strings.NewReader(pitbull + "\n" + strings.Repeat("x", 2<<20) + "\n" + taylor + "\n"), bufio.ErrTooLong},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q := openSQLite(t)
			got, err := producer.New(q, producer.Options{}).EnqueueFrom(t.Context(), tt.r)
			if !errors.Is(err, tt.wantErr) {
				t.Errorf("EnqueueFrom: got error %v, want %v", err, tt.wantErr)
			}
			// What was read before the error is still sent, and counted.
			if diff := gocmp.Diff(got, producer.Summary{Enqueued: 1}); diff != "" {
				t.Errorf("Summary (-got +want):\n%s", diff)
			}
			want := []producer.Message{{ArtistID: pitbull}}
			if diff := gocmp.Diff(receiveAll(t, q, len(want)), want); diff != "" {
				t.Errorf("received messages (-got +want):\n%s", diff)
			}
		})
	}
}

// faultySender wraps a real queue: it fails whole calls or single entries as
// its hooks say, and passes the rest on.
type faultySender struct {
	q producer.Sender
	// failCall, when it returns an error, fails call number n (1-based) as a
	// whole; nothing of it reaches q.
	failCall func(n int) error
	// failEntry, when it returns an error, fails the entry for the artist on
	// its attempt number n (1-based); it does not reach q.
	failEntry func(artist string, n int) error

	mu       sync.Mutex
	calls    int
	attempts map[string]int
}

func (f *faultySender) SendBatch(ctx context.Context, entries []producer.Entry) ([]error, error) {
	f.mu.Lock()
	f.calls++
	if f.failCall != nil {
		if err := f.failCall(f.calls); err != nil {
			f.mu.Unlock()
			return nil, err
		}
	}
	if f.attempts == nil {
		f.attempts = map[string]int{}
	}
	errs := make([]error, len(entries))
	var pass []producer.Entry
	var at []int
	for i, e := range entries {
		m, err := message.Decode(e.Body)
		if err != nil {
			errs[i] = err
			continue
		}
		f.attempts[m.ArtistID]++
		if f.failEntry != nil {
			if err := f.failEntry(m.ArtistID, f.attempts[m.ArtistID]); err != nil {
				errs[i] = err
				continue
			}
		}
		pass = append(pass, e)
		at = append(at, i)
	}
	f.mu.Unlock()
	if len(pass) == 0 {
		return errs, nil
	}
	passErrs, err := f.q.SendBatch(ctx, pass)
	if err != nil {
		return nil, err
	}
	for k, i := range at {
		errs[i] = passErrs[k]
	}
	return errs, nil
}

func (f *faultySender) stats() (calls int, attempts map[string]int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls, maps.Clone(f.attempts)
}

var (
	errTransient   = &sqsqueue.EntryError{Code: "InternalError", Message: "try again"}
	errSenderFault = &sqsqueue.EntryError{Code: "InvalidMessageContents", Message: "bad body", SenderFault: true}
	errRejected    = fmt.Errorf("sqlitequeue: send entry 0: %w: the message body is empty", queue.ErrRejected)
	errCall        = errors.New("connection reset by peer")
)

func TestEnqueueFaults(t *testing.T) {
	artists := []string{pitbull, taylor, drake, weeknd}
	tests := []struct {
		name         string
		sender       *faultySender
		want         producer.Summary
		wantErrs     map[string]error // artist → what its failure wraps
		wantSent     []string
		wantCalls    int
		wantAttempts map[string]int
	}{
		{
			name: "a transient entry failure is retried until sent",
			sender: &faultySender{failEntry: func(a string, n int) error {
				if a == taylor && n <= 2 || a == drake && n == 1 {
					return errTransient
				}
				return nil
			}},
			want:         producer.Summary{Enqueued: 4},
			wantSent:     artists,
			wantCalls:    3,
			wantAttempts: map[string]int{pitbull: 1, taylor: 3, drake: 2, weeknd: 1},
		},
		{
			name: "a sender fault is not retried and is reported",
			sender: &faultySender{failEntry: func(a string, n int) error {
				if a == drake {
					return errSenderFault
				}
				return nil
			}},
			want:         producer.Summary{Enqueued: 3, Failed: []producer.Failure{{ArtistID: drake}}},
			wantErrs:     map[string]error{drake: errSenderFault},
			wantSent:     []string{pitbull, taylor, weeknd},
			wantCalls:    1,
			wantAttempts: map[string]int{pitbull: 1, taylor: 1, drake: 1, weeknd: 1},
		},
		{
			name: "a refusal of the embedded queue is not retried either",
			sender: &faultySender{failEntry: func(a string, n int) error {
				if a == drake {
					return errRejected
				}
				return nil
			}},
			want:         producer.Summary{Enqueued: 3, Failed: []producer.Failure{{ArtistID: drake}}},
			wantErrs:     map[string]error{drake: queue.ErrRejected},
			wantSent:     []string{pitbull, taylor, weeknd},
			wantCalls:    1,
			wantAttempts: map[string]int{pitbull: 1, taylor: 1, drake: 1, weeknd: 1},
		},
		{
			name: "a sender fault and a transient failure in one batch",
			sender: &faultySender{failEntry: func(a string, n int) error {
				switch {
				case a == drake:
					return errSenderFault
				case a == pitbull && n == 1:
					return errTransient
				}
				return nil
			}},
			want:         producer.Summary{Enqueued: 3, Failed: []producer.Failure{{ArtistID: drake}}},
			wantErrs:     map[string]error{drake: errSenderFault},
			wantSent:     []string{pitbull, taylor, weeknd},
			wantCalls:    2,
			wantAttempts: map[string]int{pitbull: 2, taylor: 1, drake: 1, weeknd: 1},
		},
		{
			name: "a transient failure that lasts is reported after the retries",
			sender: &faultySender{failEntry: func(a string, n int) error {
				if a == weeknd {
					return errTransient
				}
				return nil
			}},
			want:         producer.Summary{Enqueued: 3, Failed: []producer.Failure{{ArtistID: weeknd}}},
			wantErrs:     map[string]error{weeknd: errTransient},
			wantSent:     []string{pitbull, taylor, drake},
			wantCalls:    4, // MaxRetries 3
			wantAttempts: map[string]int{pitbull: 1, taylor: 1, drake: 1, weeknd: 4},
		},
		{
			name: "a failed call is retried and recovers",
			sender: &faultySender{failCall: func(n int) error {
				if n <= 2 {
					return errCall
				}
				return nil
			}},
			want:         producer.Summary{Enqueued: 4},
			wantSent:     artists,
			wantCalls:    3,
			wantAttempts: map[string]int{pitbull: 1, taylor: 1, drake: 1, weeknd: 1},
		},
		{
			name:   "a call that always fails fails every artist",
			sender: &faultySender{failCall: func(int) error { return errCall }},
			want: producer.Summary{Failed: []producer.Failure{
				{ArtistID: pitbull}, {ArtistID: taylor}, {ArtistID: drake}, {ArtistID: weeknd},
			}},
			wantErrs:     map[string]error{pitbull: errCall, taylor: errCall, drake: errCall, weeknd: errCall},
			wantCalls:    4,
			wantAttempts: map[string]int{},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q := openSQLite(t)
			tt.sender.q = q
			p := producer.New(tt.sender, producer.Options{MaxRetries: 3, RetryBase: time.Millisecond})
			got, err := p.Enqueue(t.Context(), artists...)
			if err != nil {
				t.Fatalf("Enqueue: %v", err)
			}
			if diff := gocmp.Diff(got, tt.want, cmpopts.IgnoreFields(producer.Failure{}, "Err"), cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("Summary (-got +want):\n%s", diff)
			}
			for _, f := range got.Failed {
				if want := tt.wantErrs[f.ArtistID]; !errors.Is(f.Err, want) {
					t.Errorf("failure of %s: got %v, want %v", f.ArtistID, f.Err, want)
				}
			}
			// Summary.Err names every failed artist, with its cause.
			sumErr := got.Err()
			if (sumErr != nil) != (len(tt.wantErrs) > 0) {
				t.Errorf("Summary.Err() = %v, want an error: %t", sumErr, len(tt.wantErrs) > 0)
			}
			for a, want := range tt.wantErrs {
				if !strings.Contains(fmt.Sprint(sumErr), a) {
					t.Errorf("Summary.Err() = %v, want it to name %s", sumErr, a)
				}
				if !errors.Is(sumErr, want) {
					t.Errorf("Summary.Err() = %v, want it to wrap %v", sumErr, want)
				}
			}
			calls, attempts := tt.sender.stats()
			if calls != tt.wantCalls {
				t.Errorf("calls to SendBatch: got %d, want %d", calls, tt.wantCalls)
			}
			if diff := gocmp.Diff(attempts, tt.wantAttempts, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("attempts per artist (-got +want):\n%s", diff)
			}
			// Every artist sent is in the queue exactly once.
			var want []producer.Message
			for _, a := range tt.wantSent {
				want = append(want, producer.Message{ArtistID: a})
			}
			sortMessages(want)
			if diff := gocmp.Diff(receiveAll(t, q, len(want)), want, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("received messages (-got +want):\n%s", diff)
			}
		})
	}
}

func TestEnqueueCancelled(t *testing.T) {
	artists := makeArtists(25)
	tests := []struct {
		name string
		// cancelAt is the call that cancels the context (0: cancelled before
		// Enqueue starts).
		cancelAt int
		// sendCancelling says whether the cancelling call still reaches the
		// queue (and succeeds), or fails with the context's error.
		sendCancelling bool
		wantEnqueued   int
	}{
		{name: "before the start", cancelAt: 0, wantEnqueued: 0},
		{name: "during the second call, which fails", cancelAt: 2, wantEnqueued: 10},
		{name: "during the second call, which succeeds", cancelAt: 2, sendCancelling: true, wantEnqueued: 20},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q := openSQLite(t)
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			if tt.cancelAt == 0 {
				cancel()
			}
			var calls atomic.Int32
			s := senderFunc(func(ctx context.Context, entries []producer.Entry) ([]error, error) {
				n := int(calls.Add(1))
				switch {
				case n < tt.cancelAt:
				case n == tt.cancelAt && tt.sendCancelling:
					errs, err := q.SendBatch(ctx, entries)
					cancel()
					return errs, err
				default:
					cancel()
					return nil, ctx.Err()
				}
				return q.SendBatch(ctx, entries)
			})
			// One call at a time, so that the calls come in order.
			p := producer.New(s, producer.Options{Concurrency: 1, RetryBase: time.Millisecond})
			got, err := p.Enqueue(ctx, artists...)
			if !errors.Is(err, context.Canceled) {
				t.Errorf("Enqueue: got error %v, want context.Canceled", err)
			}
			if got.Enqueued != tt.wantEnqueued {
				t.Errorf("Summary.Enqueued: got %d, want %d", got.Enqueued, tt.wantEnqueued)
			}
			visible, inflight, dead, err := q.Len(t.Context())
			if err != nil {
				t.Fatalf("Len: %v", err)
			}
			if diff := gocmp.Diff([]int{visible, inflight, dead}, []int{got.Enqueued, 0, 0}); diff != "" {
				t.Errorf("queue length [visible inflight dead] (-got +want), want what the summary counts:\n%s", diff)
			}
			// An artist reported failed was not sent.
			sent := map[string]bool{}
			for _, m := range receiveAll(t, q, visible) {
				sent[m.ArtistID] = true
			}
			for _, f := range got.Failed {
				if sent[f.ArtistID] {
					t.Errorf("%s is reported failed (%v) but is in the queue", f.ArtistID, f.Err)
				}
			}
		})
	}
}

type senderFunc func(ctx context.Context, entries []producer.Entry) ([]error, error)

func (f senderFunc) SendBatch(ctx context.Context, entries []producer.Entry) ([]error, error) {
	return f(ctx, entries)
}

func TestSummaryErr(t *testing.T) {
	long := strings.Repeat("x", 200)
	tests := []struct {
		name      string
		sum       producer.Summary
		wantLines []string // substrings, one per line; none: want nil
	}{
		{name: "all enqueued", sum: producer.Summary{Enqueued: 3, Duplicates: 2}},
		{
			name: "rejected and failed",
			sum: producer.Summary{
				Enqueued: 1,
				Rejected: []producer.Rejection{
					{Line: 2, Input: "bogus", Err: artistid.ErrInvalid},
					{Line: 7, Input: long, Err: artistid.ErrInvalid},
				},
				Failed: []producer.Failure{{ArtistID: taylor, Err: errSenderFault}},
			},
			wantLines: []string{
				`rejected "bogus" (input 2)`,
				`rejected "` + strings.Repeat("x", 80) + `…" (input 7)`,
				"failed " + taylor + ": sqs entry failed: InvalidMessageContents",
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.sum.Err()
			if len(tt.wantLines) == 0 {
				if err != nil {
					t.Errorf("Err() = %v, want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatal("Err() = nil, want an error")
			}
			lines := strings.Split(err.Error(), "\n")
			if len(lines) != len(tt.wantLines) {
				t.Fatalf("Err() has %d lines, want %d:\n%v", len(lines), len(tt.wantLines), err)
			}
			for i, want := range tt.wantLines {
				if !strings.Contains(lines[i], want) {
					t.Errorf("line %d of Err(): got %q, want it to contain %q", i+1, lines[i], want)
				}
			}
			if !errors.Is(err, artistid.ErrInvalid) || !errors.Is(err, errSenderFault) {
				t.Errorf("Err() = %v, want it to wrap each cause", err)
			}
		})
	}
}

// TestOpenSQS opens the producer on an SQS queue URL, with the AWS SDK's
// settings read from the environment as in production.
func TestOpenSQS(t *testing.T) {
	client := sqsClient(t)
	url := createSQSQueue(t, client)
	testenv.SetAWSEnv(t, testenv.SQS)
	p, err := producer.Open(t.Context(), url, producer.Options{Market: "GB"})
	if err != nil {
		t.Fatalf("Open(%q): %v", url, err)
	}
	defer p.Close()
	got, err := p.Enqueue(t.Context(), pitbull, "spotify:artist:"+taylor)
	if err != nil {
		t.Fatalf("Enqueue: %v", err)
	}
	if diff := gocmp.Diff(got, producer.Summary{Enqueued: 2}); diff != "" {
		t.Errorf("Summary (-got +want):\n%s", diff)
	}
	want := []producer.Message{{ArtistID: taylor, Market: "GB"}, {ArtistID: pitbull, Market: "GB"}}
	q := sqsqueue.New(client, url, sqsqueue.Options{})
	if diff := gocmp.Diff(receiveAll(t, q, len(want)), want); diff != "" {
		t.Errorf("received messages (-got +want):\n%s", diff)
	}
}

func TestOpenBadURL(t *testing.T) {
	for _, u := range []string{"", "ftp://x", "sqlite:", "sqlite::memory:", "sqlite:q.db?queue=no/slash"} {
		t.Run(u, func(t *testing.T) {
			p, err := producer.Open(t.Context(), u, producer.Options{})
			if err == nil {
				p.Close()
				t.Fatalf("Open(%q): got no error, want one", u)
			}
		})
	}
}
