package workercmd_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/sixpotify/top-tracks/internal/fakespotify"
	"github.com/sixpotify/top-tracks/internal/queue/sqlitequeue"
	"github.com/sixpotify/top-tracks/internal/store/sqlitestore"
	"github.com/sixpotify/top-tracks/internal/testenv"
	"github.com/sixpotify/top-tracks/internal/testutil"
	"github.com/sixpotify/top-tracks/internal/workercmd"
	"github.com/sixpotify/top-tracks/producer"
)

func TestMain(m *testing.M) { testenv.MainNoLeaks(m) }

// secret is the client secret every test sets, to check it is never printed.
const secret = "Sup3rS3cretV4lue-do-not-print-7f3a"

// getenv returns a lookup of env as the whole environment.
func getenv(env map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := env[k]; return v, ok }
}

// withCredentials returns env with the Spotify credentials added.
func withCredentials(env map[string]string) map[string]string {
	out := map[string]string{"SPOTIFY_CLIENT_ID": "test-client", "SPOTIFY_CLIENT_SECRET": secret}
	for k, v := range env {
		out[k] = v
	}
	return out
}

// view is the part of a Config the contract fixes.
type view struct {
	QueueURL, BulkQueueURL, StoreURL, ArtistsTable string
	ClientID, APIURL, TokenURL, Market, HTTPAddr   string
	Rate                                           float64
	Concurrency                                    int
	FreshFor                                       time.Duration
}

func viewOf(c workercmd.Config) view {
	return view{
		QueueURL: c.QueueURL, BulkQueueURL: c.BulkQueueURL, StoreURL: c.StoreURL, ArtistsTable: c.ArtistsTable,
		ClientID: c.ClientID, APIURL: c.APIURL, TokenURL: c.TokenURL, Market: c.Market, HTTPAddr: c.HTTPAddr,
		Rate: c.Rate, Concurrency: c.Options.Concurrency, FreshFor: c.Options.FreshFor,
	}
}

var defaults = view{
	QueueURL:     "sqlite:sixpotify.db",
	StoreURL:     "sqlite:sixpotify.db",
	ArtistsTable: "artists",
	ClientID:     "test-client",
	APIURL:       "https://api.spotify.com/v1",
	TokenURL:     "https://accounts.spotify.com/api/token",
	Market:       "US",
	HTTPAddr:     ":9090",
	Rate:         workercmd.DefaultRate,
	Concurrency:  workercmd.DefaultConcurrency,
	FreshFor:     workercmd.DefaultFreshFor,
}

func TestLoad(t *testing.T) {
	tests := []struct {
		name string
		env  map[string]string
		args []string
		want func(v *view) // changes from the defaults
	}{
		{name: "defaults", want: func(*view) {}},
		{
			name: "environment",
			env: map[string]string{
				"QUEUE_URL": "https://sqs.eu-west-1.amazonaws.com/123456789012/chatbot", "BULK_QUEUE_URL": "sqlite:q.db?queue=bulk",
				"STORE_URL": "dynamodb:top_tracks", "ARTISTS_TABLE": "top_artists", "SPOTIFY_MARKET": "se",
				"SPOTIFY_RATE": "5", "WORKER_CONCURRENCY": "3", "FRESH_FOR": "24h", "HTTP_ADDR": "127.0.0.1:8080",
				"SPOTIFY_API_URL": "http://127.0.0.1:1/v1", "SPOTIFY_TOKEN_URL": "http://127.0.0.1:1/api/token",
			},
			want: func(v *view) {
				v.QueueURL, v.BulkQueueURL = "https://sqs.eu-west-1.amazonaws.com/123456789012/chatbot", "sqlite:q.db?queue=bulk"
				v.StoreURL, v.ArtistsTable, v.Market = "dynamodb:top_tracks", "top_artists", "SE"
				v.Rate, v.Concurrency, v.FreshFor, v.HTTPAddr = 5, 3, 24*time.Hour, "127.0.0.1:8080"
				v.APIURL, v.TokenURL = "http://127.0.0.1:1/v1", "http://127.0.0.1:1/api/token"
			},
		},
		{
			name: "flags override the environment",
			env:  map[string]string{"QUEUE_URL": "sqlite:env.db", "SPOTIFY_RATE": "5", "WORKER_CONCURRENCY": "3"},
			args: []string{"--queue-url", "sqlite:flag.db", "--spotify-rate=2.5", "--worker-concurrency", "7"},
			want: func(v *view) {
				v.QueueURL, v.Rate, v.Concurrency = "sqlite:flag.db", 2.5, 7
			},
		},
		{
			name: "flags override the defaults",
			args: []string{"--store-url", "dynamodb:tracks", "--spotify-client-id", "flag-client"},
			want: func(v *view) { v.StoreURL, v.ClientID = "dynamodb:tracks", "flag-client" },
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			cfg, err := workercmd.Load(tt.args, getenv(withCredentials(tt.env)), &out)
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			want := defaults
			tt.want(&want)
			if diff := cmp.Diff(viewOf(cfg), want); diff != "" {
				t.Errorf("Config (-got +want):\n%s", diff)
			}
			if cfg.ClientSecret != secret {
				t.Errorf("ClientSecret: got %q, want the environment's", cfg.ClientSecret)
			}
			if out.Len() > 0 {
				t.Errorf("output: got %q, want nothing", out.String())
			}
		})
	}
}

