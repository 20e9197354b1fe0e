package sqlitestore_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.uber.org/goleak"

	"github.com/sixpotify/top-tracks/internal/queue"
	"github.com/sixpotify/top-tracks/internal/queue/sqlitequeue"
	"github.com/sixpotify/top-tracks/internal/spotify"
	"github.com/sixpotify/top-tracks/internal/store"
	"github.com/sixpotify/top-tracks/internal/store/sqlitestore"
	"github.com/sixpotify/top-tracks/internal/store/storetest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

var t0 = time.Date(2025, 3, 14, 15, 9, 26, 535_000_000, time.UTC)

func dbPath(t *testing.T) string {
	t.Helper()
	return filepath.Join(t.TempDir(), "store.db")
}

func open(t *testing.T, path string) *sqlitestore.Store {
	t.Helper()
	s, err := sqlitestore.Open(context.Background(), path)
	if err != nil {
		t.Fatalf("Open(%q): %v", path, err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

func result(artistID string, at time.Time, tracks []spotify.Track) store.Result {
	return store.Result{ArtistID: artistID, Market: "US", Status: store.StatusOK, FetchedAt: at, Tracks: tracks}
}

func save(t *testing.T, s *sqlitestore.Store, r store.Result) {
	t.Helper()
	if err := s.Save(context.Background(), r); err != nil {
		t.Fatalf("Save(%s at %s): %v", r.ArtistID, r.FetchedAt.Format(store.TimeFormat), err)
	}
}

func trackIDs(t *testing.T, s *sqlitestore.Store, artistID string) []string {
	t.Helper()
	rows, err := s.Tracks(context.Background(), artistID)
	if err != nil {
		t.Fatalf("Tracks(%s): %v", artistID, err)
	}
	ids := make([]string, len(rows))
	for i, r := range rows {
		ids[i] = fmt.Sprintf("%d:%s", r.Rank, r.ID)
	}
	return ids
}

func wantIDs(tracks []spotify.Track) []string {
	ids := make([]string, len(tracks))
	for i, tr := range tracks {
		ids[i] = fmt.Sprintf("%d:%s", i+1, tr.ID)
	}
	return ids
}

func TestSaveConverges(t *testing.T) {
	s := open(t, dbPath(t))
	a := storetest.ID("artist/a")
	save(t, s, result(a, t0, storetest.Tracks(a, 0, 10)))
	next := append(storetest.Tracks(a, 8, 2), storetest.Tracks(a, 20, 3)...)
	save(t, s, result(a, t0.Add(time.Hour), next))
	if diff := cmp.Diff(trackIDs(t, s, a), wantIDs(next)); diff != "" {
		t.Errorf("rows after the second fetch (-got +want):\n%s", diff)
	}
	got, ok, err := s.Artist(context.Background(), a)
	want := store.Artist{ArtistID: a, Market: "US", Status: store.StatusOK, FetchedAt: t0.Add(time.Hour), Tracks: 5}
	if err != nil || !ok || !cmp.Equal(got, want) {
		t.Errorf("Artist = %+v, %v, %v; want %+v", got, ok, err, want)
	}
}

func TestSaveRoundTripsEveryColumn(t *testing.T) {
	s := open(t, dbPath(t))
	a := storetest.ID("artist/columns")
	tracks := storetest.Tracks(a, 0, 6)
	tracks[0].Name = `<b>"Tom & Jerry"</b>`
	tracks[1].ExternalURLs = nil
	tracks[2].Artists = []spotify.SimpleArtist{}
	r := result(a, t0.Add(123456*time.Nanosecond), tracks) // sub-millisecond: truncated
	r.Market = "SE"
	save(t, s, r)
	rows, err := s.Tracks(context.Background(), a)
	if err != nil {
		t.Fatal(err)
	}
	want := make([]store.Row, len(tracks))
	for i, tr := range tracks {
		want[i] = store.Row{ArtistID: a, Rank: i + 1, Market: "SE", FetchedAt: t0, Track: tr}
	}
	if diff := cmp.Diff(rows, want); diff != "" {
		t.Errorf("Tracks (-got +want):\n%s", diff)
	}
}

func TestRerunIsIdempotent(t *testing.T) {
	path := dbPath(t)
	s := open(t, path)
	a := storetest.ID("artist/rerun")
	r := result(a, t0, storetest.Tracks(a, 0, 10))
	for range 3 {
		save(t, s, r)
	}
	// A second handle (another worker) processing the same message.
	save(t, open(t, path), r)
	if diff := cmp.Diff(trackIDs(t, s, a), wantIDs(r.Tracks)); diff != "" {
		t.Errorf("rows after four saves of one result (-got +want):\n%s", diff)
	}
}

func TestStaleSaveWritesNothing(t *testing.T) {
	s := open(t, dbPath(t))
	a := storetest.ID("artist/stale")
	newer := result(a, t0.Add(time.Millisecond), storetest.Tracks(a, 0, 10))
	save(t, s, newer)
	for _, older := range []store.Result{
		result(a, t0, storetest.Tracks(a, 30, 3)),
		{ArtistID: a, Market: "US", Status: store.StatusNotFound, FetchedAt: t0},
	} {
		if err := s.Save(context.Background(), older); !errors.Is(err, store.ErrStale) {
			t.Errorf("Save(older %s) = %v, want ErrStale", older.Status, err)
		}
	}
	if diff := cmp.Diff(trackIDs(t, s, a), wantIDs(newer.Tracks)); diff != "" {
		t.Errorf("rows after stale saves (-got +want):\n%s", diff)
	}
	if got, _, _ := s.Artist(context.Background(), a); !got.FetchedAt.Equal(newer.FetchedAt) || got.Status != store.StatusOK {
		t.Errorf("artists row after stale saves = %+v", got)
	}
}

func TestNotFoundRemovesRows(t *testing.T) {
	s := open(t, dbPath(t))
	a := storetest.ID("artist/gone")
	save(t, s, result(a, t0, storetest.Tracks(a, 0, 10)))
	save(t, s, store.Result{ArtistID: a, Market: "US", Status: store.StatusNotFound, FetchedAt: t0.Add(time.Hour)})
	if got := trackIDs(t, s, a); len(got) != 0 {
		t.Errorf("rows after not_found = %v, want none", got)
	}
	got, ok, err := s.Artist(context.Background(), a)
	if err != nil || !ok || got.Status != store.StatusNotFound || got.Tracks != 0 {
		t.Errorf("Artist after not_found = %+v, %v, %v", got, ok, err)
	}
}

// TestConcurrentSavesFromTwoHandles races results of one artist through two
// handles, as two worker processes would: the newest always ends up stored,
// and every other Save succeeds or reports ErrStale.
func TestConcurrentSavesFromTwoHandles(t *testing.T) {
	path := dbPath(t)
	handles := []*sqlitestore.Store{open(t, path), open(t, path)}
	a := storetest.ID("artist/race")
	const n = 24
	results := make([]store.Result, n)
	for i, k := range rand.Perm(n) {
		results[i] = result(a, t0.Add(time.Duration(k)*time.Millisecond), storetest.Tracks(a, k, 10))
	}
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i, r := range results {
		wg.Go(func() {
			<-start
			if err := handles[i%2].Save(context.Background(), r); err != nil && !errors.Is(err, store.ErrStale) {
				t.Errorf("Save(%d): %v", i, err)
			}
		})
	}
	close(start)
	wg.Wait()
	newest := slices.MaxFunc(results, func(x, y store.Result) int { return x.FetchedAt.Compare(y.FetchedAt) })
	for _, s := range handles {
		if diff := cmp.Diff(trackIDs(t, s, a), wantIDs(newest.Tracks)); diff != "" {
			t.Errorf("rows after the race (-got +want):\n%s", diff)
		}
	}
}

func TestScanArtists(t *testing.T) {
	s := open(t, dbPath(t))
	want := map[string]bool{}
	for i := range 450 { // more than two pages
		a := storetest.ID(fmt.Sprintf("artist/scan/%d", i))
		save(t, s, result(a, t0, storetest.Tracks(a, 0, i%2)))
		want[a] = true
	}
	got := map[string]bool{}
	err := s.ScanArtists(context.Background(), func(a store.Artist) error {
		if got[a.ArtistID] {
			t.Errorf("visited %s twice", a.ArtistID)
		}
		got[a.ArtistID] = true
		// Saving during the scan must not deadlock: no lock is held here.
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := s.Save(ctx, result(a.ArtistID, t0.Add(time.Second), nil)); err != nil {
			return err
		}
		return nil
	})
	if err != nil {
		t.Fatalf("ScanArtists: %v", err)
	}
	if diff := cmp.Diff(got, want); diff != "" {
		t.Errorf("visited (-got +want):\n%s", diff)
	}

	stop := errors.New("stop")
	calls := 0
	err = s.ScanArtists(context.Background(), func(store.Artist) error {
		calls++
		if calls == 201 {
			return stop
		}
		return nil
	})
	if err != stop || calls != 201 {
		t.Errorf("ScanArtists stopped by fn = %v after %d calls, want fn's error after 201", err, calls)
	}
}

func TestSharesAFileWithTheQueue(t *testing.T) {
	path := dbPath(t)
	ctx := context.Background()
	q, err := sqlitequeue.Open(ctx, path, "default", sqlitequeue.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	s := open(t, path)
	a := storetest.ID("artist/shared")
	if errs, err := q.SendBatch(ctx, []queue.Entry{{Body: []byte(`{"artist_id":"` + a + `"}`)}}); err != nil || errs[0] != nil {
		t.Fatalf("SendBatch: %v %v", err, errs)
	}
	save(t, s, result(a, t0, storetest.Tracks(a, 0, 3)))
	msgs, err := q.Receive(ctx, 1, 0)
	if err != nil || len(msgs) != 1 {
		t.Fatalf("Receive = %v, %v", msgs, err)
	}
	if got := trackIDs(t, s, a); len(got) != 3 {
		t.Errorf("rows = %v", got)
	}
}

func TestParseURL(t *testing.T) {
	tests := []struct {
		url, path string
		wantErr   string
	}{
		{url: "sqlite:sixpotify.db", path: "sixpotify.db"},
		{url: "sqlite:/var/lib/s.db", path: "/var/lib/s.db"},
		{url: "sqlite:///var/lib/s.db", path: "/var/lib/s.db"},
		{url: "sqlite:", wantErr: "no file path"},
		{url: "sqlite::memory:", wantErr: "not a file path"},
		{url: "sqlite://host/s.db", wantErr: "names a host"},
		{url: "sqlite:s.db?queue=bulk", wantErr: "no parameters"},
		{url: "dynamodb:top_tracks", wantErr: "want sqlite:PATH"},
		{url: "", wantErr: "want sqlite:PATH"},
	}
	for _, tt := range tests {
		path, err := sqlitestore.ParseURL(tt.url)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !strings.Contains(err.Error(), tt.url) {
				t.Errorf("ParseURL(%q) = %q, %v; want an error naming the URL and saying %q", tt.url, path, err, tt.wantErr)
			}
			continue
		}
		if err != nil || path != tt.path {
			t.Errorf("ParseURL(%q) = %q, %v; want %q", tt.url, path, err, tt.path)
		}
	}
}
