package spotify

// Track is one track of an artist's top tracks, as the Web API returns it
// (available_markets dropped: it is large and changes without the track changing).
//
// Popularity, PreviewURL and ISRC are pointers because Spotify leaves them
// out for some apps (popularity is removed for Development Mode apps since
// February 2026; preview_url is null for many tracks and deprecated for new
// apps since November 2024; external_ids was removed in February 2026 and
// restored in March): nil is "Spotify did not say", never 0 or "". The json
// tags omit a nil one, so a store or an encoder leaves it absent.
type Track struct {
	ID           string            `json:"id"`
	Name         string            `json:"name"`
	Popularity   *int              `json:"popularity,omitempty"`
	DurationMS   int               `json:"duration_ms"`
	Explicit     bool              `json:"explicit"`
	URI          string            `json:"uri"`
	Album        Album             `json:"album"`
	Artists      []SimpleArtist    `json:"artists"`
	ExternalURLs map[string]string `json:"external_urls"`
	PreviewURL   *string           `json:"preview_url,omitempty"`
	TrackNumber  int               `json:"track_number"`
	// ISRC is external_ids.isrc in Spotify's answer, flattened: what
	// analysts join other catalogues on.
	ISRC *string `json:"isrc,omitempty"`
}

// wireTrack is a track as Spotify sends it: the ISRC inside external_ids.
// Its own ISRC field, at a shallower depth, hides Track's "isrc", so that an
// answer with a top-level "isrc" (which Spotify never sends) is not read as
// one.
type wireTrack struct {
	Track
	ISRC        *string `json:"isrc,omitempty"`
	ExternalIDs struct {
		ISRC *string `json:"isrc"`
	} `json:"external_ids"`
}

// Album is the simplified album object inside a track.
type Album struct {
	ID                   string            `json:"id"`
	Name                 string            `json:"name"`
	AlbumType            string            `json:"album_type"`
	TotalTracks          int               `json:"total_tracks"`
	ReleaseDate          string            `json:"release_date"`
	ReleaseDatePrecision string            `json:"release_date_precision"`
	URI                  string            `json:"uri"`
	Images               []Image           `json:"images"`
	ExternalURLs         map[string]string `json:"external_urls"`
	Artists              []SimpleArtist    `json:"artists"`
}

// Image is a cover image.
type Image struct {
	URL    string `json:"url"`
	Height *int   `json:"height"`
	Width  *int   `json:"width"`
}

// SimpleArtist is the simplified artist object inside a track or album.
type SimpleArtist struct {
	ID           string            `json:"id"`
	Name         string            `json:"name"`
	URI          string            `json:"uri"`
	ExternalURLs map[string]string `json:"external_urls"`
}