// variables returns the variable each line of err names first, in order.
func variables(t *testing.T, err error) []string {
	t.Helper()
	if err == nil {
		return nil
	}
	var vars []string
	for _, line := range strings.Split(err.Error(), "\n") {
		v, _, ok := strings.Cut(line, " (--")
		if !ok || strings.ToUpper(v) != v || strings.ContainsAny(v, " :") {
			t.Errorf("line %q does not start with the variable and its flag", line)
			continue
		}
		vars = append(vars, v)
	}
	return vars
}

func TestLoadReportsEveryProblemAtOnce(t *testing.T) {
	env := map[string]string{
		"SPOTIFY_CLIENT_SECRET": "",
		"FRESH_FOR":             "soon",
		"SPOTIFY_RATE":          "fast",
		"STORE_URL":             "postgres://db/tracks",
	}
	_, err := workercmd.Load(nil, getenv(env), io.Discard)
	got := variables(t, err)
	slices.Sort(got)
	want := []string{"FRESH_FOR", "SPOTIFY_CLIENT_ID", "SPOTIFY_CLIENT_SECRET", "SPOTIFY_RATE", "STORE_URL"}
	if diff := cmp.Diff(got, want); diff != "" {
		t.Errorf("variables named by the error (-got +want):\n%s\nerror:\n%v", diff, err)
	}
}

func TestLoadBadValue(t *testing.T) {
	tests := []struct {
		env, value string
	}{
		{"QUEUE_URL", "ftp://x"},
		{"QUEUE_URL", "sqlite:"},
		{"BULK_QUEUE_URL", "sqs://x"},
		{"BULK_QUEUE_URL", "sqlite:sixpotify.db"}, // the same queue as QUEUE_URL
		{"STORE_URL", "postgres://db/tracks"},
		{"STORE_URL", "dynamodb:x"},
		{"STORE_URL", "sqlite:x.db?queue=bulk"},
		{"FRESH_FOR", "soon"},
		{"FRESH_FOR", "24"},
		{"RETAIN_FOR", "30 days"},
		{"RETAIN_FOR", "30m"},
		{"RETAIN_FOR", "-720h"},
		{"SPOTIFY_RATE", "fast"},
		{"SPOTIFY_RATE", "0"},
		{"SPOTIFY_RATE", "-1"},
		{"SPOTIFY_RATE", "NaN"},
		{"SPOTIFY_RATE", "Inf"},
		{"WORKER_CONCURRENCY", "0"},
		{"WORKER_CONCURRENCY", "many"},
		{"SPOTIFY_MARKET", "USA"},
		{"SPOTIFY_API_URL", "api.spotify.com/v1"},
		{"SPOTIFY_TOKEN_URL", "ftp://accounts.spotify.com"},
		{"RECEIVE_WAIT_TIME", "30s"},
		{"DRAIN_TIMEOUT", "25s"},
		{"UNTIL_EMPTY", "maybe"},
		{"LOG_LEVEL", "loud"},
	}
	for _, tt := range tests {
		t.Run(tt.env+"="+tt.value, func(t *testing.T) {
			_, err := workercmd.Load(nil, getenv(withCredentials(map[string]string{tt.env: tt.value})), io.Discard)
			if diff := cmp.Diff(variables(t, err), []string{tt.env}); diff != "" {
				t.Errorf("variables named by the error (-got +want):\n%s\nerror:\n%v", diff, err)
			}
			// The flag is checked too: a value of the wrong type is a
			// one-line usage error naming the flag; a bad value of the
			// right type names the variable and its flag.
			flagName := "--" + strings.ReplaceAll(strings.ToLower(tt.env), "_", "-")
			flagArgs := []string{flagName + "=" + tt.value}
			_, err = workercmd.Load(flagArgs, getenv(withCredentials(nil)), io.Discard)
			if err == nil {
				t.Fatalf("Load(%s): no error", flagArgs[0])
			}
			msg := err.Error()
			if strings.Contains(msg, "\n") || !(strings.HasPrefix(msg, flagName+": ") || strings.HasPrefix(msg, tt.env+" ("+flagName+"): ")) {
				t.Errorf("Load(%s): error %q is not one line naming %s", flagArgs[0], msg, flagName)
			}
		})
	}
}

