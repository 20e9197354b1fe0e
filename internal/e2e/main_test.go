package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/google/go-cmp/cmp"

	"github.com/sixpotify/top-tracks/internal/fakespotify"
	"github.com/sixpotify/top-tracks/internal/spotify"
	"github.com/sixpotify/top-tracks/internal/store"
	"github.com/sixpotify/top-tracks/internal/store/dynamostore"
	"github.com/sixpotify/top-tracks/internal/testenv"
	"github.com/sixpotify/top-tracks/internal/testutil"
)

// binDir holds the binaries TestMain built.
var binDir string

// The Spotify app credentials the stand-in accepts. The secret must never
// show up in a worker's output.
const (
	clientID     = "e2e-client-id"
	clientSecret = "e2e-secret-Zq81xKp0"
)

// TestMain builds the three binaries once, runs the tests, and stops the
// emulators the tests started (testenv starts them on first use).
func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	dir, err := os.MkdirTemp("", "sixpotify-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	defer testenv.Stop()
	root, err := testenv.Root()
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	build := exec.CommandContext(ctx, "go", "build", "-o", dir+string(filepath.Separator),
		"./cmd/worker", "./cmd/producer", "./cmd/fakespotify")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "e2e: go build: %v\n%s", err, out)
		return 1
	}
	binDir = dir
	return m.Run()
}

// proc is one running binary. Its lifetime is bounded by the timeout given
// to start, and it is killed when the test ends.
type proc struct {
	name           string
	cmd            *exec.Cmd
	stdout, stderr *testutil.Buffer
	started        time.Time
	done           chan struct{}
	ended          time.Time // set before done is closed
	err            error     // set before done is closed
}

// start runs bin/name with exactly env (nothing inherited) and args.
func start(t *testing.T, timeout time.Duration, env map[string]string, name string, args ...string) *proc {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	cmd := exec.CommandContext(ctx, filepath.Join(binDir, name), args...)
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	sort.Strings(cmd.Env)
	p := &proc{name: name, cmd: cmd, stdout: &testutil.Buffer{}, stderr: &testutil.Buffer{}, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = p.stdout, p.stderr
	cmd.WaitDelay = 5 * time.Second
	// Never outlive the test binary, whatever happens to it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	p.started = time.Now()
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatalf("start %s: %v", name, err)
	}
	go func() {
		p.err = cmd.Wait()
		p.ended = time.Now()
		close(p.done)
	}()
	t.Cleanup(func() {
		cancel() // kills it if it still runs
		<-p.done
		if t.Failed() {
			t.Logf("%s %s (%s): stdout:\n%s", name, strings.Join(args, " "), p.err, tail(p.stdout.String()))
			t.Logf("%s %s: stderr:\n%s", name, strings.Join(args, " "), tail(p.stderr.String()))
		}
	})
	return p
}

// wait waits up to d for the process to exit. It returns the exit code (-1
// when a signal ended it) and whether it exited.
func (p *proc) wait(d time.Duration) (code int, exited bool) {
	select {
	case <-p.done:
	case <-time.After(d):
		return 0, false
	}
	return p.cmd.ProcessState.ExitCode(), true
}

// mustExit waits up to d for the process to exit and returns its exit code;
// it fails the test at once if the process is still running.
func (p *proc) mustExit(t *testing.T, d time.Duration) int {
	t.Helper()
	code, ok := p.wait(d)
	if !ok {
		t.Fatalf("%s still running after %s", p.name, d)
	}
	if code == -1 {
		t.Fatalf("%s was killed: %v (its time limit ran out?)", p.name, p.err)
	}
	return code
}

func (p *proc) elapsed() time.Duration { return p.ended.Sub(p.started) }

// stopWorker sends SIGTERM and wants exit 0 within the contract's 25 s. It
// returns how long the worker took to exit after the signal.
func stopWorker(t *testing.T, p *proc) time.Duration {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatalf("SIGTERM: %v", err)
	}
	signalled := time.Now()
	code, exited := p.wait(25 * time.Second)
	if !exited {
		t.Fatalf("the worker did not exit within 25s of SIGTERM")
	}
	if code != 0 {
		t.Errorf("the worker exited %d after SIGTERM, want 0", code)
	}
	return p.ended.Sub(signalled)
}

