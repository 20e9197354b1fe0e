// Package artistid validates Spotify artist IDs and parses the forms in which
// people write them: a bare ID, a spotify:artist: URI, or an open.spotify.com
// URL. Nothing builds a URL from an artist ID that has not passed Valid.
package artistid

import (
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/sixpotify/top-tracks/internal/clip"
)

// Len is the length of every Spotify artist ID.
const Len = 22

// ErrInvalid is wrapped by every error Parse returns.
var ErrInvalid = errors.New("invalid artist")

// Valid reports whether id is 22 characters of [0-9A-Za-z].
func Valid(id string) bool {
	if len(id) != Len {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		switch {
		case '0' <= c && c <= '9', 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z':
		default:
			return false
		}
	}
	return true
}

// Check returns nil for a valid artist ID, and otherwise an error wrapping
// ErrInvalid that says why. It is the one check every path that takes an
// artist ID makes (the producer, the message decoder, the Spotify client).
func Check(id string) error {
	if Valid(id) {
		return nil
	}
	return fmt.Errorf("%w %q: an artist ID is %d characters of 0-9, A-Z, a-z", ErrInvalid, clip.String(id, 80), Len)
}

// Parse returns the artist ID in ref, which may be a bare ID,
// "spotify:artist:ID" or "https://open.spotify.com/artist/ID[?…]" (an
// "/intl-xx/" path prefix is accepted, as Spotify's share links carry one).
// Surrounding white space is ignored. The error wraps ErrInvalid and says why.
func Parse(ref string) (string, error) {
	s := strings.TrimSpace(ref)
	var id string
	switch {
	case s == "":
		return "", fmt.Errorf("%w: empty", ErrInvalid)
	case strings.HasPrefix(s, "spotify:"):
		rest, ok := strings.CutPrefix(s, "spotify:artist:")
		if !ok {
			return "", fmt.Errorf("%w %q: a spotify: URI must be spotify:artist:ID", ErrInvalid, clip.String(s, 80))
		}
		id = rest
	case strings.HasPrefix(s, "http://") || strings.HasPrefix(s, "https://"):
		var err error
		if id, err = fromURL(s); err != nil {
			return "", err
		}
	default:
		id = s
	}
	if !Valid(id) { // named as written, not only the part taken for an ID
		return "", fmt.Errorf("%w %q: an artist ID is %d characters of 0-9, A-Z, a-z", ErrInvalid, clip.String(s, 80), Len)
	}
	return id, nil
}

func fromURL(s string) (string, error) {
	u, err := url.Parse(s)
	if err != nil {
		return "", fmt.Errorf("%w %q: not a URL", ErrInvalid, clip.String(s, 80))
	}
	if u.Host != "open.spotify.com" {
		return "", fmt.Errorf("%w %q: the URL must be on open.spotify.com", ErrInvalid, clip.String(s, 80))
	}
	// RawPath is set when the path holds escapes such as %2F; an ID never does.
	if u.RawPath != "" || u.User != nil || u.Port() != "" {
		return "", fmt.Errorf("%w %q: not an artist URL", ErrInvalid, clip.String(s, 80))
	}
	parts := strings.Split(strings.TrimPrefix(u.Path, "/"), "/")
	if len(parts) > 0 && strings.HasPrefix(parts[0], "intl-") {
		parts = parts[1:]
	}
	if len(parts) == 3 && parts[2] == "" { // trailing slash
		parts = parts[:2]
	}
	if len(parts) != 2 || parts[0] != "artist" {
		return "", fmt.Errorf("%w %q: the URL must be https://open.spotify.com/artist/ID", ErrInvalid, clip.String(s, 80))
	}
	return parts[1], nil
}