type result struct {
	code           int
	stdout, stderr string
}

// run runs the command and fails the test if it has not returned after
// limit.
func run(t *testing.T, ctx context.Context, limit time.Duration, env map[string]string, args ...string) result {
	t.Helper()
	var stdout, stderr testutil.Buffer
	done := make(chan int, 1)
	go func() { done <- workercmd.Run(ctx, args, getenv(env), &stdout, &stderr) }()
	select {
	case code := <-done:
		return result{code: code, stdout: stdout.String(), stderr: stderr.String()}
	case <-time.After(limit):
		t.Fatalf("Run %q did not return within %v\nstderr: %s", args, limit, stderr.String())
		return result{}
	}
}

// queueLen opens the embedded queue at path, as a worker left it, and
// returns its visible, in-flight and dead messages.
func queueLen(t *testing.T, path string) (visible, inflight, dead int) {
	t.Helper()
	q, err := sqlitequeue.Open(t.Context(), path, sqlitequeue.DefaultName, sqlitequeue.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	visible, inflight, dead, err = q.Len(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return visible, inflight, dead
}

func TestRunBadConfig(t *testing.T) {
	env := map[string]string{
		"SPOTIFY_CLIENT_SECRET": secret,
		"STORE_URL":             "postgres://db/tracks",
		"SPOTIFY_RATE":          "-3",
		"HTTP_ADDR":             "127.0.0.1:0",
	}
	got := run(t, t.Context(), 10*time.Second, env)
	if got.code != 2 {
		t.Errorf("exit code: got %d, want 2", got.code)
	}
	if got.stdout != "" {
		t.Errorf("stdout: got %q, want nothing", got.stdout)
	}
	var vars []string
	for _, line := range strings.Split(strings.TrimSuffix(got.stderr, "\n"), "\n") {
		rest, ok := strings.CutPrefix(line, "worker: ")
		if !ok {
			t.Errorf("stderr line %q does not start with %q", line, "worker: ")
			continue
		}
		v, _, _ := strings.Cut(rest, " ")
		vars = append(vars, v)
	}
	slices.Sort(vars)
	if diff := cmp.Diff(vars, []string{"SPOTIFY_CLIENT_ID", "SPOTIFY_RATE", "STORE_URL"}); diff != "" {
		t.Errorf("variables named on stderr (-got +want):\n%s\nstderr:\n%s", diff, got.stderr)
	}
}

func TestRunHelp(t *testing.T) {
	for _, args := range [][]string{{"--help"}, {"-h"}, {"help"}, {"help", "healthcheck"}, {"healthcheck", "--help"}, {"--queue-url=sqlite:x.db", "--help"}} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			got := run(t, t.Context(), 10*time.Second, map[string]string{"HTTP_ADDR": "127.0.0.1:1"}, args...)
			if got.code != 0 {
				t.Errorf("exit code: got %d, want 0\nstderr: %s", got.code, got.stderr)
			}
			if !strings.HasPrefix(got.stdout, "Usage: worker") || got.stderr != "" {
				t.Errorf("got stdout %q, stderr %q; want the usage on stdout only", got.stdout, got.stderr)
			}
			if want := slices.Contains(args, "healthcheck"); strings.HasPrefix(got.stdout, "Usage: worker healthcheck") != want {
				t.Errorf("help of %v: got %q", args, strings.SplitN(got.stdout, "\n", 2)[0])
			}
		})
	}
}