// runUntilEmpty runs a worker with env and UNTIL_EMPTY=true (set in env),
// wants it to exit 0 within timeout, and checks its log (checkWorkerLog,
// with noErrors). what names the worker in a failure.
func runUntilEmpty(t *testing.T, timeout time.Duration, env map[string]string, what string, noErrors bool) *proc {
	t.Helper()
	env["UNTIL_EMPTY"] = "true"
	w := start(t, timeout, env, "worker")
	if code := w.mustExit(t, timeout+10*time.Second); code != 0 {
		t.Fatalf("%s exited %d, want 0", what, code)
	}
	checkWorkerLog(t, w.stderr.String(), noErrors)
	return w
}

// run starts bin/name and waits for it to exit; it returns the exit code,
// stdout and stderr.
func run(t *testing.T, timeout time.Duration, env map[string]string, name string, args ...string) (int, string, string) {
	t.Helper()
	p := start(t, timeout, env, name, args...)
	code := p.mustExit(t, timeout+10*time.Second)
	return code, p.stdout.String(), p.stderr.String()
}

func tail(s string) string {
	const max = 20000
	if len(s) > max {
		return "…" + s[len(s)-max:]
	}
	return s
}

// baseEnv is the environment of every binary: nothing from the test's own
// environment but PATH, a fresh HOME (no ~/.aws), and the emulators' region
// and static credentials.
func baseEnv(t *testing.T) map[string]string {
	return map[string]string{
		"PATH":                      os.Getenv("PATH"),
		"HOME":                      t.TempDir(),
		"AWS_REGION":                testenv.Region,
		"AWS_ACCESS_KEY_ID":         "AKIDTESTTESTTEST",
		"AWS_SECRET_ACCESS_KEY":     "test-secret-not-real",
		"AWS_EC2_METADATA_DISABLED": "true",
	}
}

// awsEnv is baseEnv pointed at the emulators (started here if needed).
func awsEnv(t *testing.T) map[string]string {
	env := baseEnv(t)
	env["AWS_ENDPOINT_URL_SQS"] = testenv.SQSEndpoint(t)
	env["AWS_ENDPOINT_URL_DYNAMODB"] = testenv.DynamoDBEndpoint(t)
	return env
}

// workerEnv is the environment of a worker draining queueURL into the
// DynamoDB tables named by tracks (and tracks+"_artists"), with Spotify at
// spotifyBase (the stand-in's root URL).
func workerEnv(t *testing.T, spotifyBase, queueURL, tracks string) map[string]string {
	env := awsEnv(t)
	for k, v := range map[string]string{
		"QUEUE_URL":             queueURL,
		"STORE_URL":             "dynamodb:" + tracks,
		"ARTISTS_TABLE":         tracks + "_artists",
		"CREATE_TABLES":         "true",
		"SPOTIFY_CLIENT_ID":     clientID,
		"SPOTIFY_CLIENT_SECRET": clientSecret,
		"SPOTIFY_API_URL":       spotifyBase + "/v1",
		"SPOTIFY_TOKEN_URL":     spotifyBase + "/api/token",
		"SPOTIFY_RATE":          "1000",
		"WORKER_CONCURRENCY":    "32",
		"RECEIVE_WAIT_TIME":     "1s",
		"HTTP_ADDR":             "127.0.0.1:" + strconv.Itoa(freePort(t)),
		"LOG_FORMAT":            "json",
	} {
		env[k] = v
	}
	return env
}

func freePort(t *testing.T) int {
	t.Helper()
	port, err := testenv.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	return port
}

