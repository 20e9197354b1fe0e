package e2e

// Process-level fault injection: a worker killed mid-run, two workers on one
// queue with duplicate messages, and a worker run through failures whose
// every printed byte and metric is searched for secrets.

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/sixpotify/top-tracks/internal/fakespotify"
	"github.com/sixpotify/top-tracks/internal/testenv"
)

// queueDepth is every message the queue holds (visible, in flight, delayed),
// or -1 when the emulator does not answer.
func queueDepth(ctx context.Context, sq *sqs.Client, queueURL string) int {
	n, err := testenv.QueueDepth(ctx, sq, queueURL)
	if err != nil {
		return -1
	}
	return n
}

// TestFaultSIGKILLMidRun kills a worker in the middle of a run (artists
// stored, more in flight, maybe one mid-write holding its lease) and starts
// another: every artist ends with exactly its rows, none lost.
func TestFaultSIGKILLMidRun(t *testing.T) {
	t.Parallel()
	const n = 150
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	// A generous maxReceiveCount: the emulator counts heartbeats as receives.
	s := newScene(ctx, t, sceneOptions{latency: 200 * time.Millisecond, queue: "sigkill", visibility: 3, maxReceives: 50, seed: 9001, n: n, tables: "trackskill"})
	fake, spotifyURL, sq, queueURL, ids, table, st := s.fake, s.spotifyURL, s.sq, s.queueURL, s.ids, s.table, s.st
	env := workerEnv(t, spotifyURL, queueURL, table)
	w := start(t, 2*time.Minute, env, "worker")
	base := "http://" + env["HTTP_ADDR"]
	var storedAtKill, heldAtKill int
	if !waitFor(60*time.Second, func() bool {
		if _, exited := w.wait(0); exited {
			return true
		}
		stored, err := scanCount(ctx, st)
		if err != nil || stored < 20 {
			return false
		}
		storedAtKill, heldAtKill = stored, inFlight(base)
		return heldAtKill >= 8
	}) {
		t.Fatalf("the worker did not store 20 artists with 8 more in flight within 60s")
	}
	if code, exited := w.wait(0); exited {
		t.Fatalf("the worker exited %d before it was killed", code)
	}
	if err := w.cmd.Process.Kill(); err != nil {
		t.Fatalf("SIGKILL: %v", err)
	}
	if _, exited := w.wait(10 * time.Second); !exited {
		t.Fatal("the worker survived SIGKILL for 10s")
	}
	callsAtKill := fake.Stats().Requests

	// A second worker: what the first held comes back when the visibility
	// timeout (3s) ends; a lease it held mid-write expires on its own.
	env2 := workerEnv(t, spotifyURL, queueURL, table)
	w2 := start(t, 3*time.Minute, env2, "worker")
	var stored int
	if !waitFor(150*time.Second, func() bool {
		if _, exited := w2.wait(0); exited {
			return true
		}
		var err error
		stored, err = scanCount(ctx, st)
		return err == nil && stored == n && queueDepth(ctx, sq, queueURL) == 0
	}) {
		t.Fatalf("after 150s the second worker has stored %d of %d artists (queue depth %d)", stored, n, queueDepth(ctx, sq, queueURL))
	}
	if code, exited := w2.wait(0); exited {
		t.Fatalf("the second worker exited %d by itself", code)
	}
	stopWorker(t, w2)
	checkWorkerLog(t, w2.stderr.String(), false)

	s.checkAllStored(ctx, t)
	stats := fake.Stats()
	again := 0
	for _, id := range ids {
		if stats.PerArtist[id] > 1 {
			again++
		}
	}
	t.Logf("SIGKILL with %d artists stored and %d in flight (%d Spotify calls); the second worker finished the other %d in %s; %d artists were fetched twice",
		storedAtKill, heldAtKill, callsAtKill, n-storedAtKill, w2.elapsed().Round(time.Millisecond), again)
}

