package producercmd_test

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	gocmp "github.com/google/go-cmp/cmp"

	"github.com/sixpotify/top-tracks/internal/fakespotify"
	"github.com/sixpotify/top-tracks/internal/fakespotify/fakespotifytest"
	"github.com/sixpotify/top-tracks/internal/gate"
	"github.com/sixpotify/top-tracks/internal/queue/sqlitequeue"
	"github.com/sixpotify/top-tracks/internal/queue/sqsqueue"
	"github.com/sixpotify/top-tracks/internal/spotify"
	"github.com/sixpotify/top-tracks/internal/store"
	"github.com/sixpotify/top-tracks/internal/store/dynamostore"
	"github.com/sixpotify/top-tracks/internal/store/sqlitestore"
	"github.com/sixpotify/top-tracks/internal/testenv"
	"github.com/sixpotify/top-tracks/worker"
)

// unknown is an artist the stand-in answers 404.
const unknown = "0000aaaaaaaaaaaaaaaaaa"

// startWorker runs a real worker on q and st, with the Spotify stand-in,
// until the test ends.
func startWorker(t *testing.T, q worker.Queue, st worker.Store) {
	t.Helper()
	g := gate.New(gate.Options{})
	_, client := fakespotifytest.Start(t, fakespotify.Config{}, spotify.Config{Gate: g})
	wk, err := worker.New(q, nil, st, client, worker.Options{WaitTime: 200 * time.Millisecond, Gate: g})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- wk.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("worker Run: %v", err)
		}
	})
}

// embedded returns the environment of the embedded default in a fresh
// file, the file's path, and the store in it.
func embedded(t *testing.T) (map[string]string, string, *sqlitestore.Store) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "sixpotify.db")
	st, err := sqlitestore.Open(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return map[string]string{"QUEUE_URL": "sqlite:" + path, "STORE_URL": "sqlite:" + path}, path, st
}

// trackLines are the text lines of an artist's tracks as the stand-in
// answers them.
func trackLines(id string) []string {
	var out []string
	for i, tr := range fakespotify.Tracks(id, 0, 10) {
		out = append(out, fmt.Sprintf("%4d  %s  (popularity %d)", i+1, tr.Name, *tr.Popularity))
	}
	return out
}

// blocks splits the text output of enqueue --wait into each artist's lines,
// by artist ID, and returns the last line apart.
func blocks(t *testing.T, stdout string) (map[string][]string, string) {
	t.Helper()
	ls := lines(stdout)
	if len(ls) == 0 {
		t.Fatal("no output")
	}
	out := map[string][]string{}
	cur := ""
	for _, l := range ls[:len(ls)-1] {
		if id, _, ok := strings.Cut(l, ": "); ok && !strings.HasPrefix(l, " ") {
			cur = id
		}
		out[cur] = append(out[cur], l)
	}
	return out, ls[len(ls)-1]
}

func TestEnqueueWaitEmbedded(t *testing.T) {
	env, path, st := embedded(t)
	q, err := sqlitequeue.Open(t.Context(), path, sqlitequeue.DefaultName, sqlitequeue.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { q.Close() })
	// One artist fresh in the store already: printed from it.
	err = st.Save(t.Context(), store.Result{ArtistID: weeknd, Market: "US", Status: store.StatusOK,
		FetchedAt: time.Now().Add(-time.Minute).UTC(), Tracks: fakespotify.Tracks(weeknd, 0, 10)})
	if err != nil {
		t.Fatal(err)
	}
	startWorker(t, q, st)

	got := run(t, env, "", "enqueue", "--wait", pitbull, "https://open.spotify.com/artist/"+unknown, "spotify:artist:"+weeknd, pitbull)
	if got.code != 0 {
		t.Fatalf("exit code %d, want 0\nstdout:\n%s\nstderr:\n%s", got.code, got.stdout, got.stderr)
	}
	if got.stderr != "" {
		t.Errorf("stderr: %q, want nothing", got.stderr)
	}
	byArtist, last := blocks(t, got.stdout)
	header := regexp.MustCompile(`^` + pitbull + `: 10 tracks, market US, fetched \d{4}-\d\d-\d\dT\S+Z \(fetched now\)$`)
	if b := byArtist[pitbull]; len(b) != 11 || !header.MatchString(b[0]) {
		t.Errorf("%s's lines:\n%s\nwant a header matching %s and ten tracks", pitbull, strings.Join(b, "\n"), header)
	} else if diff := gocmp.Diff(b[1:], trackLines(pitbull)); diff != "" {
		t.Errorf("%s's tracks (-got +want):\n%s", pitbull, diff)
	}
	if b := byArtist[weeknd]; len(b) != 11 || !strings.HasSuffix(b[0], "(from the store)") {
		t.Errorf("%s's lines:\n%s\nwant ten tracks from the store", weeknd, strings.Join(b, "\n"))
	}
	nf := regexp.MustCompile(`^` + unknown + `: not_found: Spotify does not know this artist \(asked \S+Z\)$`)
	if b := byArtist[unknown]; len(b) != 1 || !nf.MatchString(b[0]) {
		t.Errorf("%s's lines:\n%s\nwant one matching %s", unknown, strings.Join(b, "\n"), nf)
	}
	summary := regexp.MustCompile(`^answered 3 of 3 artists in \S+ \(1 from the store, 2 fetched now\); 0 not answered, 0 rejected$`)
	if !summary.MatchString(last) {
		t.Errorf("last line %q, want one matching %s", last, summary)
	}
}