// checkWorkerLog checks what the contract says of every worker's output:
// JSON lines (LOG_FORMAT=json) and no secret. With noErrors it also wants no
// line at level ERROR.
func checkWorkerLog(t *testing.T, stderr string, noErrors bool) {
	t.Helper()
	if strings.Contains(stderr, clientSecret) {
		t.Errorf("the worker's log contains SPOTIFY_CLIENT_SECRET")
	}
	bad, errs := 0, 0
	for _, line := range strings.Split(strings.TrimSpace(stderr), "\n") {
		if line == "" {
			continue
		}
		var rec struct {
			Level string `json:"level"`
		}
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			if bad++; bad <= 3 {
				t.Errorf("worker log line is not JSON with LOG_FORMAT=json: %q", line)
			}
			continue
		}
		if noErrors && rec.Level == "ERROR" {
			if errs++; errs <= 3 {
				t.Errorf("worker logged an error: %s", line)
			}
		}
	}
}

// logTime returns the time of the first JSON log line whose msg is msg, or
// the zero time.
func logTime(stderr, msg string) time.Time {
	for _, line := range strings.Split(stderr, "\n") {
		var rec struct {
			Time time.Time `json:"time"`
			Msg  string    `json:"msg"`
		}
		if json.Unmarshal([]byte(line), &rec) == nil && rec.Msg == msg {
			return rec.Time
		}
	}
	return time.Time{}
}

// uniqueName returns a queue or table name no other test uses.
func uniqueName(prefix string) string {
	return fmt.Sprintf("e2e-%s-%d-%d", prefix, time.Now().UnixNano()%1e9, nameSeq.Add(1))
}

var nameSeq atomic.Int64

const base62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

// artistIDs returns n distinct, valid Spotify artist IDs that depend only on
// seed.
func artistIDs(seed uint64, n int) []string {
	r := rand.New(rand.NewPCG(seed, 0xe2e))
	seen := make(map[string]bool, n)
	ids := make([]string, 0, n)
	for len(ids) < n {
		b := make([]byte, 22)
		for i := range b {
			b[i] = base62[r.IntN(len(base62))]
		}
		if id := string(b); !seen[id] {
			seen[id] = true
			ids = append(ids, id)
		}
	}
	return ids
}

// writeLines writes lines to a new file and returns its path.
func writeLines(t *testing.T, lines []string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "artists.txt")
	if err := os.WriteFile(path, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// scene is where the tests of a worker's run start: the stand-in, a fresh
// queue holding the artists (enqueued by the producer binary) and tables.
type scene struct {
	fake             *fakespotify.Server
	spotifyURL       string
	sq               *sqs.Client
	queueURL, dlqURL string
	ids              []string
	table            string
	st               *dynamostore.Store
}

type sceneOptions struct {
	latency                 time.Duration // the stand-in's, per call
	queue                   string        // the queue's name, made unique
	visibility, maxReceives int           // as createQueue takes them
	seed                    uint64        // n artists from artistIDs(seed, n)
	n                       int
	tables                  string // the prefix of the tables' names
}

func newScene(ctx context.Context, t *testing.T, o sceneOptions) scene {
	t.Helper()
	var s scene
	s.fake, s.spotifyURL = newFake(t, o.latency)
	s.sq = testenv.SQSClient(t)
	s.queueURL, s.dlqURL = createQueue(ctx, t, s.sq, uniqueName(o.queue), o.visibility, o.maxReceives)
	s.ids = artistIDs(o.seed, o.n)
	enqueue(t, s.queueURL, s.ids)
	s.table, s.st = trackTables(t, o.tables)
	return s
}

// checkAllStored wants every artist of the scene stored with its rows and
// no other in the artists table, and the queue and its dead-letter queue
// (if any) empty.
func (s scene) checkAllStored(ctx context.Context, t *testing.T) {
	t.Helper()
	checkArtists(ctx, t, s.st, s.ids)
	if got, err := scanCount(ctx, s.st); err != nil {
		t.Fatalf("scan artists: %v", err)
	} else if got != len(s.ids) {
		t.Errorf("the artists table holds %d rows, want %d", got, len(s.ids))
	}
	checkQueueEmpty(ctx, t, s.sq, s.queueURL, "queue")
	if s.dlqURL != "" {
		checkQueueEmpty(ctx, t, s.sq, s.dlqURL, "dead-letter queue")
	}
}

// createQueue creates a fresh queue with the given visibility timeout. With
// maxReceives > 0 it also creates a dead-letter queue and a redrive policy,
// and returns the DLQ's URL too.
func createQueue(ctx context.Context, t *testing.T, sq *sqs.Client, name string, visibility, maxReceives int) (queueURL, dlqURL string) {
	t.Helper()
	attrs := map[string]string{"VisibilityTimeout": strconv.Itoa(visibility)}
	if maxReceives > 0 {
		var policy string
		dlqURL, policy = testenv.CreateDeadLetterQueue(ctx, t, sq, name+"-dlq", strconv.Itoa(maxReceives))
		attrs["RedrivePolicy"] = policy
	}
	return testenv.CreateQueue(ctx, t, sq, name, attrs), dlqURL
}

// checkQueueEmpty wants nothing left in the queue: nothing to receive and
// nothing in flight.
func checkQueueEmpty(ctx context.Context, t *testing.T, sq *sqs.Client, queueURL, what string) {
	t.Helper()
	out, err := sq.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{
		QueueUrl: aws.String(queueURL), MaxNumberOfMessages: 10, WaitTimeSeconds: 1,
	})
	if err != nil {
		t.Fatalf("receive from the %s: %v", what, err)
	}
	if n := len(out.Messages); n > 0 {
		t.Errorf("the %s still holds messages; first: %s", what, aws.ToString(out.Messages[0].Body))
	}
	testenv.CheckQueueEmpty(ctx, t, sq, queueURL, what)
}