func TestLoadHelp(t *testing.T) {
	var out bytes.Buffer
	_, err := workercmd.Load([]string{"--help"}, getenv(nil), &out)
	if !errors.Is(err, workercmd.ErrHelp) {
		t.Errorf("Load(--help): got %v, want ErrHelp", err)
	}
	// Every variable of the contract is listed as a flag.
	for _, env := range []string{"QUEUE_URL", "BULK_QUEUE_URL", "STORE_URL", "ARTISTS_TABLE", "FRESH_FOR",
		"SPOTIFY_CLIENT_ID", "SPOTIFY_CLIENT_SECRET_FILE", "SPOTIFY_API_URL", "SPOTIFY_TOKEN_URL", "SPOTIFY_MARKET",
		"SPOTIFY_RATE", "WORKER_CONCURRENCY", "HTTP_ADDR"} {
		flagName := "--" + strings.ReplaceAll(strings.ToLower(env), "_", "-")
		if !strings.Contains(out.String(), flagName) || !strings.Contains(out.String(), "($"+env+")") {
			t.Errorf("usage does not list %s (env %s):\n%s", flagName, env, out.String())
		}
	}
}

func TestSecretNeverPrinted(t *testing.T) {
	tests := []struct {
		name string
		env  map[string]string
		args []string
	}{
		{name: "bad configuration", env: map[string]string{"STORE_URL": "postgres://x", "FRESH_FOR": "soon"}},
		{name: "secret given as a flag with a bad configuration", env: map[string]string{"SPOTIFY_CLIENT_SECRET": ""},
			args: []string{"--spotify-client-secret", secret, "--store-url", "postgres://x"}},
		{name: "--help", args: []string{"--help"}},
		{name: "unknown flag", args: []string{"--nope"}},
		{name: "bad flag value", args: []string{"--spotify-rate", "fast"}},
		{name: "unexpected argument", args: []string{"frobnicate"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := run(t, t.Context(), 10*time.Second, withCredentials(tt.env), tt.args...)
			if strings.Contains(got.stdout+got.stderr, secret) {
				t.Errorf("the client secret was printed:\nstdout: %s\nstderr: %s", got.stdout, got.stderr)
			}
		})
	}
}

// world is a worker's surroundings: an embedded queue and store in one file,
// and a Spotify stand-in.
type world struct {
	path    string
	spotify *fakespotify.Server
	env     map[string]string
}

// listen sets HTTP_ADDR to a free loopback port and returns the server's
// base URL there.
func (w *world) listen(t *testing.T) (base string) {
	t.Helper()
	port, err := testenv.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	w.env["HTTP_ADDR"] = "127.0.0.1:" + strconv.Itoa(port)
	return "http://" + w.env["HTTP_ADDR"]
}

func newWorld(t *testing.T) *world {
	t.Helper()
	path := filepath.Join(t.TempDir(), "sixpotify.db")
	fs := fakespotify.New(fakespotify.Config{ClientID: "test-client", ClientSecret: secret})
	srv := httptest.NewServer(fs)
	t.Cleanup(srv.Close)
	return &world{
		path:    path,
		spotify: fs,
		env: withCredentials(map[string]string{
			"QUEUE_URL":         "sqlite:" + path,
			"STORE_URL":         "sqlite:" + path,
			"SPOTIFY_API_URL":   srv.URL + "/v1",
			"SPOTIFY_TOKEN_URL": srv.URL + "/api/token",
			"SPOTIFY_RATE":      "100",
			"RECEIVE_WAIT_TIME": "1s",
			"HTTP_ADDR":         "127.0.0.1:0",
			"LOG_FORMAT":        "json",
			"LOG_LEVEL":         "debug",
		}),
	}
}