// TestFaultDuplicatesAcrossTwoWorkers runs two workers on one queue holding
// every artist three times (one copy forced, for half of them): the rows
// converge to exactly Spotify's answer.
func TestFaultDuplicatesAcrossTwoWorkers(t *testing.T) {
	t.Parallel()
	const n = 40
	fake, spotifyURL := newFake(t, 100*time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	sq := testenv.SQSClient(t)
	queueURL, dlqURL := createQueue(ctx, t, sq, uniqueName("dups"), 30, 5)
	ids := artistIDs(9002, n)
	var forced, plain []string
	for i, id := range ids {
		if i%2 == 0 {
			forced = append(forced, id)
		} else {
			plain = append(plain, id)
		}
	}
	enqueue(t, queueURL, ids)
	env := awsEnv(t)
	env["QUEUE_URL"] = queueURL
	if code, stdout, stderr := run(t, 60*time.Second, env, "producer", "enqueue", "--force", "-f", writeLines(t, forced)); code != 0 {
		t.Fatalf("producer enqueue --force exited %d\nstdout: %s\nstderr: %s", code, stdout, stderr)
	}
	enqueue(t, queueURL, plain)
	enqueue(t, queueURL, ids)

	table, st := trackTables(t, "tracksdup")
	w1 := start(t, 3*time.Minute, workerEnv(t, spotifyURL, queueURL, table), "worker")
	w2 := start(t, 3*time.Minute, workerEnv(t, spotifyURL, queueURL, table), "worker")
	var stored int
	if !waitFor(120*time.Second, func() bool {
		for _, w := range []*proc{w1, w2} {
			if _, exited := w.wait(0); exited {
				return true
			}
		}
		var err error
		stored, err = countArtists(ctx, st, ids)
		return err == nil && stored == n && queueDepth(ctx, sq, queueURL) == 0
	}) {
		t.Fatalf("after 120s, %d of %d artists stored (queue depth %d)", stored, n, queueDepth(ctx, sq, queueURL))
	}
	for i, w := range []*proc{w1, w2} {
		if code, exited := w.wait(0); exited {
			t.Fatalf("worker %d exited %d by itself", i+1, code)
		}
	}
	stopWorker(t, w1)
	stopWorker(t, w2)
	checkWorkerLog(t, w1.stderr.String(), true)
	checkWorkerLog(t, w2.stderr.String(), true)

	// Not checkArtists: it wants every track row's fetched_at equal to the
	// artists row's, which change-aware writes (README, "The tables") give
	// up once an artist is fetched again with an unchanged list.
	bad := 0
	for _, id := range ids {
		if err := checkConverged(ctx, st, id); err != nil {
			if bad++; bad <= 5 {
				t.Error(err)
			}
		}
	}
	if got, err := scanCount(ctx, st); err != nil {
		t.Fatalf("scan artists: %v", err)
	} else if got != n {
		t.Errorf("the artists table holds %d rows, want %d", got, n)
	}
	checkQueueEmpty(ctx, t, sq, queueURL, "queue")
	checkQueueEmpty(ctx, t, sq, dlqURL, "dead-letter queue")
	stats := fake.Stats()
	hist := map[int]int{}
	for _, id := range ids {
		c := stats.PerArtist[id]
		hist[c]++
		if c < 1 || c > 3 {
			t.Errorf("artist %s: %d successful Spotify calls for 3 messages, want 1 to 3", id, c)
		}
	}
	t.Logf("3 messages per artist, 2 workers: %d Spotify calls; artists by number of calls: %v", stats.Requests, hist)
}

// secretStandIn sits in front of the stand-in: its token endpoint rejects
// every request (401, echoing the credentials it was sent) until rejectFor
// has passed since the first one; its API answers the first 6 calls 503 and
// every call bearing the first token issued 401, both echoing the access
// token. It records every access token issued.
type secretStandIn struct {
	fake      *fakespotify.Server
	rejectFor time.Duration

	mu          sync.Mutex
	firstToken  time.Time
	rejected    int
	issued      []string
	apiCalls    int
	echoed5xx   int
	echoed401   int
	tokenCounts int
}

func (s *secretStandIn) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/api/token" {
		s.mu.Lock()
		s.tokenCounts++
		if s.firstToken.IsZero() {
			s.firstToken = time.Now()
		}
		reject := time.Since(s.firstToken) < s.rejectFor
		if reject {
			s.rejected++
		}
		s.mu.Unlock()
		if reject {
			body, _ := io.ReadAll(r.Body)
			user, pass, _ := r.BasicAuth()
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusUnauthorized)
			_ = json.NewEncoder(w).Encode(map[string]string{
				"error": "invalid_client",
				"error_description": fmt.Sprintf("rejected Authorization %q for %s:%s, form %s",
					r.Header.Get("Authorization"), user, pass, body),
			})
			return
		}
		rec := httptest.NewRecorder()
		s.fake.ServeHTTP(rec, r)
		var tok struct {
			AccessToken string `json:"access_token"`
		}
		if json.Unmarshal(rec.Body.Bytes(), &tok) == nil && tok.AccessToken != "" {
			s.mu.Lock()
			s.issued = append(s.issued, tok.AccessToken)
			s.mu.Unlock()
		}
		for k, v := range rec.Header() {
			w.Header()[k] = v
		}
		w.WriteHeader(rec.Code)
		_, _ = w.Write(rec.Body.Bytes())
		return
	}
	auth := r.Header.Get("Authorization")
	s.mu.Lock()
	s.apiCalls++
	echo5xx := s.apiCalls <= 6
	revoked := !echo5xx && len(s.issued) > 0 && auth == "Bearer "+s.issued[0]
	switch {
	case echo5xx:
		s.echoed5xx++
	case revoked:
		s.echoed401++
	}
	s.mu.Unlock()
	switch {
	case echo5xx:
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprintf(w, `{"error":{"status":503,"message":"upstream refused %s"}}`, auth)
	case revoked:
		// The first token issued has been revoked: every call bearing it is 401.
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusUnauthorized)
		fmt.Fprintf(w, `{"error":{"status":401,"message":"Invalid access token %s"}}`, strings.TrimPrefix(auth, "Bearer "))
	default:
		s.fake.ServeHTTP(w, r)
	}
}

