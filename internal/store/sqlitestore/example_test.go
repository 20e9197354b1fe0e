package sqlitestore_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/sixpotify/top-tracks/internal/spotify"
	"github.com/sixpotify/top-tracks/internal/store"
	"github.com/sixpotify/top-tracks/internal/store/sqlitestore"
)

func Example() {
	dir, _ := os.MkdirTemp("", "sqlitestore-example")
	defer os.RemoveAll(dir)
	ctx := context.Background()

	path, err := sqlitestore.ParseURL("sqlite:" + filepath.Join(dir, "sixpotify.db"))
	if err != nil {
		fmt.Println(err)
		return
	}
	s, err := sqlitestore.Open(ctx, path)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer s.Close()

	artist := "0TnOYISbd1XYRBk9myaseg"
	at := time.Date(2025, 3, 14, 15, 9, 26, 535_000_000, time.UTC)
	err = s.Save(ctx, store.Result{ArtistID: artist, Market: "US", Status: store.StatusOK, FetchedAt: at,
		Tracks: []spotify.Track{{ID: "2takcwOaAZWiXQijPHIx7B", Name: "Time of Our Lives"}, {ID: "4kLLWz7srcuLKA7Et40PQR", Name: "Timber"}}})
	if err != nil {
		fmt.Println(err)
		return
	}
	rows, _ := s.Tracks(ctx, artist)
	for _, r := range rows {
		fmt.Println(r.Rank, r.Name)
	}
	// An older fetch never overwrites a newer one.
	err = s.Save(ctx, store.Result{ArtistID: artist, Market: "US", Status: store.StatusOK, FetchedAt: at.Add(-time.Hour)})
	fmt.Println(errors.Is(err, store.ErrStale))
	_ = s.ScanArtists(ctx, func(a store.Artist) error {
		fmt.Println(a.ArtistID, a.Status, a.Tracks, a.FetchedAt.Format(store.TimeFormat))
		return nil
	})
	// Output:
	// 1 Time of Our Lives
	// 2 Timber
	// true
	// 0TnOYISbd1XYRBk9myaseg ok 2 2025-03-14T15:09:26.535Z
}
