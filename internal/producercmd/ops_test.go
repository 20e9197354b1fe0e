package producercmd_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/sixpotify/top-tracks/internal/fakespotify"
	"github.com/sixpotify/top-tracks/internal/fakespotify/fakespotifytest"
	"github.com/sixpotify/top-tracks/internal/gate"
	"github.com/sixpotify/top-tracks/internal/producercmd"
	"github.com/sixpotify/top-tracks/internal/queue"
	"github.com/sixpotify/top-tracks/internal/queue/sqlitequeue"
	"github.com/sixpotify/top-tracks/internal/queue/sqsqueue"
	"github.com/sixpotify/top-tracks/internal/spotify"
	"github.com/sixpotify/top-tracks/internal/store"
	"github.com/sixpotify/top-tracks/internal/store/dynamostore"
	"github.com/sixpotify/top-tracks/internal/store/storetest"
	"github.com/sixpotify/top-tracks/internal/testenv"
	"github.com/sixpotify/top-tracks/internal/testutil"
	"github.com/sixpotify/top-tracks/worker"
)

// background runs the command until the returned stop is called; stop
// cancels it and returns its exit code.
func background(t *testing.T, env map[string]string, stdout, stderr *testutil.Buffer, args ...string) (stop func() int) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	getenv := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	go func() { done <- producercmd.Run(ctx, args, getenv, strings.NewReader(""), stdout, stderr) }()
	stopped := false
	stop = func() int {
		stopped = true
		cancel()
		select {
		case code := <-done:
			return code
		case <-time.After(30 * time.Second):
			t.Fatalf("producer %s did not end within 30s of its cancel", strings.Join(args, " "))
			return -1
		}
	}
	t.Cleanup(func() {
		if !stopped {
			stop()
		}
	})
	return stop
}

// refusing answers Spotify's 400 for the artists in bad (the message's own
// fault: poison) and asks the stand-in for the others.
type refusing struct {
	worker.Fetcher
	bad map[string]bool
}

func (r refusing) TopTracks(ctx context.Context, id, market string) ([]worker.Track, error) {
	if r.bad[id] {
		return nil, fmt.Errorf("top tracks of %s: %w (HTTP 400): invalid request", id, spotify.ErrBadRequest)
	}
	return r.Fetcher.TopTracks(ctx, id, market)
}

// opsWorker runs a real worker on q and st, with the stand-in answering
// after latency and refusing the artists in bad, until the returned stop
// (or the test's end).
func opsWorker(t *testing.T, q worker.Queue, st worker.Store, bad []string, latency time.Duration, concurrency int) (stop func()) {
	t.Helper()
	g := gate.New(gate.Options{})
	_, client := fakespotifytest.Start(t, fakespotify.Config{Latency: latency}, spotify.Config{Gate: g})
	f := refusing{Fetcher: client, bad: map[string]bool{}}
	for _, id := range bad {
		f.bad[id] = true
	}
	wk, err := worker.New(q, nil, st, f, worker.Options{WaitTime: 200 * time.Millisecond, Gate: g, Concurrency: concurrency})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- wk.Run(ctx) }()
	once := sync.OnceFunc(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("worker Run: %v", err)
		}
	})
	t.Cleanup(once)
	return once
}

// artistIDs returns n artist IDs drawn from seed.
func artistIDs(n int, seed string) []string {
	ids := make([]string, n)
	for i := range ids {
		ids[i] = storetest.ID(fmt.Sprintf("%s-%d", seed, i))
	}
	return ids
}

// reports parses the JSON lines of status.
type statusLine struct {
	Lanes []struct {
		Lane     string
		Messages *queue.Counts
		DLQ      *queue.Counts
	}
	Store struct {
		Artists     *int
		Approximate bool
		ByStatus    map[string]int `json:"by_status"`
	}
	Backlog        int
	DrainPerSecond *float64 `json:"drain_per_second"`
	ETASeconds     *float64 `json:"eta_seconds"`
}

func statusLines(t *testing.T, out string) []statusLine {
	t.Helper()
	var got []statusLine
	for _, l := range lines(out) {
		var s statusLine
		if err := json.Unmarshal([]byte(l), &s); err != nil {
			t.Fatalf("status line %q: %v", l, err)
		}
		got = append(got, s)
	}
	return got
}