func (s *secretStandIn) tokens() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.issued)
}

// awsFaults is a reverse proxy in front of an emulator that answers the
// first n calls of each operation in fail (by X-Amz-Target) with an error
// status and body, echoing the request's Authorization header.
type awsFaults struct {
	proxy *httputil.ReverseProxy
	mu    sync.Mutex
	fail  map[string]int
	sent  map[string]int
	error func(op string) (status int, errType string)
}

func newAWSFaults(t *testing.T, target string, fail map[string]int, errFor func(op string) (int, string)) *httptest.Server {
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	a := &awsFaults{proxy: httputil.NewSingleHostReverseProxy(u), fail: fail, sent: map[string]int{}, error: errFor}
	a.proxy.ErrorLog = log.New(io.Discard, "", 0) // requests abandoned when the worker stops
	srv := httptest.NewServer(a)
	t.Cleanup(srv.Close)
	return srv
}

func (a *awsFaults) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	target := r.Header.Get("X-Amz-Target")
	op := target[strings.LastIndex(target, ".")+1:]
	a.mu.Lock()
	fail := a.fail[op] > 0
	if fail {
		a.fail[op]--
		a.sent[op]++
	}
	a.mu.Unlock()
	if !fail {
		a.proxy.ServeHTTP(w, r)
		return
	}
	status, errType := a.error(op)
	w.Header().Set("Content-Type", "application/x-amz-json-1.0")
	w.Header().Set("x-amzn-query-error", errType+";Receiver")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{
		"__type":  errType,
		"message": "injected fault for " + r.Header.Get("Authorization"),
	})
}

