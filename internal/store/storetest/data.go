package storetest

import (
	"fmt"
	"hash/fnv"
	"math/rand/v2"

	"github.com/sixpotify/top-tracks/internal/fakespotify"
	"github.com/sixpotify/top-tracks/internal/spotify"
)

const base62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

// ID returns a Spotify-shaped ID (22 characters of [0-9A-Za-z]) that depends
// only on seed.
func ID(seed string) string {
	h := fnv.New64a()
	h.Write([]byte(seed))
	r := rand.New(rand.NewPCG(h.Sum64(), 0x5eed))
	b := make([]byte, 22)
	for i := range b {
		b[i] = base62[r.IntN(len(base62))]
	}
	return string(b)
}

// Track returns the n-th track of an artist as the Web API would describe
// it: nested album and artists, cover images (some without sizes, some
// albums with none), a featured artist on some, no preview_url on every
// third, no popularity on every fifth (as Spotify answers a Development
// Mode app since February 2026), no ISRC on every fourth, non-ASCII names.
// It depends only on its arguments.
func Track(artistID string, n int) spotify.Track {
	id := ID(fmt.Sprintf("track/%s/%d", artistID, n))
	albumID := ID(fmt.Sprintf("album/%s/%d", artistID, n/3))
	artist := fakespotify.SimpleArtist(artistID, "Artist "+artistID[:5])
	artists := []spotify.SimpleArtist{artist}
	if n%4 == 1 {
		feat := ID(fmt.Sprintf("feat/%s/%d", artistID, n))
		artists = append(artists, fakespotify.SimpleArtist(feat, "Ñandú & Ørsted"))
	}
	var preview *string
	if n%3 != 0 {
		p := fmt.Sprintf("https://p.scdn.co/mp3-preview/%x?cid=cfe923b2d660439caf2b557b21f31221", id)
		preview = &p
	}
	images := []spotify.Image{
		{URL: "https://i.scdn.co/image/ab67616d0000b273" + albumID, Height: ptr(640), Width: ptr(640)},
		{URL: "https://i.scdn.co/image/ab67616d00001e02" + albumID, Height: ptr(300), Width: ptr(300)},
		{URL: "https://i.scdn.co/image/ab67616d00004851" + albumID, Height: ptr(64), Width: ptr(64)},
	}
	switch {
	case n%7 == 6:
		images = []spotify.Image{} // some albums have no cover
	case n%5 == 4:
		images = images[:1]
		images[0].Height, images[0].Width = nil, nil
	}
	albumType, date, precision := "album", fmt.Sprintf("20%02d-0%d-1%d", n%25, n%9+1, n%10), "day"
	if n%6 == 5 {
		albumType, date, precision = "single", fmt.Sprintf("19%02d", 70+n%30), "year"
	}
	var popularity *int
	if n%5 != 2 {
		popularity = ptr(100 - n%100)
	}
	var isrc *string
	if n%4 != 3 {
		isrc = ptr(fmt.Sprintf("QZES%08d", n))
	}
	return spotify.Track{
		ID:         id,
		Name:       fmt.Sprintf("Canción nº %d — “Live” 🎵", n),
		Popularity: popularity,
		ISRC:       isrc,
		DurationMS: 150_000 + n*7_919,
		Explicit:   n%2 == 1,
		URI:        "spotify:track:" + id,
		Album: spotify.Album{
			ID:                   albumID,
			Name:                 fmt.Sprintf("Álbum %d", n/3),
			AlbumType:            albumType,
			TotalTracks:          12 + n%7,
			ReleaseDate:          date,
			ReleaseDatePrecision: precision,
			URI:                  "spotify:album:" + albumID,
			Images:               images,
			ExternalURLs:         map[string]string{"spotify": "https://open.spotify.com/album/" + albumID},
			Artists:              []spotify.SimpleArtist{artist},
		},
		Artists:      artists,
		ExternalURLs: map[string]string{"spotify": "https://open.spotify.com/track/" + id},
		PreviewURL:   preview,
		TrackNumber:  n%12 + 1,
	}
}

// Tracks returns tracks from, from+1, ... from+n-1 of an artist.
func Tracks(artistID string, from, n int) []spotify.Track {
	ts := make([]spotify.Track, n)
	for i := range ts {
		ts[i] = Track(artistID, from+i)
	}
	return ts
}

func ptr[T any](v T) *T { return &v }