// awsEnv points the SDK of the commands at the emulators.
func awsEnv(t *testing.T) { testenv.SetAWSEnv(t, testenv.DynamoDB) }

// world is a lane and a store the commands and a worker share.
type world struct {
	env map[string]string
	q   interface {
		queue.Queue
		queue.DeadLetterer
	}
	st     worker.Store
	exact  bool            // the embedded backends
	sqs    *sqs.Client     // the emulators
	lane   string          // its URL
	rawDLQ func() []string // the bodies in the DLQ, read without the code under test
	rawQ   func() []string // the bodies in the lane
	send   func(bodies ...string)
}

func embeddedWorld(t *testing.T) *world {
	env, path, st := embedded(t)
	q, err := sqlitequeue.Open(t.Context(), path, sqlitequeue.DefaultName, sqlitequeue.Options{VisibilityTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { q.Close() })
	w := &world{env: env, q: q, st: st, exact: true, lane: env["QUEUE_URL"]}
	w.rawDLQ = func() []string { return sqliteBodies(t, path, "queue_dead_letters") }
	w.rawQ = func() []string { return sqliteBodies(t, path, "queue_messages") }
	w.send = func(bodies ...string) { sendBodies(t, q, bodies) }
	return w
}

// sqliteBodies reads the bodies of a queue table straight from the file.
func sqliteBodies(t *testing.T, path, table string) []string {
	t.Helper()
	q, err := sqlitequeue.Open(t.Context(), path, "probe", sqlitequeue.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	var got []string
	var msgs []queue.Delivery
	if table == "queue_dead_letters" {
		o, err := sqlitequeue.Open(t.Context(), path, sqlitequeue.DefaultName, sqlitequeue.Options{MaxReceiveCount: 1 << 30})
		if err != nil {
			t.Fatal(err)
		}
		defer o.Close()
		msgs, err = o.DeadLetters(t.Context())
		if err != nil {
			t.Fatal(err)
		}
	} else {
		o, err := sqlitequeue.Open(t.Context(), path, sqlitequeue.DefaultName, sqlitequeue.Options{VisibilityTimeout: time.Minute, MaxReceiveCount: -1})
		if err != nil {
			t.Fatal(err)
		}
		defer o.Close()
		for {
			batch, err := o.Receive(t.Context(), 10, 0)
			if err != nil {
				t.Fatal(err)
			}
			if len(batch) == 0 {
				break
			}
			msgs = append(msgs, batch...)
		}
	}
	for _, m := range msgs {
		got = append(got, string(m.Body))
	}
	slices.Sort(got)
	return got
}

func sendBodies(t *testing.T, q queue.Sender, bodies []string) {
	t.Helper()
	for len(bodies) > 0 {
		n := min(len(bodies), queue.MaxBatch)
		entries := make([]queue.Entry, n)
		for i, b := range bodies[:n] {
			entries[i] = queue.Entry{Body: []byte(b)}
		}
		errs, err := q.SendBatch(testenv.Context(t), entries)
		if err := errors.Join(append(errs, err)...); err != nil {
			t.Fatal(err)
		}
		bodies = bodies[n:]
	}
}

// emulatorWorld is a queue with a dead-letter queue (maxReceiveCount
// receives) on the SQS emulator and a store on dynalite. It sets the
// process's AWS variables: its test may not run in parallel.
func emulatorWorld(t *testing.T, maxReceiveCount int) *world {
	awsEnv(t)
	ctx := t.Context()
	sq := testenv.SQSClient(t)
	suffix := time.Now().UnixNano()
	attrs := map[string]string{"VisibilityTimeout": "2"}
	dlqURL := ""
	if maxReceiveCount > 0 {
		var policy string
		dlqURL, policy = testenv.CreateDeadLetterQueue(ctx, t, sq, fmt.Sprintf("ops-dlq-%d", suffix), fmt.Sprint(maxReceiveCount))
		attrs["RedrivePolicy"] = policy
	}
	url := testenv.CreateQueue(ctx, t, sq, fmt.Sprintf("ops-%d", suffix), attrs)
	db := testenv.DynamoDBClient(t)
	tracks, artists := fmt.Sprintf("ops_tracks_%d", suffix), fmt.Sprintf("ops_artists_%d", suffix)
	st := dynamostore.New(db, tracks, artists)
	if err := st.CreateTables(ctx); err != nil {
		t.Fatal(err)
	}
	q := sqsqueue.New(sq, url, sqsqueue.Options{})
	w := &world{
		env: map[string]string{"QUEUE_URL": url, "STORE_URL": "dynamodb:" + tracks, "ARTISTS_TABLE": artists},
		q:   q, st: st, sqs: sq, lane: url,
	}
	w.rawDLQ = func() []string { return drain(t, sq, dlqURL) }
	w.rawQ = func() []string { return drain(t, sq, url) }
	w.send = func(bodies ...string) { sendBodies(t, q, bodies) }
	return w
}

// drain receives and deletes every message of an SQS queue, returning the
// bodies sorted.
func drain(t *testing.T, sq *sqs.Client, url string) []string {
	t.Helper()
	var got []string
	for {
		out, err := sq.ReceiveMessage(testenv.Context(t), &sqs.ReceiveMessageInput{QueueUrl: aws.String(url), MaxNumberOfMessages: 10, WaitTimeSeconds: 1, VisibilityTimeout: 60})
		if err != nil {
			t.Fatal(err)
		}
		if len(out.Messages) == 0 {
			break
		}
		for _, m := range out.Messages {
			got = append(got, aws.ToString(m.Body))
			if _, err := sq.DeleteMessage(testenv.Context(t), &sqs.DeleteMessageInput{QueueUrl: aws.String(url), ReceiptHandle: m.ReceiptHandle}); err != nil {
				t.Fatal(err)
			}
		}
	}
	slices.Sort(got)
	return got
}

func worlds() []struct {
	name string
	make func(t *testing.T) *world
} {
	return []struct {
		name string
		make func(t *testing.T) *world
	}{
		{"embedded", embeddedWorld},
		{"emulators", func(t *testing.T) *world { return emulatorWorld(t, 3) }},
	}
}

// TestStatusWhileABacklogDrains watches a backlog drain: the counts move,
// the drain rate and the estimate to empty become finite, and the store's
// artists grow to the backlog's.
func TestStatusWhileABacklogDrains(t *testing.T) {
	for _, wd := range worlds() {
		t.Run(wd.name, func(t *testing.T) {
			w := wd.make(t)
			artists := artistIDs(40, "drain-"+wd.name)
			if got := run(t, w.env, "", append([]string{"enqueue"}, artists...)...); got.code != 0 {
				t.Fatalf("enqueue: exit %d: %s", got.code, got.stderr)
			}
			var stdout, stderr testutil.Buffer
			stop := background(t, w.env, &stdout, &stderr, "status", "--watch", "--json", "--interval", "200ms")
			testutil.Eventually(t, 45*time.Second, "status sees the whole backlog", func() bool {
				ls := statusLines(t, stdout.String())
				return len(ls) > 0 && ls[len(ls)-1].Backlog >= len(artists)
			})
			stopWorker := opsWorker(t, w.q, w.st, nil, 100*time.Millisecond, 2)
			var finite statusLine
			testutil.Eventually(t, 45*time.Second, "a finite estimate while the backlog drains", func() bool {
				for _, l := range statusLines(t, stdout.String()) {
					if l.Backlog > 0 && l.Backlog < len(artists) && l.ETASeconds != nil && *l.ETASeconds > 0 && l.DrainPerSecond != nil && *l.DrainPerSecond > 0 {
						finite = l
						return true
					}
				}
				return false
			})
			testutil.Eventually(t, 45*time.Second, "status sees the backlog empty and the artists stored", func() bool {
				ls := statusLines(t, stdout.String())
				last := ls[len(ls)-1]
				// dynalite's ItemCount, like DynamoDB's between its updates,
				// does not follow the writes.
				return last.Backlog == 0 && last.Store.Artists != nil && (!w.exact || *last.Store.Artists == len(artists))
			})
			stopWorker()
			if code := stop(); code != 0 {
				t.Errorf("status --watch exited %d after its cancel, want 0; stderr:\n%s", code, stderr.String())
			}
			t.Logf("mid-drain: backlog %d, drain %.1f/s, empty in %.1fs", finite.Backlog, *finite.DrainPerSecond, *finite.ETASeconds)
			ls := statusLines(t, stdout.String())
			last := ls[len(ls)-1]
			if w.exact {
				if got := last.Store.ByStatus["ok"]; got != len(artists) || last.Store.Approximate {
					t.Errorf("store by status %v (approximate %v); want %d ok, exact", last.Store.ByStatus, last.Store.Approximate, len(artists))
				}
			} else if !last.Store.Approximate || last.Store.ByStatus != nil {
				t.Errorf("DynamoDB's count: approximate %v, by status %v; want approximate and no count by status", last.Store.Approximate, last.Store.ByStatus)
			}
			if l := last.Lanes; len(l) != 1 || l[0].DLQ == nil || l[0].DLQ.Total() != 0 {
				t.Errorf("lanes %+v; want the chatbot's with an empty DLQ", l)
			}
			// Without --watch: the table once, exit 0.
			got := run(t, w.env, "", "status", "--stale-after", "1h")
			wantStore := fmt.Sprintf("%d artists: %d ok, 0 not_found; 0 fetched more than 1h0m0s ago; 0 with a failure recorded", len(artists), len(artists))
			if !w.exact {
				wantStore = "artists (approximate: DynamoDB's ItemCount"
			}
			if got.code != 0 || !strings.Contains(got.stdout, "chatbot dlq") || !strings.Contains(got.stdout, wantStore) {
				t.Errorf("status: exit %d\nstdout:\n%s\nstderr:\n%s", got.code, got.stdout, got.stderr)
			}
		})
	}
}

// poisonWorld fills the chatbot lane's DLQ through the worker: artists
// Spotify refuses (400) and a body that is no message.
func poisonWorld(t *testing.T, wd func(t *testing.T) *world, seed string) (w *world, bad []string, raw string) {
	t.Helper()
	w = wd(t)
	bad = artistIDs(3, "poison-"+seed)
	good := artistIDs(2, "good-"+seed)
	raw = `{"artist_id": 12345, "seed": "` + seed + `"}`
	if got := run(t, w.env, "", append(append([]string{"enqueue"}, bad...), good...)...); got.code != 0 {
		t.Fatalf("enqueue: exit %d: %s", got.code, got.stderr)
	}
	w.send(raw)
	stop := opsWorker(t, w.q, w.st, bad, 0, 4)
	testutil.Eventually(t, 45*time.Second, "the poison messages in the DLQ, the others stored", func() bool {
		c, err := w.q.DeadLetterCounts(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		for _, id := range good {
			if _, ok, _ := w.st.Artist(t.Context(), id); !ok {
				return false
			}
		}
		q, err := w.q.(queue.Counter).Counts(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		return c.Visible == len(bad)+1 && q.Total() == 0
	})
	stop()
	return w, bad, raw
}

// TestDLQListAndRedrive: poison messages reach the DLQ through the worker;
// dlq list shows each, with the reason the worker recorded, and leaves
// them there; a redrive interrupted half-way and run again moves each back
// once.
func TestDLQListAndRedrive(t *testing.T) {
	for _, wd := range worlds() {
		t.Run(wd.name, func(t *testing.T) {
			w, bad, raw := poisonWorld(t, wd.make, wd.name)

			got := run(t, w.env, "", "dlq", "list")
			if got.code != 0 {
				t.Fatalf("dlq list: exit %d\nstdout:\n%s\nstderr:\n%s", got.code, got.stdout, got.stderr)
			}
			t.Logf("dlq list:\n%s", got.stdout)
			if !regexp.MustCompile(`^dead-letter queue of the chatbot lane \(` + regexp.QuoteMeta(w.lane) + `\): 4 messages`).MatchString(got.stdout) {
				t.Errorf("dlq list header: %q", lines(got.stdout)[0])
			}
			for _, id := range bad {
				if !regexp.MustCompile(id + `\s+-\s+\d+\s+\S+\s+top tracks of ` + id + `: .*HTTP 400.*\(lane chatbot, delivery \d+\) \[at `).MatchString(got.stdout) {
					t.Errorf("dlq list shows no line for %s with its reason", id)
				}
			}
			if !strings.Contains(got.stdout, `(not a message) "{\"artist_id\": 12345`) {
				t.Errorf("dlq list does not show the raw body of the invalid message")
			}

			got = run(t, w.env, "", "dlq", "list", "--json", "-n", "10")
			if got.code != 0 {
				t.Fatalf("dlq list --json: exit %d: %s", got.code, got.stderr)
			}
			var listed []string
			for _, l := range lines(got.stdout) {
				var dl struct {
					ArtistID  string `json:"artist_id"`
					Body      string
					Receives  int
					FirstSent time.Time `json:"first_sent"`
					Reason    string
				}
				if err := json.Unmarshal([]byte(l), &dl); err != nil {
					t.Fatalf("dlq list --json line %q: %v", l, err)
				}
				// local-aws-sqs starts the count afresh in the DLQ (seen
				// here); the embedded queue keeps it.
				if w.exact && dl.Receives < 1 || dl.FirstSent.IsZero() || time.Since(dl.FirstSent) > 5*time.Minute {
					t.Errorf("%s: receives %d, first sent %v", l, dl.Receives, dl.FirstSent)
				}
				if dl.ArtistID != "" && !strings.Contains(dl.Reason, "HTTP 400") {
					t.Errorf("%s: reason %q, want Spotify's 400", dl.ArtistID, dl.Reason)
				}
				listed = append(listed, dl.ArtistID+dl.Body)
			}
			slices.Sort(listed)
			want := append(slices.Clone(bad), raw)
			slices.Sort(want)
			if !slices.Equal(listed, want) {
				t.Errorf("dlq list --json lists %q, want %q", listed, want)
			}
			// Listing consumed nothing.
			testutil.Eventually(t, 45*time.Second, "the listed messages back in the DLQ", func() bool {
				c, err := w.q.DeadLetterCounts(t.Context())
				return err == nil && c.Visible == 4 && c.InFlight == 0
			})

			// A redrive at one message a second, interrupted after the first.
			var stdout, stderr testutil.Buffer
			stop := background(t, w.env, &stdout, &stderr, "dlq", "redrive", "--max-per-second", "1", "--poll", "100ms")
			testutil.Eventually(t, 45*time.Second, "the first message moved", func() bool {
				return regexp.MustCompile(`RUNNING, [1-3] of 4 moved`).MatchString(stderr.String())
			})
			if code := stop(); code != 1 {
				t.Errorf("interrupted redrive: exit %d, want 1\nstdout:\n%s\nstderr:\n%s", code, stdout.String(), stderr.String())
			}
			t.Logf("interrupted redrive:\nstdout: %sstderr:\n%s", stdout.String(), stderr.String())
			m := regexp.MustCompile(`^moved (\d) of 4 messages`).FindStringSubmatch(stdout.String())
			if m == nil || m[1] == "0" || m[1] == "4" {
				t.Fatalf("interrupted redrive's summary %q; want some of the 4 moved", stdout.String())
			}
			if !strings.Contains(stderr.String(), "interrupted after moving") {
				t.Errorf("interrupted redrive's stderr %q: want it to say so", stderr.String())
			}
			got = run(t, w.env, "", "dlq", "redrive")
			if got.code != 0 || !regexp.MustCompile(`^moved \d of \d messages .*; (about )?0 left in the dead-letter queue\n$`).MatchString(got.stdout) {
				t.Fatalf("redrive again: exit %d\nstdout:\n%s\nstderr:\n%s", got.code, got.stdout, got.stderr)
			}
			t.Logf("redrive again: %s", got.stdout)
			// Every message back in the lane, once; none left behind.
			wantBodies := []string{raw}
			for _, id := range bad {
				wantBodies = append(wantBodies, `{"artist_id":"`+id+`"}`)
			}
			slices.Sort(wantBodies)
			if got := w.rawQ(); !slices.Equal(got, wantBodies) {
				t.Errorf("the lane holds %q after the redrives, want %q", got, wantBodies)
			}
			if got := w.rawDLQ(); len(got) != 0 {
				t.Errorf("the DLQ still holds %q", got)
			}
		})
	}
}

// TestOpsUsage: bad input is one line naming the flag or variable, exit 2;
// help is on stdout, exit 0.
func TestOpsUsage(t *testing.T) {
	env, path, _ := embedded(t)
	missing := map[string]string{"QUEUE_URL": "sqlite:" + filepath.Join(t.TempDir(), "none.db"), "STORE_URL": env["STORE_URL"]}
	tests := []struct {
		name string
		env  map[string]string
		args []string
		want string // in the one line of stderr
	}{
		{"unknown lane", env, []string{"dlq", "list", "--lane", "express"}, `--lane: "express" is not a lane: chatbot or bulk`},
		{"no bulk lane", env, []string{"dlq", "redrive", "--lane", "bulk"}, "--lane bulk: BULK_QUEUE_URL (--bulk-queue-url) is not set"},
		{"no queue file", missing, []string{"dlq", "list"}, "QUEUE_URL (--queue-url): " + missing["QUEUE_URL"] + " does not exist"},
		{"bad -n", env, []string{"dlq", "list", "-n", "0"}, "-n: 0 is not a number of messages from 1 to 1000"},
		{"bad rate", env, []string{"dlq", "redrive", "--max-per-second", "501"}, "--max-per-second: 501 is not a rate"},
		{"interval without watch", env, []string{"status", "--interval", "1s"}, "--interval: only with --watch"},
		{"negative stale-after", env, []string{"status", "--stale-after=-1h"}, "--stale-after: -1h0m0s is negative"},
		{"bad queue URL", map[string]string{"QUEUE_URL": "ftp://x"}, []string{"status"}, "QUEUE_URL (--queue-url): "},
		{"bad store URL", map[string]string{"QUEUE_URL": env["QUEUE_URL"], "STORE_URL": "mysql:x"}, []string{"dlq", "list"}, "STORE_URL (--store-url): "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := run(t, tt.env, "", tt.args...)
			if got.code != 2 || len(lines(got.stderr)) != 1 || !strings.Contains(got.stderr, tt.want) || got.stdout != "" {
				t.Errorf("exit %d, stdout %q, stderr %q; want exit 2 and one line containing %q", got.code, got.stdout, got.stderr, tt.want)
			}
		})
	}
	for _, args := range [][]string{{"status", "--help"}, {"dlq", "list", "--help"}, {"dlq", "redrive", "--help"}, {"help", "dlq"}} {
		got := run(t, env, "", args...)
		if got.code != 0 || got.stderr != "" || !strings.Contains(got.stdout, "Usage: producer") {
			t.Errorf("%v: exit %d, stdout %q, stderr %q", args, got.code, got.stdout, got.stderr)
		}
	}
	if got := run(t, env, "", "dlq", "list", "--help"); !strings.Contains(got.stdout, "ChangeMessageVisibility 0") {
		t.Errorf("dlq list --help does not say how SQS's messages are given back:\n%s", got.stdout)
	}
	_ = path
}

// TestDLQWithoutRedrivePolicy: an SQS queue with no redrive policy has no
// DLQ to list or redrive: one line, exit 2; status says so and exits 0.
func TestDLQWithoutRedrivePolicy(t *testing.T) {
	w := emulatorWorld(t, 0)
	for _, cmd := range []string{"list", "redrive"} {
		got := run(t, w.env, "", "dlq", cmd)
		want := "QUEUE_URL (--queue-url): the chatbot lane's queue " + w.lane + " has no dead-letter queue (no redrive policy)"
		if got.code != 2 || len(lines(got.stderr)) != 1 || !strings.Contains(got.stderr, want) {
			t.Errorf("dlq %s: exit %d, stderr %q; want exit 2 and %q", cmd, got.code, got.stderr, want)
		}
	}
	got := run(t, w.env, "", "status")
	if got.code != 0 || !strings.Contains(got.stdout, "none: the queue has no redrive policy") {
		t.Errorf("status: exit %d\nstdout:\n%s\nstderr:\n%s", got.code, got.stdout, got.stderr)
	}
}

var _ store.FailureReader = (*dynamostore.Store)(nil)
