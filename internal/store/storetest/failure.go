package storetest

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/sixpotify/top-tracks/internal/store"
)

// failureStore is a store with the optional failure capabilities.
type failureStore interface {
	store.Store
	store.FailureRecorder
	store.FailureReader
}

func asFailureStore(t *testing.T, s store.Store) failureStore {
	t.Helper()
	fs, ok := s.(failureStore)
	if !ok {
		t.Fatalf("%T records no failures (store.FailureRecorder, store.FailureReader)", s)
	}
	return fs
}

func recordFailure(t *testing.T, s failureStore, id, reason string, at time.Time) {
	t.Helper()
	if err := s.RecordFailure(ctxFor(t), id, reason, at); err != nil {
		t.Fatalf("RecordFailure(%s, %q): %v", id, reason, err)
	}
}

func checkFailure(t *testing.T, s failureStore, id string, want *store.Failure) {
	t.Helper()
	got, ok, err := s.LastFailure(ctxFor(t), id)
	if err != nil {
		t.Fatalf("LastFailure(%s): %v", id, err)
	}
	switch {
	case want == nil && ok:
		t.Errorf("LastFailure(%s) = %+v; want none", id, got)
	case want != nil && !ok:
		t.Errorf("LastFailure(%s) = none; want %+v", id, *want)
	case want != nil:
		if diff := cmp.Diff(got, *want); diff != "" {
			t.Errorf("LastFailure(%s) mismatch (-got +want):\n%s", id, diff)
		}
	}
}

// testFailureOfNewArtist: a failure recorded for an artist never fetched
// makes no artist (the worker's freshness check, reprocess and the export
// read none); the later of two failures stays; the first Save works and
// clears it.
func testFailureOfNewArtist(t *testing.T, s store.Store) {
	fs := asFailureStore(t, s)
	a := ID("artist/failure-new")
	checkFailure(t, fs, a, nil)
	recordFailure(t, fs, a, "spotify: 400 Bad Request", t0)
	checkFailure(t, fs, a, &store.Failure{Reason: "spotify: 400 Bad Request", At: t0})
	if got, ok, err := s.Artist(ctxFor(t), a); err != nil || ok {
		t.Errorf("Artist(%s) after a failure only = %+v, %v, %v; want false, nil", a, got, ok, err)
	}
	err := s.ScanArtists(ctxFor(t), func(got store.Artist) error {
		t.Errorf("ScanArtists visited %+v, which holds a failure only", got)
		return nil
	})
	if err != nil {
		t.Fatalf("ScanArtists: %v", err)
	}
	checkRows(t, s, a, []store.Row{})
	if c, ok := s.(store.ArtistCounter); ok {
		got, err := c.CountArtistsBy(ctxFor(t), t0)
		if err != nil {
			t.Fatalf("CountArtistsBy: %v", err)
		}
		if got.Exact && (got.Total != 0 || got.Failing != 1) {
			t.Errorf("CountArtistsBy = %+v; want Total 0, Failing 1", got)
		}
	}

	recordFailure(t, fs, a, "older", t0.Add(-time.Minute))
	checkFailure(t, fs, a, &store.Failure{Reason: "spotify: 400 Bad Request", At: t0})
	recordFailure(t, fs, a, "store: rejected", t0.Add(time.Minute))
	checkFailure(t, fs, a, &store.Failure{Reason: "store: rejected", At: t0.Add(time.Minute)})

	r := result(a, t0.Add(time.Hour), Tracks(a, 0, 5))
	saveChecked(t, s, r)
	checkFailure(t, fs, a, nil)
}

// testFailureOfFetchedArtist: a failure recorded on a fetched artist changes
// none of the contract's attributes, and a later Save clears it, on the
// unchanged fast path as on a full one.
func testFailureOfFetchedArtist(t *testing.T, s store.Store) {
	fs := asFailureStore(t, s)
	a := ID("artist/failure-fetched")
	r := result(a, t0, Tracks(a, 0, 5))
	save(t, s, r)
	recordFailure(t, fs, a, "retries spent", t0.Add(time.Minute))
	checkStored(t, s, r)
	checkFailure(t, fs, a, &store.Failure{Reason: "retries spent", At: t0.Add(time.Minute)})
	if c, ok := s.(store.ArtistCounter); ok {
		got, err := c.CountArtistsBy(ctxFor(t), t0.Add(time.Second))
		if err != nil {
			t.Fatalf("CountArtistsBy: %v", err)
		}
		want := store.ArtistCounts{Total: 1, Exact: true, ByStatus: map[store.Status]int{store.StatusOK: 1}, Stale: 1, Failing: 1}
		if got.Exact {
			if diff := cmp.Diff(got, want); diff != "" {
				t.Errorf("CountArtistsBy mismatch (-got +want):\n%s", diff)
			}
		} else if !got.Approximate {
			t.Errorf("CountArtistsBy = %+v: neither exact nor approximate", got)
		}
	}

	unchanged := result(a, t0.Add(time.Hour), Tracks(a, 0, 5))
	save(t, s, unchanged)
	checkFailure(t, fs, a, nil)

	recordFailure(t, fs, a, "again", t0.Add(2*time.Hour))
	changed := result(a, t0.Add(3*time.Hour), Tracks(a, 2, 5))
	saveChecked(t, s, changed)
	checkFailure(t, fs, a, nil)
}

// testFailureReasonClipped: a long reason is kept, cut short.
func testFailureReasonClipped(t *testing.T, s store.Store) {
	fs := asFailureStore(t, s)
	a := ID("artist/failure-long")
	recordFailure(t, fs, a, strings.Repeat("é", store.MaxFailureReason), t0)
	got, ok, err := fs.LastFailure(ctxFor(t), a)
	if err != nil || !ok {
		t.Fatalf("LastFailure(%s) = %v, %v", a, ok, err)
	}
	if n := len(got.Reason); n > store.MaxFailureReason+len("…") || !strings.HasPrefix(got.Reason, "éé") || !strings.HasSuffix(got.Reason, "é…") {
		t.Errorf("LastFailure(%s).Reason is %d bytes, %q…; want at most %d, whole runes, ending in …", a, n, got.Reason[:10], store.MaxFailureReason)
	}
}