// checkArtists checks, for every id, the artists row (status ok, market US,
// 10 tracks) and exactly the 10 track rows the stand-in answers, in order.
// It reads with a few goroutines and reports at most a handful of artists.
func checkArtists(ctx context.Context, t *testing.T, st *dynamostore.Store, ids []string) {
	t.Helper()
	var (
		mu   sync.Mutex
		errs []string
		wg   sync.WaitGroup
		next atomic.Int64
	)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= len(ids) {
					return
				}
				if err := checkArtist(ctx, st, ids[i]); err != nil {
					mu.Lock()
					errs = append(errs, err.Error())
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	sort.Strings(errs)
	for i, e := range errs {
		if i == 5 {
			t.Errorf("… and %d more artists are wrong", len(errs)-i)
			break
		}
		t.Error(e)
	}
}

// trackTables names a fresh tracks table (the worker's CREATE_TABLES makes
// it and its artists table, TABLE_artists) and returns a store reading them.
func trackTables(t *testing.T, prefix string) (string, *dynamostore.Store) {
	table := strings.ReplaceAll(uniqueName(prefix), "-", "_")
	return table, dynamostore.New(testenv.DynamoDBClient(t), table, table+"_artists")
}

// checkArtist checks that the artist's rows are exactly the 10 tracks the
// stand-in answers, in order, with its artists row (status ok, market US, 10
// tracks), all written by one fetch: every row's fetched_at is the artists
// row's.
func checkArtist(ctx context.Context, st *dynamostore.Store, id string) error {
	return checkRows(ctx, st, id, true)
}

// checkConverged is checkArtist for an artist that may have been fetched
// again with the same list: the rows' fetched_at is checked as the README
// documents it under change-aware writes, one time for every row, when
// Spotify last answered with this list, so never after the artists row's.
func checkConverged(ctx context.Context, st *dynamostore.Store, id string) error {
	return checkRows(ctx, st, id, false)
}

func checkRows(ctx context.Context, st *dynamostore.Store, id string, oneFetch bool) error {
	a, ok, err := st.Artist(ctx, id)
	switch {
	case err != nil:
		return err
	case !ok:
		return fmt.Errorf("artist %s: no artists row", id)
	case a.Status != store.StatusOK || a.Market != "US" || a.Tracks != 10 || a.FetchedAt.IsZero():
		return fmt.Errorf("artist %s: artists row %+v, want status ok, market US, 10 tracks, a fetched_at", id, a)
	}
	rows, err := st.Tracks(ctx, id)
	if err != nil {
		return err
	}
	want := fakespotify.Tracks(id, 0, 10)
	got := make([]spotify.Track, len(rows))
	for i, r := range rows {
		at := !r.FetchedAt.Equal(rows[0].FetchedAt) || r.FetchedAt.After(a.FetchedAt)
		if oneFetch {
			at = !r.FetchedAt.Equal(a.FetchedAt)
		}
		if r.ArtistID != id || r.Rank != i+1 || r.Market != "US" || at {
			return fmt.Errorf("artist %s: row %d: artist_id %q rank %d market %q fetched_at %v (first row's %v, artists row's %v)",
				id, i, r.ArtistID, r.Rank, r.Market, r.FetchedAt, rows[0].FetchedAt, a.FetchedAt)
		}
		got[i] = r.Track
	}
	if diff := cmp.Diff(want, got); diff != "" {
		return fmt.Errorf("artist %s: %d track rows differ from the stand-in's 10 (-want +got):\n%s", id, len(rows), diff)
	}
	return nil
}

// countArtists counts the artists rows among ids.
func countArtists(ctx context.Context, st *dynamostore.Store, ids []string) (int, error) {
	n := 0
	for _, id := range ids {
		_, ok, err := st.Artist(ctx, id)
		if err != nil {
			return n, err
		}
		if ok {
			n++
		}
	}
	return n, nil
}

// scanCount counts every artists row in the store.
func scanCount(ctx context.Context, st *dynamostore.Store) (int, error) {
	var n atomic.Int64
	err := st.ScanArtists(ctx, func(store.Artist) error { n.Add(1); return nil })
	return int(n.Load()), err
}

// httpStatus GETs url and returns the status code, or 0 when nothing answers.
func httpStatus(url string) int {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

// inFlight reads sixpotify_artists_in_flight (summed over lanes) from the
// worker's /metrics at base; -1 when it cannot.
func inFlight(base string) int {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+"/metrics", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		return -1
	}
	sum, found := 0.0, false
	for _, line := range strings.Split(string(body), "\n") {
		if !strings.HasPrefix(line, "sixpotify_artists_in_flight") {
			continue
		}
		f := strings.Fields(line)
		if v, err := strconv.ParseFloat(f[len(f)-1], 64); err == nil {
			sum, found = sum+v, true
		}
	}
	if !found {
		return -1
	}
	return int(sum)
}

// waitFor polls cond every 50ms until it holds or d passes.
func waitFor(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// summaryRE matches the producer's summary line.
var summaryRE = regexp.MustCompile(`(?m)^enqueued (\d+) artists on (\S+) in \S+ \(\d+/s\); (\d+) duplicates dropped, (\d+) rejected, (\d+) failed$`)

// enqueue runs `bin/producer enqueue -f FILE` with ids and checks its exit
// code and summary.
func enqueue(t *testing.T, queueURL string, ids []string) {
	t.Helper()
	env := awsEnv(t)
	env["QUEUE_URL"] = queueURL
	code, stdout, stderr := run(t, 60*time.Second, env, "producer", "enqueue", "-f", writeLines(t, ids))
	if code != 0 {
		t.Fatalf("producer enqueue exited %d\nstdout: %s\nstderr: %s", code, stdout, stderr)
	}
	m := summaryRE.FindStringSubmatch(stdout)
	want := []string{strconv.Itoa(len(ids)), queueURL, "0", "0", "0"}
	if m == nil || !slices.Equal(m[1:], want) {
		t.Fatalf("producer summary = %q, want enqueued %s artists on %s … 0 duplicates dropped, 0 rejected, 0 failed", stdout, want[0], queueURL)
	}
	t.Logf("producer: %s", strings.TrimSpace(summaryRE.FindString(stdout)))
}
