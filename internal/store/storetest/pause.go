package storetest

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/sixpotify/top-tracks/internal/store"
)

// testSpotifyPause: the fleet's pause is recorded and read back; of two the
// one that ends later stays; no read of the artists sees it.
func testSpotifyPause(t *testing.T, s store.Store) {
	pk, ok := s.(store.PauseKeeper)
	if !ok {
		t.Fatalf("%T keeps no Spotify pause (store.PauseKeeper)", s)
	}
	ctx := ctxFor(t)
	if got, ok, err := pk.SpotifyPause(ctx); err != nil || ok {
		t.Fatalf("SpotifyPause before any = %+v, %v, %v; want none", got, ok, err)
	}
	day := store.SpotifyPause{Since: t0, Until: t0.Add(22 * time.Hour), Reason: "QUOTA_EXCEEDED"}
	for _, p := range []store.SpotifyPause{day, {Since: t0.Add(time.Minute), Until: t0.Add(time.Hour), Reason: "shorter"}} {
		if err := pk.SetSpotifyPause(ctx, p); err != nil {
			t.Fatalf("SetSpotifyPause(%+v): %v", p, err)
		}
	}
	got, ok, err := pk.SpotifyPause(ctx)
	if err != nil || !ok {
		t.Fatalf("SpotifyPause = %+v, %v, %v", got, ok, err)
	}
	if diff := cmp.Diff(got, day); diff != "" {
		t.Errorf("SpotifyPause after a longer then a shorter (-got +want):\n%s", diff)
	}
	later := store.SpotifyPause{Since: t0.Add(23 * time.Hour), Until: t0.Add(47 * time.Hour), Reason: "again"}
	if err := pk.SetSpotifyPause(ctx, later); err != nil {
		t.Fatalf("SetSpotifyPause: %v", err)
	}
	if got, _, _ := pk.SpotifyPause(ctx); !cmp.Equal(got, later) {
		t.Errorf("SpotifyPause after a later one = %+v, want %+v", got, later)
	}
	err = s.ScanArtists(ctx, func(a store.Artist) error {
		if a.ArtistID == store.PauseKey {
			t.Errorf("ScanArtists visited the pause item: %+v", a)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("ScanArtists: %v", err)
	}
	if a, ok, err := s.Artist(ctx, store.PauseKey); err != nil || ok {
		t.Errorf("Artist(%q) = %+v, %v, %v; want none", store.PauseKey, a, ok, err)
	}
}
