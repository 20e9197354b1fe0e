package export_test

import (
	"bytes"
	"testing"

	"github.com/parquet-go/parquet-go"

	"github.com/sixpotify/top-tracks/internal/export"
	"github.com/sixpotify/top-tracks/internal/fakespotify"
	"github.com/sixpotify/top-tracks/internal/fakespotify/fakespotifytest"
	"github.com/sixpotify/top-tracks/internal/store"
	"github.com/sixpotify/top-tracks/internal/store/storetest"
	"github.com/sixpotify/top-tracks/internal/testenv"
)

// TestRemovedFieldsAreNull fetches from the stand-in answering as Spotify
// answers a Development Mode app since February 2026 (no popularity),
// saves it in each store and exports it: popularity is an optional column,
// null in every row, never 0; isrc holds external_ids.isrc.
func TestRemovedFieldsAreNull(t *testing.T) {
	a := storetest.ID("export/removed-fields")
	tracks, _ := fakespotifytest.TopTracks(t, fakespotify.Config{FieldsRemoved: true}, a)
	for name, newStore := range map[string]func(*testing.T) backend{"sqlite": newSQLite, "dynamodb": newDynamo} {
		t.Run(name, func(t *testing.T) {
			s, l := newStore(t), fileLake(t)
			r := store.Result{ArtistID: a, Market: "US", Status: store.StatusOK, FetchedAt: t0, Tracks: tracks}
			if err := s.Save(testenv.Context(t), r); err != nil {
				t.Fatal(err)
			}
			if _, err := run(t, s, l.dst, export.Options{}); err != nil {
				t.Fatalf("export: %v", err)
			}
			names := l.list(t, export.PartitionPrefix(export.TopTracks, date))
			if len(names) != 1 {
				t.Fatalf("parts %v, want 1", names)
			}
			b := l.read(t, names[0])
			f, err := parquet.OpenFile(bytes.NewReader(b), int64(len(b)))
			if err != nil {
				t.Fatal(err)
			}
			for _, col := range []string{"popularity", "isrc", "preview_url"} {
				field, ok := f.Schema().Lookup(col)
				if !ok || !field.Node.Optional() {
					t.Errorf("column %s: present %v; want an optional column", col, ok)
				}
			}
			rows, err := parquet.Read[export.TrackRecord](bytes.NewReader(b), int64(len(b)))
			if err != nil || len(rows) != 10 {
				t.Fatalf("read %d rows, %v; want 10", len(rows), err)
			}
			for _, row := range rows {
				if row.Popularity != nil {
					t.Errorf("track %s: popularity %d, want null", row.TrackID, *row.Popularity)
				}
				if row.ISRC == nil || *row.ISRC == "" {
					t.Errorf("track %s: isrc %v, want Spotify's", row.TrackID, row.ISRC)
				}
			}
		})
	}
}
