// Package storetest is the conformance suite every store backend passes:
// call Run from the backend's tests with a constructor of fresh, empty
// stores.
package storetest

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/sixpotify/top-tracks/internal/spotify"
	"github.com/sixpotify/top-tracks/internal/store"
)

// Features states a backend's honest differences.
type Features struct {
	// NewestWins is true when concurrent Saves of one artist always end
	// with the rows of the result with the newest fetched_at (the others
	// returning ErrStale or being overwritten). When false, the suite
	// checks only that the rows are exactly those of one result whose Save
	// succeeded, never a mixture.
	NewestWins bool
}

// Run runs the suite. newStore returns an empty store whose resources end
// with t; each case runs in parallel with the others on its own store.
func Run(t *testing.T, newStore func(t *testing.T) store.Store, features Features) {
	cases := []struct {
		name string
		run  func(t *testing.T, s store.Store)
	}{
		{"SaveThenRead", testSaveThenRead},
		{"Converges", testConverges},
		{"ManyTracks", testManyTracks},
		{"Rerun", testRerun},
		{"UnchangedMovesFetchedAt", testUnchanged},
		{"ArtistsApart", testArtistsApart},
		{"NotFound", testNotFound},
		{"NotFoundFirst", testNotFoundFirst},
		{"Stale", testStale},
		{"DuplicateTrack", testDuplicateTrack},
		{"AbsentFields", testAbsentFields},
		{"UnknownArtist", testUnknownArtist},
		{"RejectsInvalid", testRejectsInvalid},
		{"ScanArtists", testScanArtists},
		{"ScanArtistsStops", testScanArtistsStops},
		{"ScanTracks", testScanTracks},
		{"ConcurrentSaves", func(t *testing.T, s store.Store) { testConcurrentSaves(t, s, features) }},
		{"FailureOfNewArtist", testFailureOfNewArtist},
		{"FailureOfFetchedArtist", testFailureOfFetchedArtist},
		{"FailureReasonClipped", testFailureReasonClipped},
		{"SpotifyPause", testSpotifyPause},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			c.run(t, newStore(t))
		})
	}
}

// t0 is the first fetch time of every case; ms precision, as stored.
var t0 = time.Date(2025, 3, 14, 15, 9, 26, 535_000_000, time.UTC)

