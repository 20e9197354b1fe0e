package spotify

// Track is one track of an artist's top tracks, as the Web API returns it
// (available_markets dropped: it is large and changes without the track changing).
type Track struct {
	ID           string            `json:"id"`
	Name         string            `json:"name"`
	Popularity   int               `json:"popularity"`
	DurationMS   int               `json:"duration_ms"`
	Explicit     bool              `json:"explicit"`
	URI          string            `json:"uri"`
	Album        Album             `json:"album"`
	Artists      []SimpleArtist    `json:"artists"`
	ExternalURLs map[string]string `json:"external_urls"`
	PreviewURL   *string           `json:"preview_url"`
	TrackNumber  int               `json:"track_number"`
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