func (w *world) enqueue(t *testing.T, artists ...string) {
	t.Helper()
	p, err := producer.Open(t.Context(), w.env["QUEUE_URL"], producer.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	sum, err := p.Enqueue(t.Context(), artists...)
	if err == nil {
		err = sum.Err()
	}
	if err != nil || sum.Enqueued != len(artists) {
		t.Fatalf("enqueue: %+v, %v", sum, err)
	}
}

var artists = []string{
	"0TnOYISbd1XYRBk9myaseg", "06HL4z0CvFAxyc27GXpf02", "3TVXtAsR1Inumwj472S9r4",
	"1Xyo4u8uXC1ZmMpatF05PJ", "4q3ewBCX7sLwd24euuV69X",
}

func TestRunUntilEmpty(t *testing.T) {
	w := newWorld(t)
	w.enqueue(t, artists...)
	env := w.env
	env["UNTIL_EMPTY"] = "true"

	got := run(t, t.Context(), 60*time.Second, env)
	if got.code != 0 {
		t.Fatalf("exit code: got %d, want 0\nstderr: %s", got.code, got.stderr)
	}
	if strings.Contains(got.stdout+got.stderr, secret) {
		t.Errorf("the client secret was logged:\n%s", got.stderr)
	}
	// One line of effective settings at start, one of counts at stop.
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(`"msg":"worker configured","version":"[^"]+","queue_url":"sqlite:[^"]+","bulk_queue_url":"","store_url":"sqlite:[^"]+",.*"spotify_rate":\d+,.*"concurrency":16,.*"fresh_for":"1h0m0s"`),
		regexp.MustCompile(`"msg":"worker counts at stop","artists_done":` + strconv.Itoa(len(artists)) + `,"artists_skipped":0,"artists_not_found":0,"messages_failed":0,"spotify_429s":0,`),
	} {
		if !want.MatchString(got.stderr) {
			t.Errorf("stderr has no line matching %s:\n%s", want, got.stderr)
		}
	}
	if strings.Contains(got.stderr, "is not set: ") {
		t.Errorf("a warning of a default with QUEUE_URL and STORE_URL set:\n%s", got.stderr)
	}

	st, err := sqlitestore.Open(t.Context(), w.path)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	for _, a := range artists {
		rows, err := st.Tracks(t.Context(), a)
		if err != nil {
			t.Fatalf("Tracks(%s): %v", a, err)
		}
		var gotIDs, wantIDs []string
		for _, r := range rows {
			gotIDs = append(gotIDs, strconv.Itoa(r.Rank)+" "+r.ID+" "+r.Market)
		}
		for i, tr := range fakespotify.Tracks(a, 0, 10) {
			wantIDs = append(wantIDs, strconv.Itoa(i+1)+" "+tr.ID+" US")
		}
		if diff := cmp.Diff(gotIDs, wantIDs); diff != "" {
			t.Errorf("rows of %s: rank, track and market (-got +want):\n%s", a, diff)
		}
	}
	visible, inflight, dead := queueLen(t, w.path)
	if diff := cmp.Diff([]int{visible, inflight, dead}, []int{0, 0, 0}); diff != "" {
		t.Errorf("queue length [visible inflight dead] after the run (-got +want):\n%s", diff)
	}
}

func TestHealthcheck(t *testing.T) {
	serve := func(status int) string {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path != "/healthz" {
				http.NotFound(w, r)
				return
			}
			w.WriteHeader(status)
		}))
		t.Cleanup(srv.Close)
		return srv.Listener.Addr().String()
	}
	closedPort, err := testenv.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	_, okPort, _ := net.SplitHostPort(serve(http.StatusOK))
	tests := []struct {
		name, addr string
		want       int
	}{
		{"healthy", serve(http.StatusOK), 0},
		{"healthy on :PORT, as HTTP_ADDR is usually given", ":" + okPort, 0},
		{"healthy on 0.0.0.0:PORT", "0.0.0.0:" + okPort, 0},
		{"unhealthy", serve(http.StatusServiceUnavailable), 1},
		{"nothing listening", "127.0.0.1:" + strconv.Itoa(closedPort), 1},
		{"HTTP_ADDR is not an address", "localhost", 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := run(t, t.Context(), 10*time.Second, map[string]string{"HTTP_ADDR": tt.addr}, "healthcheck")
			if got.code != tt.want {
				t.Errorf("exit code: got %d, want %d\nstderr: %s", got.code, tt.want, got.stderr)
			}
			if tt.want != 0 && got.stderr == "" {
				t.Errorf("stderr: got nothing, want why the check failed")
			}
		})
	}
}