func TestEnqueueWaitNoAnswer(t *testing.T) {
	for _, asJSON := range []bool{false, true} {
		t.Run(fmt.Sprintf("json=%t", asJSON), func(t *testing.T) {
			env, path, _ := embedded(t) // no worker: nothing answers
			args := []string{"enqueue", "--wait", "--wait-timeout", "300ms", pitbull, "bogus"}
			if asJSON {
				args = append(args, "--json")
			}
			got := run(t, env, "", args...)
			if got.code != 1 {
				t.Errorf("exit code %d, want 1", got.code)
			}
			errLines := lines(got.stderr)
			want := []string{
				`producer: rejected "bogus" (argument 2): invalid artist "bogus": an artist ID is 22 characters of 0-9, A-Z, a-z`,
				"producer: no answer for " + pitbull + " within 300ms (it stays enqueued; the worker will still store it)",
			}
			summary := "answered 0 of 1 artists in "
			if asJSON {
				if len(errLines) != 3 || !strings.HasPrefix(errLines[0], summary) {
					t.Errorf("stderr:\n%s\nwant the summary first", got.stderr)
				} else {
					errLines = errLines[1:]
				}
				var statuses []string
				for _, l := range lines(got.stdout) {
					var v struct {
						ArtistID      string `json:"artist_id"`
						Status, Error string
					}
					if err := json.Unmarshal([]byte(l), &v); err != nil {
						t.Errorf("stdout line %q: %v", l, err)
					}
					statuses = append(statuses, v.ArtistID+" "+v.Status)
				}
				if diff := gocmp.Diff(statuses, []string{" rejected", pitbull + " no_answer"}); diff != "" {
					t.Errorf("JSON lines (-got +want):\n%s", diff)
				}
			} else if ls := lines(got.stdout); len(ls) != 1 || !strings.HasPrefix(ls[0], summary) {
				t.Errorf("stdout:\n%s\nwant the summary alone", got.stdout)
			}
			if diff := gocmp.Diff(errLines, want); diff != "" {
				t.Errorf("stderr (-got +want):\n%s", diff)
			}
			// The artist stays enqueued for the worker.
			if msgs := messages(t, path, sqlitequeue.DefaultName); len(msgs) != 1 || msgs[0].ArtistID != pitbull {
				t.Errorf("queued: %+v, want one message for %s", msgs, pitbull)
			}
		})
	}
}

// TestEnqueueWaitEmulators runs enqueue --wait --json on SQS and DynamoDB,
// configured from the environment as in production.
func TestEnqueueWaitEmulators(t *testing.T) {
	ctx := t.Context()
	sq := testenv.SQSClient(t)
	queueURL := testenv.CreateQueue(ctx, t, sq, fmt.Sprintf("wait-%d", time.Now().UnixNano()), nil)
	db := testenv.DynamoDBClient(t)
	suffix := time.Now().UnixNano()
	tracks, artists := fmt.Sprintf("wait_tracks_%d", suffix), fmt.Sprintf("wait_artists_%d", suffix)
	st := dynamostore.New(db, tracks, artists)
	if err := st.CreateTables(ctx); err != nil {
		t.Fatal(err)
	}
	startWorker(t, sqsqueue.New(sq, queueURL, sqsqueue.Options{}), st)

	testenv.SetAWSEnv(t, testenv.DynamoDB)
	env := map[string]string{"QUEUE_URL": queueURL, "STORE_URL": "dynamodb:" + tracks, "ARTISTS_TABLE": artists}
	got := run(t, env, "", "enqueue", "--wait", "--json", "--wait-timeout", "25s", taylor, unknown)
	if got.code != 0 {
		t.Fatalf("exit code %d, want 0\nstdout:\n%s\nstderr:\n%s", got.code, got.stdout, got.stderr)
	}
	type jsonTrack struct {
		Rank       int
		ID, Name   string
		Popularity *int
	}
	type reply struct {
		ArtistID  string `json:"artist_id"`
		Status    string
		Market    string
		FetchedAt string `json:"fetched_at"`
		Enqueued  bool
		Tracks    []jsonTrack
	}
	var replies []reply
	for _, l := range lines(got.stdout) {
		var r reply
		if err := json.Unmarshal([]byte(l), &r); err != nil {
			t.Fatalf("stdout line %q: %v", l, err)
		}
		if _, err := time.Parse(time.RFC3339, r.FetchedAt); err != nil {
			t.Errorf("%s: fetched_at %q: %v", r.ArtistID, r.FetchedAt, err)
		}
		r.FetchedAt = ""
		replies = append(replies, r)
	}
	slices.SortFunc(replies, func(a, b reply) int { return strings.Compare(a.ArtistID, b.ArtistID) })
	var want []jsonTrack
	for i, tr := range fakespotify.Tracks(taylor, 0, 10) {
		want = append(want, jsonTrack{Rank: i + 1, ID: tr.ID, Name: tr.Name, Popularity: tr.Popularity})
	}
	wantReplies := []reply{
		{ArtistID: unknown, Status: "not_found", Market: "US", Enqueued: true},
		{ArtistID: taylor, Status: "ok", Market: "US", Enqueued: true, Tracks: want},
	}
	if diff := gocmp.Diff(replies, wantReplies); diff != "" {
		t.Errorf("JSON replies (-got +want):\n%s", diff)
	}
	if !regexp.MustCompile(`^answered 2 of 2 artists in \S+ \(0 from the store, 2 fetched now\); 0 not answered, 0 rejected\n$`).MatchString(got.stderr) {
		t.Errorf("stderr %q, want the summary alone", got.stderr)
	}
}