func ctxFor(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 45*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func result(artistID string, at time.Time, tracks []spotify.Track) store.Result {
	return store.Result{ArtistID: artistID, Market: "US", Status: store.StatusOK, FetchedAt: at, Tracks: tracks}
}

// Rows is what Tracks returns after r is saved: the first of each track id,
// ranked by its position in r.Tracks.
func Rows(r store.Result) []store.Row {
	rows := []store.Row{}
	seen := map[string]bool{}
	for i, tr := range r.Tracks {
		if seen[tr.ID] {
			continue
		}
		seen[tr.ID] = true
		rows = append(rows, store.Row{ArtistID: r.ArtistID, Rank: i + 1, Market: r.Market, FetchedAt: r.FetchedAt, Track: tr})
	}
	return rows
}

func artistOf(r store.Result) store.Artist {
	return store.Artist{ArtistID: r.ArtistID, Market: r.Market, Status: r.Status, FetchedAt: r.FetchedAt, Tracks: len(Rows(r))}
}

func save(t *testing.T, s store.Store, r store.Result) {
	t.Helper()
	if err := s.Save(ctxFor(t), r); err != nil {
		t.Fatalf("Save(%s at %s, %d tracks): %v", r.ArtistID, r.FetchedAt.Format(store.TimeFormat), len(r.Tracks), err)
	}
}

// saveChecked saves each of rs in turn and checks after each that the store
// holds it.
func saveChecked(t *testing.T, s store.Store, rs ...store.Result) {
	t.Helper()
	for _, r := range rs {
		save(t, s, r)
		checkStored(t, s, r)
	}
}

// checkStored compares the store's rows and artists row of the artist with
// those of r.
func checkStored(t *testing.T, s store.Store, r store.Result) {
	t.Helper()
	checkRows(t, s, r.ArtistID, Rows(r))
	got, ok, err := s.Artist(ctxFor(t), r.ArtistID)
	if err != nil || !ok {
		t.Fatalf("Artist(%s) = %v, %v; want the artists row", r.ArtistID, ok, err)
	}
	if diff := cmp.Diff(got, artistOf(r)); diff != "" {
		t.Errorf("Artist(%s) mismatch (-got +want):\n%s", r.ArtistID, diff)
	}
}

func checkRows(t *testing.T, s store.Store, artistID string, want []store.Row) {
	t.Helper()
	got, err := s.Tracks(ctxFor(t), artistID)
	if err != nil {
		t.Fatalf("Tracks(%s): %v", artistID, err)
	}
	if got == nil {
		got = []store.Row{}
	}
	if diff := cmp.Diff(got, want); diff != "" {
		t.Errorf("Tracks(%s) mismatch (-got +want):\n%s", artistID, diff)
	}
}

func testSaveThenRead(t *testing.T, s store.Store) {
	a := ID("artist/read")
	r := result(a, t0, Tracks(a, 0, 10))
	r.Market = "SE"
	saveChecked(t, s, r)
}

func testConverges(t *testing.T, s store.Store) {
	a := ID("artist/converge")
	first := result(a, t0, Tracks(a, 0, 10))
	save(t, s, first)
	// Tracks 0-4 leave, 5-9 stay in reverse order among newcomers 10-14.
	next := Tracks(a, 10, 5)
	for i := 9; i >= 5; i-- {
		next = slices.Insert(next, 2*(9-i), Track(a, i))
	}
	second := result(a, t0.Add(time.Hour), next)
	saveChecked(t, s, second)
}

func testManyTracks(t *testing.T, s store.Store) {
	a := ID("artist/many")
	saveChecked(t, s,
		result(a, t0, Tracks(a, 0, 30)),
		result(a, t0.Add(time.Minute), []spotify.Track{Track(a, 29), Track(a, 30), Track(a, 0)}),
		result(a, t0.Add(2*time.Minute), Tracks(a, 3, 27)))
}

func testRerun(t *testing.T, s store.Store) {
	a := ID("artist/rerun")
	r := result(a, t0, Tracks(a, 0, 10))
	for range 3 {
		saveChecked(t, s, r)
	}
}

// testUnchanged: a result equal to what is stored but for fetched_at moves
// only the artists row's fetched_at (change-aware writes); the track rows
// keep the fetched_at of the answer that last changed them.
func testUnchanged(t *testing.T, s store.Store) {
	a := ID("artist/unchanged")
	first := result(a, t0, Tracks(a, 0, 10))
	save(t, s, first)
	again := result(a, t0.Add(time.Hour), Tracks(a, 0, 10))
	save(t, s, again)
	checkRows(t, s, a, Rows(first))
	got, ok, err := s.Artist(ctxFor(t), a)
	if err != nil || !ok {
		t.Fatalf("Artist(%s) = %v, %v", a, ok, err)
	}
	if diff := cmp.Diff(got, artistOf(again)); diff != "" {
		t.Errorf("artists row after an unchanged result (-got +want):\n%s", diff)
	}
	// An older unchanged result is still stale.
	if err := s.Save(ctxFor(t), result(a, t0.Add(30*time.Minute), Tracks(a, 0, 10))); !errors.Is(err, store.ErrStale) {
		t.Errorf("Save of an older unchanged result = %v, want ErrStale", err)
	}
	// A changed list rewrites every row.
	changed := result(a, t0.Add(2*time.Hour), Tracks(a, 3, 10))
	saveChecked(t, s, changed)
	// The same list in another market is a change.
	other := changed
	other.Market, other.FetchedAt = "SE", t0.Add(3*time.Hour)
	saveChecked(t, s, other)
}

func testArtistsApart(t *testing.T, s store.Store) {
	x, y := ID("artist/x"), ID("artist/y")
	// A collaboration is in both top lists under one track id.
	collab := Track(x, 99)
	rx := result(x, t0, append(Tracks(x, 0, 5), collab))
	ry := result(y, t0, append(Tracks(y, 0, 5), collab))
	ry.Market = "DE"
	save(t, s, rx)
	save(t, s, ry)
	rx2 := result(x, t0.Add(time.Hour), Tracks(x, 3, 4))
	saveChecked(t, s, rx2)
	checkStored(t, s, ry)
	notFound := store.Result{ArtistID: x, Market: "US", Status: store.StatusNotFound, FetchedAt: t0.Add(2 * time.Hour)}
	save(t, s, notFound)
	checkStored(t, s, ry)
}

func testNotFound(t *testing.T, s store.Store) {
	a := ID("artist/gone")
	save(t, s, result(a, t0, Tracks(a, 0, 10)))
	saveChecked(t, s,
		store.Result{ArtistID: a, Market: "US", Status: store.StatusNotFound, FetchedAt: t0.Add(time.Hour)},
		// And back: Spotify knows the artist again.
		result(a, t0.Add(2*time.Hour), Tracks(a, 2, 4)))
}

func testNotFoundFirst(t *testing.T, s store.Store) {
	a := ID("artist/never")
	r := store.Result{ArtistID: a, Market: "JP", Status: store.StatusNotFound, FetchedAt: t0}
	saveChecked(t, s, r)
}

func testStale(t *testing.T, s store.Store) {
	a := ID("artist/stale")
	newer := result(a, t0.Add(time.Millisecond), Tracks(a, 0, 10))
	save(t, s, newer)
	for _, older := range []store.Result{
		result(a, t0, Tracks(a, 5, 10)),
		{ArtistID: a, Market: "US", Status: store.StatusNotFound, FetchedAt: t0},
	} {
		err := s.Save(ctxFor(t), older)
		if !errors.Is(err, store.ErrStale) {
			t.Errorf("Save(older %s result) = %v, want an error wrapping store.ErrStale", older.Status, err)
		}
		checkStored(t, s, newer)
	}
}

func testDuplicateTrack(t *testing.T, s store.Store) {
	a := ID("artist/dup")
	tracks := Tracks(a, 0, 4)
	dup := tracks[1]
	dup.Popularity = ptr(1) // a second copy that differs must not win
	r := result(a, t0, slices.Insert(tracks, 3, dup))
	saveChecked(t, s, r)
	if rows := Rows(r); len(rows) != 4 || rows[3].Rank != 5 {
		t.Fatalf("test data: rowsOf = %d rows, last rank %d; want 4 rows, last rank 5", len(rows), rows[len(rows)-1].Rank)
	}
}

// testAbsentFields: a field Spotify left out reads back as left out (nil),
// and a real 0 or "" reads back as itself, not as absent.
func testAbsentFields(t *testing.T, s store.Store) {
	a := ID("artist/absent")
	tracks := Tracks(a, 0, 3)
	tracks[0].Popularity, tracks[0].PreviewURL, tracks[0].ISRC = nil, nil, nil
	tracks[1].Popularity, tracks[1].ISRC = ptr(0), ptr("")
	r := result(a, t0, tracks)
	saveChecked(t, s, r)
	rows, err := s.Tracks(ctxFor(t), a)
	if err != nil || len(rows) != 3 {
		t.Fatalf("Tracks = %d rows, %v; want 3", len(rows), err)
	}
	if got := rows[0]; got.Popularity != nil || got.PreviewURL != nil || got.ISRC != nil {
		t.Errorf("a track saved without popularity, preview_url and isrc reads back with popularity %v, preview_url %v, isrc %v; want all nil",
			got.Popularity, got.PreviewURL, got.ISRC)
	}
	if got := rows[1]; got.Popularity == nil || *got.Popularity != 0 || got.ISRC == nil || *got.ISRC != "" {
		t.Errorf("a track saved with popularity 0 and isrc \"\" reads back with %v and %v; want them as saved", got.Popularity, got.ISRC)
	}
}

func testUnknownArtist(t *testing.T, s store.Store) {
	a := ID("artist/unknown")
	got, ok, err := s.Artist(ctxFor(t), a)
	if err != nil || ok {
		t.Errorf("Artist(unknown) = %+v, %v, %v; want false, nil", got, ok, err)
	}
	checkRows(t, s, a, []store.Row{})
}

func testRejectsInvalid(t *testing.T, s store.Store) {
	a := ID("artist/invalid")
	valid := result(a, t0, Tracks(a, 0, 3))
	cases := map[string]func(r *store.Result){
		"empty artist id":     func(r *store.Result) { r.ArtistID = "" },
		"zero fetched_at":     func(r *store.Result) { r.FetchedAt = time.Time{} },
		"unknown status":      func(r *store.Result) { r.Status = "maybe" },
		"empty track id":      func(r *store.Result) { r.Tracks[1].ID = "" },
		"not_found with rows": func(r *store.Result) { r.Status = store.StatusNotFound },
	}
	for name, spoil := range cases {
		r := valid
		r.Tracks = slices.Clone(valid.Tracks)
		spoil(&r)
		if err := s.Save(ctxFor(t), r); !errors.Is(err, store.ErrRejected) {
			t.Errorf("Save(%s) = %v, want an error matching store.ErrRejected", name, err)
		}
	}
	if _, ok, err := s.Artist(ctxFor(t), a); err != nil || ok {
		t.Errorf("Artist after invalid Saves = %v, %v; want false, nil", ok, err)
	}
	checkRows(t, s, a, []store.Row{})
}

// saveArtists saves n artists, a few at a time, and returns their results
// by artist id.
func saveArtists(t *testing.T, s store.Store, prefix string, n int) map[string]store.Result {
	t.Helper()
	want := make(map[string]store.Result, n)
	for i := range n {
		a := ID(fmt.Sprintf("%s/%d", prefix, i))
		r := result(a, t0.Add(time.Duration(i)*time.Second), Tracks(a, 0, i%3))
		if i%10 == 7 {
			r = store.Result{ArtistID: a, Market: "GB", Status: store.StatusNotFound, FetchedAt: r.FetchedAt}
		}
		want[a] = r
	}
	saveAll(t, s, slices.Collect(maps.Values(want)))
	return want
}

// saveAll saves rs, eight at a time, and fails t on the first error.
func saveAll(t *testing.T, s store.Store, rs []store.Result) {
	t.Helper()
	ctx := ctxFor(t)
	var (
		wg   sync.WaitGroup
		sem  = make(chan struct{}, 8)
		errs = make(chan error, len(rs))
	)
	for _, r := range rs {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			if err := s.Save(ctx, r); err != nil {
				errs <- fmt.Errorf("Save(%s): %w", r.ArtistID, err)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

func testScanArtists(t *testing.T, s store.Store) {
	want := saveArtists(t, s, "artist/scan", 120)
	var (
		got    = map[string]store.Artist{}
		inside atomic.Int32
	)
	err := s.ScanArtists(ctxFor(t), func(a store.Artist) error {
		if inside.Add(1) != 1 {
			t.Error("fn called from two goroutines at once")
		}
		defer inside.Add(-1)
		if _, dup := got[a.ArtistID]; dup {
			t.Errorf("ScanArtists visited %s twice", a.ArtistID)
		}
		got[a.ArtistID] = a
		return nil
	})
	if err != nil {
		t.Fatalf("ScanArtists: %v", err)
	}
	wantArtists := make(map[string]store.Artist, len(want))
	for id, r := range want {
		wantArtists[id] = artistOf(r)
	}
	if diff := cmp.Diff(got, wantArtists); diff != "" {
		t.Errorf("ScanArtists mismatch (-got +want):\n%s", diff)
	}
}

func testScanArtistsStops(t *testing.T, s store.Store) {
	saveArtists(t, s, "artist/scanstop", 40)
	stop := errors.New("enough")
	calls := 0
	err := s.ScanArtists(ctxFor(t), func(store.Artist) error {
		calls++
		if calls == 5 {
			return stop
		}
		return nil
	})
	if !errors.Is(err, stop) {
		t.Errorf("ScanArtists = %v, want fn's error", err)
	}
	if calls != 5 {
		t.Errorf("fn called %d times, want 5: the scan goes on after fn's error", calls)
	}
	ctx, cancel := context.WithCancel(ctxFor(t))
	cancel()
	if err := s.ScanArtists(ctx, func(store.Artist) error { return nil }); err == nil {
		t.Error("ScanArtists(cancelled context) = nil, want an error")
	}
}

// testScanTracks saves more rows than one page of any backend and checks
// ScanTracks visits each exactly once, from one goroutine at a time, and
// stops at fn's error.
func testScanTracks(t *testing.T, s store.Store) {
	const artists, perArtist = 130, 10
	ctx := ctxFor(t)
	want := map[string]store.Row{}
	var rs []store.Result
	for i := range artists {
		a := ID(fmt.Sprintf("artist/scantracks/%d", i))
		r := result(a, t0.Add(time.Duration(i)*time.Millisecond), Tracks(a, 0, perArtist))
		for _, row := range Rows(r) {
			want[row.ArtistID+"/"+row.ID] = row
		}
		rs = append(rs, r)
	}
	saveAll(t, s, rs)
	got := map[string]store.Row{}
	var inside atomic.Int32
	err := s.ScanTracks(ctx, func(r store.Row) error {
		if inside.Add(1) != 1 {
			t.Error("fn called from two goroutines at once")
		}
		defer inside.Add(-1)
		k := r.ArtistID + "/" + r.ID
		if _, dup := got[k]; dup {
			t.Errorf("ScanTracks visited %s twice", k)
		}
		got[k] = r
		return nil
	})
	if err != nil {
		t.Fatalf("ScanTracks: %v", err)
	}
	if diff := cmp.Diff(got, want); diff != "" {
		t.Errorf("ScanTracks mismatch (-got +want):\n%s", diff)
	}

	stop := errors.New("enough")
	calls := 0
	err = s.ScanTracks(ctx, func(store.Row) error {
		if calls++; calls == 5 {
			return stop
		}
		return nil
	})
	if !errors.Is(err, stop) || calls != 5 {
		t.Errorf("ScanTracks = %v after %d calls, want fn's error after 5", err, calls)
	}
}

// testConcurrentSaves races eight results of one artist, with different
// fetched_at and overlapping track lists, several rounds.
func testConcurrentSaves(t *testing.T, s store.Store, f Features) {
	const writers = 8
	for round := range 4 {
		a := ID(fmt.Sprintf("artist/race/%d", round))
		results := make([]store.Result, writers)
		for i := range results {
			// Started in an order that is not the order of fetched_at.
			at := t0.Add(time.Duration((i*5+round)%writers) * time.Millisecond)
			results[i] = result(a, at, Tracks(a, i*3, 10))
		}
		ctx := ctxFor(t)
		start := make(chan struct{})
		errs := make([]error, writers)
		var wg sync.WaitGroup
		for i, r := range results {
			wg.Go(func() {
				<-start
				errs[i] = s.Save(ctx, r)
			})
		}
		close(start)
		wg.Wait()

		newest := 0
		for i, r := range results {
			if err := errs[i]; err != nil && !errors.Is(err, store.ErrStale) {
				t.Fatalf("round %d: Save(result %d): %v; want nil or ErrStale", round, i, err)
			}
			if r.FetchedAt.After(results[newest].FetchedAt) {
				newest = i
			}
		}
		got, err := s.Tracks(ctx, a)
		if err != nil {
			t.Fatal(err)
		}
		winner := -1
		for i, r := range results {
			if errs[i] == nil && cmp.Equal(got, Rows(r)) {
				winner = i
			}
		}
		if winner < 0 {
			t.Fatalf("round %d: rows are not those of any successful Save (a mixture?):\n%v", round, trackIDs(got))
		}
		if f.NewestWins && winner != newest {
			t.Errorf("round %d: rows of result %d (fetched %s) won over the newest, %d (fetched %s)", round,
				winner, results[winner].FetchedAt.Format(store.TimeFormat), newest, results[newest].FetchedAt.Format(store.TimeFormat))
		}
		artist, ok, err := s.Artist(ctx, a)
		if err != nil || !ok {
			t.Fatalf("Artist = %v, %v", ok, err)
		}
		if diff := cmp.Diff(artist, artistOf(results[winner])); diff != "" {
			t.Errorf("round %d: artists row is not the winner's (-got +want):\n%s", round, diff)
		}
	}
}

func trackIDs(rows []store.Row) []string {
	ids := make([]string, len(rows))
	for i, r := range rows {
		ids[i] = fmt.Sprintf("%d:%s@%s", r.Rank, r.ID, r.FetchedAt.Format(store.TimeFormat))
	}
	return ids
}