// TestServe runs the worker with its health and metrics server, then stops
// it as SIGTERM does (by ending the context).
func TestServe(t *testing.T) {
	w := newWorld(t)
	w.enqueue(t, artists[0])
	base := w.listen(t)

	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var stderr testutil.Buffer
	done := make(chan int, 1)
	go func() { done <- workercmd.Run(ctx, nil, getenv(w.env), io.Discard, &stderr) }()

	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 5 * time.Second}
	get := func(path string) (int, string) {
		resp, err := client.Get(base + path)
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	// poll asks path until ok says the answer is right, or fails the test
	// after 20 seconds.
	poll := func(path string, ok func(status int, body string) bool) string {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for {
			status, body := get(path)
			if ok(status, body) {
				return body
			}
			select {
			case code := <-done:
				t.Fatalf("Run returned %d while polling %s\nstderr: %s", code, path, stderr.String())
			case <-time.After(50 * time.Millisecond):
			}
			if time.Now().After(deadline) {
				t.Fatalf("GET %s: last answer %d %q\nstderr: %s", path, status, body, stderr.String())
			}
		}
	}
	poll("/healthz", func(status int, _ string) bool { return status == http.StatusOK })
	poll("/readyz", func(status int, _ string) bool { return status == http.StatusOK })
	metrics := poll("/metrics", func(status int, body string) bool {
		return status == http.StatusOK && strings.Contains(body, "sixpotify_messages_received_total")
	})
	if strings.Contains(metrics, secret) {
		t.Errorf("the client secret is in /metrics")
	}
	if status, body := get("/nope"); status != http.StatusNotFound {
		t.Errorf("GET /nope: got %d %q, want 404", status, body)
	}

	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Errorf("exit code after the stop: got %d, want 0\nstderr: %s", code, stderr.String())
		}
	case <-time.After(25 * time.Second):
		t.Fatalf("Run did not return within 25s of the stop\nstderr: %s", stderr.String())
	}
	if strings.Contains(stderr.String(), secret) {
		t.Errorf("the client secret was logged")
	}
	// The server is gone with the worker.
	if status, _ := get("/healthz"); status != 0 {
		t.Errorf("GET /healthz after the stop: got %d, want no answer", status)
	}
}

// TestAlertingSeriesExistAtStart scrapes /metrics of an idle worker: every
// series the README tells operators to alert on is there at 0, so that an
// alert on its rate works before the first error.
func TestAlertingSeriesExistAtStart(t *testing.T) {
	w := newWorld(t)
	base := w.listen(t)
	w.env["BULK_QUEUE_URL"] = w.env["QUEUE_URL"] + "?queue=bulk"
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var stderr testutil.Buffer
	done := make(chan int, 1)
	go func() { done <- workercmd.Run(ctx, nil, getenv(w.env), io.Discard, &stderr) }()
	defer func() {
		cancel()
		<-done
	}()
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 5 * time.Second}
	var body string
	for deadline := time.Now().Add(20 * time.Second); ; {
		if resp, err := client.Get(base + "/metrics"); err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if body = string(b); resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no /metrics within 20s; stderr: %s", stderr.String())
		}
		select {
		case code := <-done:
			done <- code
			t.Fatalf("Run returned %d; stderr: %s", code, stderr.String())
		case <-time.After(50 * time.Millisecond):
		}
	}
	for _, series := range []string{
		`sixpotify_receive_errors_total{lane="chatbot"} 0`,
		`sixpotify_receive_errors_total{lane="bulk"} 0`,
		`sixpotify_message_delete_failures_total{lane="chatbot"} 0`,
		`sixpotify_messages_processed_total{lane="chatbot",outcome="poison"} 0`,
		`sixpotify_messages_processed_total{lane="bulk",outcome="released"} 0`,
		`sixpotify_spotify_retries_total{cause="rate_limited"} 0`,
		`sixpotify_spotify_token_requests_total{result="error"} 0`,
		`sixpotify_artists_in_flight{lane="chatbot"} 0`,
		`sixpotify_spotify_cooldown_remaining_seconds 0`,
	} {
		if !strings.Contains(body, "\n"+series+"\n") {
			t.Errorf("/metrics at start has no %s", series)
		}
	}
	if !regexp.MustCompile(`\nsixpotify_build_info\{goversion="go[^"]+",version="[^"]+"\} 1\n`).MatchString(body) {
		t.Errorf("/metrics has no sixpotify_build_info{goversion,version} 1")
	}
}

