package fakespotify

import (
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"strconv"
	"strings"

	"github.com/sixpotify/top-tracks/internal/spotify"
)

const base62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

// markets is what every track claims in available_markets: a long list the
// client is meant to drop.
var markets = []string{"AR", "AU", "BR", "CA", "CH", "DE", "DK", "ES", "FI", "FR",
	"GB", "IE", "IT", "JP", "MX", "NL", "NO", "NZ", "SE", "US"}

var (
	adjectives = []string{"Midnight", "Golden", "Electric", "Quiet", "Broken", "Neon", "Silver", "Wild",
		"Lonely", "Endless", "Paper", "Velvet", "Northern", "Burning", "Hollow", "Crystal"}
	nouns = []string{"River", "Heart", "City", "Summer", "Echo", "Highway", "Garden", "Signal",
		"Mirror", "Ocean", "Fire", "Letters", "Satellite", "Dreams", "Shadows", "Horizon"}
)

// Tracks returns the n top tracks the Server answers for artistID at
// generation gen, as the client decodes them. They are a pure function of
// the arguments. Generation 0 is the artist's base list; any other
// generation replaces about a third of it (at least one track) with tracks of
// its own and reorders the list, so that two generations always differ.
func Tracks(artistID string, gen, n int) []spotify.Track {
	if n <= 0 {
		return []spotify.Track{}
	}
	a := artistFor(artistID)
	tracks := make([]spotify.Track, n)
	for i := range tracks {
		tracks[i] = trackFor(a, "base/"+strconv.Itoa(i))
	}
	if gen != 0 {
		r := newRand(artistID, "gen/"+strconv.Itoa(gen))
		replace := max(1, n/3)
		for k, i := range r.Perm(n)[:replace] {
			tracks[i] = trackFor(a, "gen/"+strconv.Itoa(gen)+"/"+strconv.Itoa(k))
		}
		r.Shuffle(n, func(i, j int) { tracks[i], tracks[j] = tracks[j], tracks[i] })
	}
	// Spotify sorts by popularity; a track's popularity moves between generations.
	top := 60 + newRand(artistID, "popularity").IntN(35)
	for i := range tracks {
		p := max(0, top-2*i)
		tracks[i].Popularity = &p
	}
	return tracks
}

// WithoutRemovedFields returns tracks as a Development Mode app decodes
// them since February 2026 (Server.SetFieldsRemoved): no popularity. The
// ISRC stays: Spotify restored external_ids in March 2026.
func WithoutRemovedFields(tracks []spotify.Track) []spotify.Track {
	out := make([]spotify.Track, len(tracks))
	for i, t := range tracks {
		t.Popularity = nil
		out[i] = t
	}
	return out
}

type artist struct {
	id   string
	name string
}

func artistFor(id string) artist {
	r := newRand(id, "artist")
	return artist{id: id, name: "The " + pick(r, adjectives) + " " + pick(r, nouns)}
}

func trackFor(a artist, key string) spotify.Track {
	r := newRand(a.id, key)
	id := randomID(r)
	main := SimpleArtist(a.id, a.name)
	artists := []spotify.SimpleArtist{main}
	if r.IntN(4) == 0 {
		artists = append(artists, SimpleArtist(randomID(r), pick(r, adjectives)+" "+pick(r, nouns)))
	}
	albumID := randomID(r)
	total := 8 + r.IntN(9)
	albumType := []string{"album", "album", "single", "compilation"}[r.IntN(4)]
	if albumType == "single" {
		total = 1 + r.IntN(3)
	}
	t := spotify.Track{
		ID:           id,
		Name:         pick(r, adjectives) + " " + pick(r, nouns),
		DurationMS:   150_000 + r.IntN(150_000),
		Explicit:     r.IntN(5) == 0,
		URI:          "spotify:track:" + id,
		Artists:      artists,
		ExternalURLs: map[string]string{"spotify": "https://open.spotify.com/track/" + id},
		TrackNumber:  1 + r.IntN(total),
		Album: spotify.Album{
			ID:                   albumID,
			Name:                 pick(r, adjectives) + " " + pick(r, nouns),
			AlbumType:            albumType,
			TotalTracks:          total,
			ReleaseDate:          fmt.Sprintf("%d-%02d-%02d", 1990+r.IntN(36), 1+r.IntN(12), 1+r.IntN(28)),
			ReleaseDatePrecision: "day",
			URI:                  "spotify:album:" + albumID,
			Images:               images(r),
			ExternalURLs:         map[string]string{"spotify": "https://open.spotify.com/album/" + albumID},
			Artists:              []spotify.SimpleArtist{main},
		},
	}
	isrc := "QZ" + strings.ToUpper(id[:10])
	t.ISRC = &isrc
	if r.IntN(3) != 0 { // Spotify has no preview for many tracks
		u := "https://p.scdn.co/mp3-preview/" + hex(r, 40)
		t.PreviewURL = &u
	}
	return t
}

// SimpleArtist returns the simplified artist object Spotify sends, inside a
// track or an album, for the artist id named name.
func SimpleArtist(id, name string) spotify.SimpleArtist {
	return spotify.SimpleArtist{
		ID:           id,
		Name:         name,
		URI:          "spotify:artist:" + id,
		ExternalURLs: map[string]string{"spotify": "https://open.spotify.com/artist/" + id},
	}
}

func images(r *rand.Rand) []spotify.Image {
	code := hex(r, 24)
	var out []spotify.Image
	for _, size := range []int{640, 300, 64} {
		out = append(out, spotify.Image{
			URL:    "https://i.scdn.co/image/ab67616d0000" + strconv.Itoa(size) + code,
			Height: &size,
			Width:  &size,
		})
	}
	return out
}

// newRand returns a generator seeded by the artist and a key.
func newRand(artistID, key string) *rand.Rand {
	h := fnv.New64a()
	_, _ = h.Write([]byte(artistID))
	_, _ = h.Write([]byte{0})
	_, _ = h.Write([]byte(key))
	s := h.Sum64()
	return rand.New(rand.NewPCG(s, s^0x9e3779b97f4a7c15))
}

func randomID(r *rand.Rand) string {
	b := make([]byte, 22)
	for i := range b {
		b[i] = base62[r.IntN(len(base62))]
	}
	return string(b)
}

func hex(r *rand.Rand, n int) string {
	const digits = "0123456789abcdef"
	b := make([]byte, n)
	for i := range b {
		b[i] = digits[r.IntN(16)]
	}
	return string(b)
}

func pick(r *rand.Rand, words []string) string { return words[r.IntN(len(words))] }
