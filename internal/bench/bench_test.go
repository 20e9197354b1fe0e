package bench_test

import (
	"net/http"
	"os"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/sixpotify/top-tracks/internal/fakespotify"
	"github.com/sixpotify/top-tracks/internal/spotify"
	"github.com/sixpotify/top-tracks/internal/store"
	"github.com/sixpotify/top-tracks/internal/testenv"
)

// TestMain is testenv.Main, with the comparison table printed after the
// benchmarks and the shared stand-in closed.
func TestMain(m *testing.M) {
	code := m.Run()
	printComparison(os.Stdout)
	closeSharedStandIn()
	testenv.Stop()
	os.Exit(code)
}

// TestBaselineAndWorkerStoreTheSameRows runs both designs once on a few
// artists, so that CI keeps the harness working. It checks correctness only.
func TestBaselineAndWorkerStoreTheSameRows(t *testing.T) {
	const n = 20
	s := newStandIn()
	t.Cleanup(s.srv.Close)
	ids := artistIDs(n)
	wb, ww := newWorld(t, ids, visibility), newWorld(t, ids, visibility)
	ctx := testenv.Context(t)

	b, err := runBaseline(ctx, wb, s, 4)
	if err != nil {
		t.Fatalf("baseline: %v", err)
	}
	if got, want := b.Stats(), (BaselineStats{Invocations: n, Deleted: n}); got != want {
		t.Errorf("baseline stats = %+v, want %+v", got, want)
	}
	if _, err := runWorker(ctx, ww, s, 4); err != nil {
		t.Fatalf("worker: %v", err)
	}

	for _, id := range ids {
		base, wk := storedRows(t, wb, id), storedRows(t, ww, id)
		if diff := cmp.Diff(base, wk); diff != "" {
			t.Errorf("artist %s: baseline rows differ from the worker's (-baseline +worker):\n%s", id, diff)
		}
		if diff := cmp.Diff(base.Tracks, fakespotify.Tracks(id, 0, 10)); diff != "" {
			t.Errorf("artist %s: baseline tracks differ from Spotify's (-got +want):\n%s", id, diff)
		}
	}
	// The designs differ where they should: a token per artist against one.
	st := s.fake.Stats()
	if st.Requests != 2*n || st.TokenRequests != n+1 {
		t.Errorf("stand-in saw %d API calls and %d token requests; want %d and %d", st.Requests, st.TokenRequests, 2*n, n+1)
	}
	for _, w := range []*world{wb, ww} {
		testenv.CheckQueueEmpty(ctx, t, w.sqs.Client, w.queueURL, "queue "+w.queueURL)
	}
}

// TestBaselineFailedInvocationComesBack checks the baseline's Lambda
// semantics: a 5xx fails the invocation with no retry, and the message is
// processed again after its visibility timeout.
func TestBaselineFailedInvocationComesBack(t *testing.T) {
	const n = 3
	s := newStandIn()
	t.Cleanup(s.srv.Close)
	s.fake.FailNext(1, http.StatusServiceUnavailable)
	ids := artistIDs(n)
	w := newWorld(t, ids, 1)

	b, err := runBaseline(testenv.Context(t), w, s, n)
	if err != nil {
		t.Fatalf("baseline: %v", err)
	}
	if got, want := b.Stats(), (BaselineStats{Invocations: n + 1, Failed: 1, Deleted: n}); got != want {
		t.Errorf("baseline stats = %+v, want %+v", got, want)
	}
	if st := s.fake.Stats(); st.Requests != n+1 || st.ServerErrors != 1 || st.TokenRequests != n+1 {
		t.Errorf("stand-in saw %d API calls (%d 5xx) and %d token requests; want %d (1) and %d",
			st.Requests, st.ServerErrors, st.TokenRequests, n+1, n+1)
	}
	for _, id := range ids {
		if diff := cmp.Diff(storedRows(t, w, id).Tracks, fakespotify.Tracks(id, 0, 10)); diff != "" {
			t.Errorf("artist %s: tracks (-got +want):\n%s", id, diff)
		}
	}
	testenv.CheckQueueEmpty(testenv.Context(t), t, w.sqs.Client, w.queueURL, "queue "+w.queueURL)
}

// rows is what a design stored for an artist, fetch times left out (the two
// designs fetch at different times).
type rows struct {
	Artist store.Artist
	Ranks  []int
	Market []string
	Tracks []spotify.Track
}

func storedRows(t *testing.T, w *world, id string) rows {
	t.Helper()
	ctx := testenv.Context(t)
	r := w.reader()
	a, ok, err := r.Artist(ctx, id)
	if err != nil || !ok {
		t.Fatalf("artists row of %s: ok=%v err=%v", id, ok, err)
	}
	got := rows{Artist: store.Artist{ArtistID: a.ArtistID, Market: a.Market, Status: a.Status, Tracks: a.Tracks}}
	stored, err := r.Tracks(ctx, id)
	if err != nil {
		t.Fatalf("tracks of %s: %v", id, err)
	}
	for _, row := range stored {
		if row.ArtistID != id || !row.FetchedAt.Equal(a.FetchedAt) {
			t.Errorf("artist %s: row %s has artist %s, fetched_at %v; the artists row says %v", id, row.ID, row.ArtistID, row.FetchedAt, a.FetchedAt)
		}
		got.Ranks = append(got.Ranks, row.Rank)
		got.Market = append(got.Market, row.Market)
		got.Tracks = append(got.Tracks, row.Track)
	}
	return got
}