// TestCommandLines runs the worker's command lines a user types, each
// with the exit code and the exact output.
func TestCommandLines(t *testing.T) {
	dir := t.TempDir()
	notADir := filepath.Join(dir, "file")
	if err := os.WriteFile(notADir, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	secretFile := filepath.Join(dir, "secret")
	if err := os.WriteFile(secretFile, []byte(secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	queue := "sqlite:" + filepath.Join(dir, "q.db")
	tests := []struct {
		name   string
		env    map[string]string // added to the credentials and QUEUE_URL/STORE_URL in dir
		args   []string
		code   int
		stdout *regexp.Regexp // nil: nothing
		stderr string         // exactly
	}{
		{name: "version", args: []string{"--version"}, stdout: regexp.MustCompile(`^worker \S+ go\S+\n$`)},
		{name: "version after a flag", args: []string{"--until-empty", "--version"}, stdout: regexp.MustCompile(`^worker \S+ go\S+\n$`)},
		{
			name: "a secret as a flag", args: []string{"--spotify-client-secret=hunter2"}, code: 2,
			stderr: "worker: --spotify-client-secret: secrets are never taken from a flag (ps shows flags to every user); set SPOTIFY_CLIENT_SECRET or SPOTIFY_CLIENT_SECRET_FILE\n",
		},
		{
			name: "a secret as a flag with its value apart", args: []string{"--spotify-client-secret", "hunter2"}, code: 2,
			stderr: "worker: --spotify-client-secret: secrets are never taken from a flag (ps shows flags to every user); set SPOTIFY_CLIENT_SECRET or SPOTIFY_CLIENT_SECRET_FILE\n",
		},
		{name: "unknown flag", args: []string{"--nope"}, code: 2, stderr: "worker: unknown flag --nope (see 'worker --help')\n"},
		{name: "a bool flag given a word", args: []string{"--until-empty=maybe"}, code: 2,
			stderr: "worker: --until-empty: bool value must be true, 1, yes, false, 0 or no but got \"maybe\" (see 'worker --help')\n"},
		{name: "a flag with no value", args: []string{"--worker-concurrency"}, code: 2,
			stderr: "worker: --worker-concurrency: needs a value (see 'worker --help')\n"},
		{name: "an int flag given a word", args: []string{"--worker-concurrency", "many"}, code: 2,
			stderr: "worker: --worker-concurrency: expected a valid 64 bit int but got \"many\" (see 'worker --help')\n"},
		{name: "a bad variable", env: map[string]string{"RECEIVE_WAIT_TIME": "long"}, code: 2,
			stderr: "worker: RECEIVE_WAIT_TIME (--receive-wait-time): \"long\" is not a duration (examples: 30s, 1h, 24h)\n"},
		{name: "an empty QUEUE_URL is not the default", env: map[string]string{"QUEUE_URL": ""}, code: 2,
			stderr: "worker: QUEUE_URL (--queue-url): is empty; unset it for the embedded default sqlite:sixpotify.db\n"},
		{name: "secret and secret file", env: map[string]string{"SPOTIFY_CLIENT_SECRET_FILE": secretFile}, code: 2,
			stderr: "worker: SPOTIFY_CLIENT_SECRET_FILE (--spotify-client-secret-file): SPOTIFY_CLIENT_SECRET is set too: set one of them\n"},
		{name: "a secret file that is missing", env: map[string]string{"SPOTIFY_CLIENT_SECRET": "", "SPOTIFY_CLIENT_SECRET_FILE": filepath.Join(dir, "none")}, code: 2,
			stderr: "worker: SPOTIFY_CLIENT_SECRET_FILE (--spotify-client-secret-file): open " + filepath.Join(dir, "none") + ": no such file or directory\n"},
		{name: "help command", args: []string{"help", "healthcheck"}, stdout: regexp.MustCompile(`^Usage: worker healthcheck \[flags\]\n`)},
		{name: "healthcheck bad flag", args: []string{"healthcheck", "--nope"}, code: 2, stderr: "worker: unknown flag --nope (see 'worker healthcheck --help')\n"},
		{name: "an unexpected argument", args: []string{"frobnicate"}, code: 2, stderr: "worker: unexpected argument frobnicate (see 'worker run --help')\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := withCredentials(map[string]string{"QUEUE_URL": queue, "STORE_URL": queue, "HTTP_ADDR": ""})
			for k, v := range tt.env {
				env[k] = v
			}
			got := run(t, t.Context(), 20*time.Second, env, tt.args...)
			if got.code != tt.code {
				t.Errorf("exit code: got %d, want %d\nstderr: %s", got.code, tt.code, got.stderr)
			}
			if got.stderr != tt.stderr {
				t.Errorf("stderr:\ngot  %q\nwant %q", got.stderr, tt.stderr)
			}
			if tt.stdout == nil && got.stdout != "" || tt.stdout != nil && !tt.stdout.MatchString(got.stdout) {
				t.Errorf("stdout: got %q, want a match of %v", got.stdout, tt.stdout)
			}
			if strings.Contains(got.stdout+got.stderr, "hunter2") || strings.Contains(got.stdout+got.stderr, secret) {
				t.Errorf("a secret was printed")
			}
		})
	}
	// A store the worker cannot open is a configuration error, naming the variable.
	env := withCredentials(map[string]string{"QUEUE_URL": queue, "STORE_URL": "sqlite:" + notADir + "/x.db", "HTTP_ADDR": "", "LOG_FORMAT": "text"})
	got := run(t, t.Context(), 20*time.Second, env)
	if got.code != 2 || !strings.Contains(got.stderr, `err="STORE_URL (--store-url): `) {
		t.Errorf("a store under a file: exit %d, stderr %q; want 2 and a line naming STORE_URL", got.code, got.stderr)
	}
}

func TestEmptyAndUnset(t *testing.T) {
	cfg, err := workercmd.Load(nil, getenv(withCredentials(map[string]string{"HTTP_ADDR": ""})), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.HTTPAddr != "" {
		t.Errorf("HTTP_ADDR= gives %q, want no server", cfg.HTTPAddr)
	}
	cfg, err = workercmd.Load(nil, getenv(withCredentials(nil)), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.HTTPAddr != ":9090" || !cfg.QueueDefaulted || !cfg.StoreDefaulted {
		t.Errorf("unset: HTTP_ADDR %q, QueueDefaulted %v, StoreDefaulted %v; want :9090 and both defaulted", cfg.HTTPAddr, cfg.QueueDefaulted, cfg.StoreDefaulted)
	}
	cfg, err = workercmd.Load([]string{"--queue-url=sqlite:q.db"}, getenv(withCredentials(map[string]string{"STORE_URL": "sqlite:s.db"})), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.QueueDefaulted || cfg.StoreDefaulted {
		t.Errorf("set by a flag and a variable: QueueDefaulted %v, StoreDefaulted %v; want neither", cfg.QueueDefaulted, cfg.StoreDefaulted)
	}
	// The secret from a file, its trailing newline dropped.
	file := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(file, []byte("from-a-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err = workercmd.Load(nil, getenv(map[string]string{"SPOTIFY_CLIENT_ID": "id", "SPOTIFY_CLIENT_SECRET_FILE": file}), io.Discard)
	if err != nil || cfg.ClientSecret != "from-a-file" {
		t.Errorf("SPOTIFY_CLIENT_SECRET_FILE: secret %q, err %v; want from-a-file", cfg.ClientSecret, err)
	}
}

// TestWrongCredentialsFailReadinessAtOnce: with a wrong secret and an empty
// queue, /readyz fails and the log says why, before any message arrives.
func TestWrongCredentialsFailReadinessAtOnce(t *testing.T) {
	w := newWorld(t)
	w.env["SPOTIFY_CLIENT_SECRET"] = "not-the-secret"
	base := w.listen(t)
	ctx, cancel := context.WithCancel(t.Context())
	var stderr testutil.Buffer
	done := make(chan int, 1)
	go func() { done <- workercmd.Run(ctx, nil, getenv(w.env), io.Discard, &stderr) }()
	defer func() { cancel(); <-done }()
	client := &http.Client{Timeout: 5 * time.Second}
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		resp, err := client.Get(base + "/readyz")
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusServiceUnavailable && strings.Contains(string(b), "refused") {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz never said the credentials are refused\nstderr: %s", stderr.String())
		}
	}
	if n := strings.Count(stderr.String(), "Spotify refuses this app's calls"); n != 1 {
		t.Errorf("the refusal was logged %d times; want once\nstderr: %s", n, stderr.String())
	}
	if strings.Contains(stderr.String(), "not-the-secret") {
		t.Error("the secret was logged")
	}
	if st := w.spotify.Stats(); st.Requests != 0 {
		t.Errorf("%d API requests with no message queued; want none", st.Requests)
	}
}
