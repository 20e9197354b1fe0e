package dynamostore_test

import (
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/sixpotify/top-tracks/internal/store"
	"github.com/sixpotify/top-tracks/internal/store/storetest"
	"github.com/sixpotify/top-tracks/internal/testenv"
)

// calls is what one Save sent, by kind.
type calls struct{ updates, queries, batches, puts int64 }

// saveCounting saves r and returns the calls it made.
func saveCounting(t *testing.T, s env, f *faulty, r store.Result) calls {
	t.Helper()
	before, q := s.Stats(), f.queries.Load()
	if err := s.Save(testenv.Context(t), r); err != nil {
		t.Fatalf("Save: %v", err)
	}
	after := s.Stats()
	return calls{
		updates: after.LockCalls - before.LockCalls + after.UnchangedCalls - before.UnchangedCalls,
		queries: int64(f.queries.Load() - q),
		batches: after.BatchWriteCalls - before.BatchWriteCalls,
		puts:    after.PutCalls - before.PutCalls,
	}
}

// TestTrackIDsReplaceTheQuery checks that the artists row's track_ids tell
// a Save which rows to delete: a first Save and a changed list ask the
// tracks table nothing, and the rows are still exactly the answer.
func TestTrackIDsReplaceTheQuery(t *testing.T) {
	f := &faulty{}
	s := newStore(t, fastRetries, wrapWith(f))
	a := storetest.ID("trackids")
	first := result(a, t0, 10)
	first.FirstFetch = true
	if got, want := saveCounting(t, s, f, first), (calls{updates: 1, batches: 1, puts: 1}); got != want {
		t.Errorf("first Save sent %+v; want %+v (lease, batch, commit)", got, want)
	}
	checkRows(t, s, first)

	changed := store.Result{ArtistID: a, Market: "US", Status: store.StatusOK, FetchedAt: t0.Add(time.Hour),
		Tracks: storetest.Tracks(a, 4, 10)}
	if got, want := saveCounting(t, s, f, changed), (calls{updates: 2, batches: 1, puts: 1}); got != want {
		t.Errorf("changed Save sent %+v; want %+v (the fast path's try, lease, batch, commit)", got, want)
	}
	checkRows(t, s, changed)

	gone := store.Result{ArtistID: a, Market: "US", Status: store.StatusNotFound, FetchedAt: t0.Add(2 * time.Hour)}
	if got, want := saveCounting(t, s, f, gone), (calls{updates: 2, batches: 1, puts: 1}); got != want {
		t.Errorf("not_found Save sent %+v; want %+v", got, want)
	}
	if rows, err := s.Tracks(testenv.Context(t), a); err != nil || len(rows) != 0 {
		t.Errorf("Tracks after not_found = %d rows, %v; want none", len(rows), err)
	}
	back := result(a, t0.Add(3*time.Hour), 3)
	if got, want := saveCounting(t, s, f, back), (calls{updates: 2, batches: 1, puts: 1}); got != want {
		t.Errorf("Save after not_found sent %+v; want %+v", got, want)
	}
	checkRows(t, s, back)
}

// TestRowWithoutTrackIDs checks that an artists row as the code before
// track_ids wrote it (no track_ids) makes a Save ask the tracks table, and
// that the next Save needs no Query.
func TestRowWithoutTrackIDs(t *testing.T) {
	f := &faulty{}
	s := newStore(t, fastRetries, wrapWith(f))
	a := storetest.ID("old-row")
	if err := s.Save(testenv.Context(t), result(a, t0, 10)); err != nil {
		t.Fatal(err)
	}
	_, err := s.client.UpdateItem(testenv.Context(t), &dynamodb.UpdateItemInput{
		TableName:        aws.String(s.artists),
		Key:              map[string]types.AttributeValue{"artist_id": &types.AttributeValueMemberS{Value: a}},
		UpdateExpression: aws.String("REMOVE track_ids"),
	})
	if err != nil {
		t.Fatal(err)
	}
	changed := store.Result{ArtistID: a, Market: "US", Status: store.StatusOK, FetchedAt: t0.Add(time.Hour),
		Tracks: storetest.Tracks(a, 5, 3)}
	if got := saveCounting(t, s, f, changed); got.queries != 1 {
		t.Errorf("Save over a row without track_ids sent %d Queries; want 1", got.queries)
	}
	checkRows(t, s, changed)
	again := result(a, t0.Add(2*time.Hour), 4)
	if got := saveCounting(t, s, f, again); got.queries != 0 {
		t.Errorf("the next Save sent %d Queries; want 0", got.queries)
	}
	checkRows(t, s, again)

	// An expired lease over listed ids is what an earlier version that
	// died writing leaves (it did not remove them): the ids are not
	// trusted.
	holdLease(t, s.client, s.artists, a, time.Now().Add(-time.Second))
	later := result(a, t0.Add(3*time.Hour), 2)
	if got := saveCounting(t, s, f, later); got.queries != 1 {
		t.Errorf("Save over an expired lease sent %d Queries; want 1", got.queries)
	}
	checkRows(t, s, later)
}

// TestSaveThatDidNotCommit checks that a Save whose track writes landed but
// whose commit failed leaves a row that lists no track ids and no list
// hash: the next Save asks the tracks table and converges, even to the
// list the artists row held before (which the unchanged fast path would
// otherwise have taken), and even after a first Save.
func TestSaveThatDidNotCommit(t *testing.T) {
	f := &faulty{}
	opts := fastRetries
	opts.RetryFor = 100 * time.Millisecond
	s := newStore(t, opts, wrapWith(f))
	failCommits := func(on bool) {
		f.mu.Lock()
		defer f.mu.Unlock()
		f.throttleFirst = map[string]int{}
		if on {
			f.throttleFirst["PutItem"] = 1 << 30
		}
	}
	for _, tt := range []struct {
		name   string
		stored bool // a committed Save before the one that fails
	}{{"stored artist", true}, {"first save", false}} {
		t.Run(tt.name, func(t *testing.T) {
			a := storetest.ID("uncommitted/" + tt.name)
			before := result(a, t0, 10)
			if tt.stored {
				if err := s.Save(testenv.Context(t), before); err != nil {
					t.Fatal(err)
				}
			}
			failCommits(true)
			failed := store.Result{ArtistID: a, Market: "US", Status: store.StatusOK, FetchedAt: t0.Add(time.Hour),
				Tracks: storetest.Tracks(a, 6, 10), FirstFetch: !tt.stored}
			if err := s.Save(testenv.Context(t), failed); err == nil {
				t.Fatal("Save with every commit refused succeeded")
			}
			failCommits(false)
			next := before
			next.FetchedAt = t0.Add(2 * time.Hour)
			next.FirstFetch = !tt.stored
			if got := saveCounting(t, s, f, next); got.queries != 1 || got.batches != 1 {
				t.Errorf("Save after an uncommitted one sent %+v; want a Query and a batch", got)
			}
			checkRows(t, s, next)
		})
	}
}
