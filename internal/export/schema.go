package export

import (
	"time"

	"github.com/parquet-go/parquet-go"

	"github.com/sixpotify/top-tracks/internal/store"
)

// Datasets are the two tables of the lake, in the order Run writes them.
const (
	TopTracks = "top_tracks"
	Artists   = "artists"
)

// TrackRecord is one row of the top_tracks dataset: a track row of the
// store with the nested album and artists flattened into what analysts
// query. The parquet tags are the schema; deploy/template.yaml's Glue table
// declares the same columns (internal/deploy checks it). A field Spotify
// may leave out (popularity, preview_url, isrc) is an optional column, null
// when it did.
type TrackRecord struct {
	ArtistID    string  `parquet:"artist_id,dict"`
	TrackID     string  `parquet:"track_id"`
	Rank        int32   `parquet:"rank"`
	Name        string  `parquet:"name"`
	Popularity  *int32  `parquet:"popularity,optional"`
	DurationMS  int32   `parquet:"duration_ms"`
	Explicit    bool    `parquet:"explicit"`
	URI         string  `parquet:"uri"`
	TrackNumber int32   `parquet:"track_number"`
	PreviewURL  *string `parquet:"preview_url,optional"`
	ISRC        *string `parquet:"isrc,optional"`
	AlbumID     string  `parquet:"album_id,dict"`
	AlbumName   string  `parquet:"album_name,dict"`
	// AlbumReleaseDate is Spotify's release_date as given: a day, a month
	// ("1999-05") or a year ("1999"), so a string, not a date.
	AlbumReleaseDate string    `parquet:"album_release_date,dict"`
	ArtistIDs        []string  `parquet:"artist_ids,list"`
	ArtistNames      []string  `parquet:"artist_names,list"`
	Market           string    `parquet:"market,dict"`
	FetchedAt        time.Time `parquet:"fetched_at,timestamp(millisecond)"`
}

// ArtistRecord is one row of the artists dataset.
type ArtistRecord struct {
	ArtistID   string    `parquet:"artist_id"`
	Market     string    `parquet:"market,dict"`
	Status     string    `parquet:"status,dict"`
	TrackCount int32     `parquet:"track_count"`
	FetchedAt  time.Time `parquet:"fetched_at,timestamp(millisecond)"`
}

// Schema returns the Parquet schema of a dataset (TopTracks or Artists),
// or nil for another name.
func Schema(dataset string) *parquet.Schema {
	switch dataset {
	case TopTracks:
		return parquet.SchemaOf(TrackRecord{})
	case Artists:
		return parquet.SchemaOf(ArtistRecord{})
	}
	return nil
}

// TrackRecordOf flattens a store row.
func TrackRecordOf(r store.Row) TrackRecord {
	rec := TrackRecord{
		ArtistID:         r.ArtistID,
		TrackID:          r.ID,
		Rank:             int32(r.Rank),
		Name:             r.Name,
		Popularity:       int32Ptr(r.Popularity),
		DurationMS:       int32(r.DurationMS),
		Explicit:         r.Explicit,
		URI:              r.URI,
		TrackNumber:      int32(r.TrackNumber),
		PreviewURL:       r.PreviewURL,
		ISRC:             r.ISRC,
		AlbumID:          r.Album.ID,
		AlbumName:        r.Album.Name,
		AlbumReleaseDate: r.Album.ReleaseDate,
		ArtistIDs:        make([]string, len(r.Artists)),
		ArtistNames:      make([]string, len(r.Artists)),
		Market:           r.Market,
		FetchedAt:        r.FetchedAt.UTC(),
	}
	for i, a := range r.Artists {
		rec.ArtistIDs[i], rec.ArtistNames[i] = a.ID, a.Name
	}
	return rec
}

// int32Ptr is p as an int32, nil for nil.
func int32Ptr(p *int) *int32 {
	if p == nil {
		return nil
	}
	v := int32(*p)
	return &v
}

// ArtistRecordOf converts an artists row.
func ArtistRecordOf(a store.Artist) ArtistRecord {
	// A field read on its own line: internal/deploy takes a selector
	// passed to a call (int32(a.Tracks)) for a method value, and a store
	// method is named Tracks.
	tracks := a.Tracks
	return ArtistRecord{
		ArtistID:   a.ArtistID,
		Market:     a.Market,
		Status:     string(a.Status),
		TrackCount: int32(tracks),
		FetchedAt:  a.FetchedAt.UTC(),
	}
}
