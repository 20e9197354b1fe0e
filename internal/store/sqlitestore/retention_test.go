package sqlitestore_test

import (
	"context"
	"database/sql"
	"testing"
	"time"

	"github.com/sixpotify/top-tracks/internal/fakespotify"
	"github.com/sixpotify/top-tracks/internal/fakespotify/fakespotifytest"
	"github.com/sixpotify/top-tracks/internal/store"
	"github.com/sixpotify/top-tracks/internal/store/sqlitestore"
	"github.com/sixpotify/top-tracks/internal/store/storetest"
	"github.com/sixpotify/top-tracks/internal/testutil"

	_ "modernc.org/sqlite"
)

func openWith(t *testing.T, path string, opts sqlitestore.Options) *sqlitestore.Store {
	t.Helper()
	s, err := sqlitestore.OpenOptions(context.Background(), path, opts)
	if err != nil {
		t.Fatalf("OpenOptions(%q): %v", path, err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// rawDB opens the file beside the store, to read what the columns hold.
func rawDB(t *testing.T, path string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return db
}

func count(t *testing.T, db *sql.DB, q string, args ...any) int {
	t.Helper()
	var n int
	if err := db.QueryRow(q, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return n
}

// TestExpiredRowsAreDeleted: every row carries expires_at = fetched_at +
// RetainFor; the first Save after PurgeEvery deletes the rows past it (the
// artist's tracks and its artists row), and so does opening the file.
func TestExpiredRowsAreDeleted(t *testing.T) {
	c := testutil.NewClock(t0)
	path := dbPath(t)
	opts := sqlitestore.Options{RetainFor: 10 * time.Hour, PurgeEvery: time.Hour, Now: c.Now}
	s := openWith(t, path, opts)
	old, kept := storetest.ID("retain/old"), storetest.ID("retain/kept")
	save(t, s, result(old, t0, storetest.Tracks(old, 0, 3)))
	db := rawDB(t, path)
	want := t0.Add(10 * time.Hour).Unix()
	if n := count(t, db, `SELECT count(*) FROM top_tracks WHERE artist_id = ? AND expires_at = ?`, old, want+1); n != 3 {
		t.Errorf("%d of 3 track rows have expires_at %d (fetched_at + 10h, rounded up)", n, want+1)
	}
	if n := count(t, db, `SELECT count(*) FROM artists WHERE artist_id = ? AND expires_at = ?`, old, want+1); n != 1 {
		t.Errorf("the artists row has no expires_at %d", want+1)
	}

	c.Advance(11 * time.Hour)
	at := c.Now()
	save(t, s, result(kept, at, storetest.Tracks(kept, 0, 2)))
	if _, ok, err := s.Artist(context.Background(), old); err != nil || ok {
		t.Errorf("Artist(expired) = %v, %v; want it deleted", ok, err)
	}
	if rows, err := s.Tracks(context.Background(), old); err != nil || len(rows) != 0 {
		t.Errorf("Tracks(expired) = %d rows, %v; want none", len(rows), err)
	}
	if rows, err := s.Tracks(context.Background(), kept); err != nil || len(rows) != 2 {
		t.Errorf("Tracks(fresh) = %d rows, %v; want 2", len(rows), err)
	}

	// Opening the file deletes what expired since, without a Save.
	c.Advance(11 * time.Hour)
	openWith(t, path, opts)
	if n := count(t, db, `SELECT count(*) FROM top_tracks`) + count(t, db, `SELECT count(*) FROM artists`); n != 0 {
		t.Errorf("%d rows left after opening past their expiry, want 0", n)
	}
}

// TestUnchangedRefreshesExpiry: a Save whose answer is what is stored (the
// change-aware path) still moves every row's expiry.
func TestUnchangedRefreshesExpiry(t *testing.T) {
	c := testutil.NewClock(t0)
	path := dbPath(t)
	s := openWith(t, path, sqlitestore.Options{RetainFor: 10 * time.Hour, Now: c.Now})
	a := storetest.ID("retain/unchanged")
	tracks := storetest.Tracks(a, 0, 3)
	save(t, s, result(a, t0, tracks))
	later := t0.Add(5 * time.Hour)
	save(t, s, result(a, later, tracks))
	want := later.Add(10*time.Hour).Unix() + 1
	db := rawDB(t, path)
	if n := count(t, db, `SELECT count(*) FROM top_tracks WHERE expires_at = ?`, want) +
		count(t, db, `SELECT count(*) FROM artists WHERE expires_at = ?`, want); n != 4 {
		t.Errorf("%d of 4 rows expire at %d after an unchanged fetch", n, want)
	}
}

// TestRemovedFieldsAreNull fetches from the stand-in answering as Spotify
// answers a Development Mode app since February 2026 (no popularity), saves
// what the client decoded, and reads the columns: popularity is NULL, not
// 0; isrc holds external_ids.isrc.
func TestRemovedFieldsAreNull(t *testing.T) {
	a := storetest.ID("removed-fields")
	tracks, at := fakespotifytest.TopTracks(t, fakespotify.Config{FieldsRemoved: true}, a)
	path := dbPath(t)
	s := openWith(t, path, sqlitestore.Options{Now: func() time.Time { return at }})
	save(t, s, store.Result{ArtistID: a, Market: "US", Status: store.StatusOK, FetchedAt: at, Tracks: tracks})
	db := rawDB(t, path)
	if n := count(t, db, `SELECT count(*) FROM top_tracks WHERE artist_id = ? AND popularity IS NULL`, a); n != 10 {
		t.Errorf("%d of 10 rows have popularity NULL", n)
	}
	if n := count(t, db, `SELECT count(*) FROM top_tracks WHERE artist_id = ? AND isrc LIKE 'QZ%'`, a); n != 10 {
		t.Errorf("%d of 10 rows have the ISRC", n)
	}
}

// TestMigratesOlderFile opens a file made before popularity was nullable
// and before isrc and expires_at: its rows stay, get an expiry from their
// fetched_at, and a track without popularity can be saved.
func TestMigratesOlderFile(t *testing.T) {
	path := dbPath(t)
	db := rawDB(t, path)
	fetched := time.Now().UTC().Add(-time.Hour).Truncate(time.Second)
	for _, q := range []string{
		`CREATE TABLE top_tracks (
			artist_id TEXT NOT NULL, id TEXT NOT NULL, rank INTEGER NOT NULL, name TEXT NOT NULL,
			popularity INTEGER NOT NULL, duration_ms INTEGER NOT NULL, explicit INTEGER NOT NULL, uri TEXT NOT NULL,
			album TEXT NOT NULL, artists TEXT NOT NULL, external_urls TEXT NOT NULL, preview_url TEXT,
			track_number INTEGER NOT NULL, market TEXT NOT NULL, fetched_at TEXT NOT NULL,
			PRIMARY KEY (artist_id, id)) WITHOUT ROWID`,
		`CREATE TABLE artists (artist_id TEXT NOT NULL PRIMARY KEY, fetched_at TEXT NOT NULL, market TEXT NOT NULL,
			status TEXT NOT NULL, track_count INTEGER NOT NULL, list_hash TEXT NOT NULL DEFAULT '') WITHOUT ROWID`,
	} {
		if _, err := db.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	old := storetest.ID("migrate/old")
	ts := fetched.Format(store.TimeFormat)
	if _, err := db.Exec(`INSERT INTO top_tracks VALUES (?, 'T1', 1, 'Old', 42, 1000, 0, 'spotify:track:T1', '{}', '[]', '{}', NULL, 1, 'US', ?)`, old, ts); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`INSERT INTO artists VALUES (?, ?, 'US', 'ok', 1, '')`, old, ts); err != nil {
		t.Fatal(err)
	}

	s := openWith(t, path, sqlitestore.Options{RetainFor: 48 * time.Hour})
	rows, err := s.Tracks(context.Background(), old)
	if err != nil || len(rows) != 1 || rows[0].Popularity == nil || *rows[0].Popularity != 42 {
		t.Fatalf("Tracks(old) = %+v, %v; want the row with popularity 42", rows, err)
	}
	want := fetched.Add(48*time.Hour).Unix() + 1
	if n := count(t, db, `SELECT count(*) FROM top_tracks WHERE expires_at = ?`, want) +
		count(t, db, `SELECT count(*) FROM artists WHERE expires_at = ?`, want); n != 2 {
		t.Errorf("%d of 2 old rows got expires_at %d", n, want)
	}
	a := storetest.ID("migrate/new")
	tr := storetest.Tracks(a, 0, 1)
	tr[0].Popularity = nil
	save(t, s, result(a, time.Now(), tr))
	if n := count(t, db, `SELECT count(*) FROM top_tracks WHERE artist_id = ? AND popularity IS NULL`, a); n != 1 {
		t.Errorf("a track without popularity: %d NULL rows, want 1", n)
	}
}