// TestFaultSecretsNeverPrinted runs a worker with recognisable secrets
// through a token endpoint that rejects it (echoing the credentials), API
// 503s and 401s that echo the access token, SQS 500s and DynamoDB throttling,
// and searches everything it printed and served for the secrets.
func TestFaultSecretsNeverPrinted(t *testing.T) {
	t.Parallel()
	const n = 10
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	secret := fmt.Sprintf("SpotifySecret-%d-Zx9", os.Getpid())
	awsSecret := fmt.Sprintf("AwsSecretKey-%d-Qw7", os.Getpid())
	fake := fakespotify.New(fakespotify.Config{ClientID: clientID, ClientSecret: secret, Seed: 3})
	fake.FailNext(3, http.StatusBadGateway)
	standIn := &secretStandIn{fake: fake, rejectFor: 1500 * time.Millisecond}
	spotifySrv := httptest.NewServer(standIn)
	t.Cleanup(spotifySrv.Close)

	sqsProxy := newAWSFaults(t, testenv.SQSEndpoint(t), map[string]int{"ReceiveMessage": 6, "DeleteMessageBatch": 1},
		func(string) (int, string) { return http.StatusInternalServerError, "com.amazonaws.sqs#InternalError" })
	dynamoProxy := newAWSFaults(t, testenv.DynamoDBEndpoint(t), map[string]int{"BatchWriteItem": 6, "PutItem": 3},
		func(op string) (int, string) {
			if op == "PutItem" {
				return http.StatusInternalServerError, "com.amazonaws.dynamodb.v20120810#InternalServerError"
			}
			return http.StatusBadRequest, "com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException"
		})

	sq := testenv.SQSClient(t)
	queueURL, _ := createQueue(ctx, t, sq, uniqueName("secrets"), 30, 0)
	ids := artistIDs(9003, n)
	enqueue(t, queueURL, ids)
	table, st := trackTables(t, "trackssecret")

	env := workerEnv(t, spotifySrv.URL, queueURL, table)
	env["SPOTIFY_CLIENT_SECRET"] = secret
	env["AWS_SECRET_ACCESS_KEY"] = awsSecret
	env["AWS_ENDPOINT_URL_SQS"] = sqsProxy.URL
	env["AWS_ENDPOINT_URL_DYNAMODB"] = dynamoProxy.URL
	env["LOG_LEVEL"] = "debug"
	w := start(t, 3*time.Minute, env, "worker")
	base := "http://" + env["HTTP_ADDR"]

	var served strings.Builder
	scrape := func() {
		for _, path := range []string{"/metrics", "/readyz", "/healthz"} {
			if body, ok := httpBody(base + path); ok {
				served.WriteString(body)
			}
		}
	}
	var stored int
	if !waitFor(120*time.Second, func() bool {
		if _, exited := w.wait(0); exited {
			return true
		}
		scrape()
		var err error
		stored, err = countArtists(ctx, st, ids)
		return err == nil && stored == n && queueDepth(ctx, sq, queueURL) == 0
	}) {
		t.Fatalf("after 120s, %d of %d artists stored", stored, n)
	}
	if code, exited := w.wait(0); exited {
		t.Fatalf("the worker exited %d by itself", code)
	}
	scrape()
	stopWorker(t, w)
	checkArtists(ctx, t, st, ids)

	standIn.mu.Lock()
	rejected, e5, e401, tokenCalls := standIn.rejected, standIn.echoed5xx, standIn.echoed401, standIn.tokenCounts
	standIn.mu.Unlock()
	if rejected == 0 || e5 == 0 || e401 == 0 {
		t.Fatalf("the faults did not happen: %d token requests rejected, %d 503s and %d 401s echoing the token", rejected, e5, e401)
	}
	printed := map[string]string{"stdout": w.stdout.String(), "stderr": w.stderr.String(), "HTTP server": served.String()}
	if !strings.Contains(printed["stderr"], "invalid_client") || !strings.Contains(printed["HTTP server"], "sixpotify_") {
		t.Fatalf("the worker's log or metrics are not what the test expects to search\nstderr: %s", tail(printed["stderr"]))
	}
	basic := base64.StdEncoding.EncodeToString([]byte(url.QueryEscape(clientID) + ":" + url.QueryEscape(secret)))
	needles := map[string]string{
		"SPOTIFY_CLIENT_SECRET":                secret,
		"AWS_SECRET_ACCESS_KEY":                awsSecret,
		"the Basic credentials of token calls": basic,
	}
	for i, tok := range standIn.tokens() {
		needles[fmt.Sprintf("access token %d", i+1)] = tok
	}
	for what, needle := range needles {
		for where, text := range printed {
			if strings.Contains(text, needle) {
				line := text[max(0, strings.Index(text, needle)-300):]
				t.Errorf("%s shows %s: …%s", where, what, line[:min(len(line), 600)])
			}
		}
	}
	t.Logf("searched %d bytes of output and %d of HTTP answers for %d secrets: %d token requests (%d rejected), %d API 503s and %d 401s echoing the token",
		len(printed["stdout"])+len(printed["stderr"]), len(printed["HTTP server"]), len(needles), tokenCalls, rejected, e5, e401)
}

// httpBody GETs u and returns its body.
func httpBody(u string) (string, bool) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", false
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err == nil
}
