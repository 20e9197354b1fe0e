// Package artistid validates Spotify artist IDs and parses the forms in which
// people write them: a bare ID, a spotify:artist: URI, or an open.spotify.com
// URL. Nothing builds a URL from an artist ID that has not passed Valid.
package artistid

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
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
			return "", fmt.Errorf("%w %q: a spotify: URI must be spotify:artist:ID", ErrInvalid, clip(s))
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
	if !Valid(id) {
		return "", fmt.Errorf("%w %q: an artist ID is %d characters of 0-9, A-Z, a-z", ErrInvalid, clip(s), Len)
	}
	return id, nil
}

func fromURL(s string) (string, error) {
	u, err := url.Parse(s)
	if err != nil {
		return "", fmt.Errorf("%w %q: not a URL", ErrInvalid, clip(s))
	}
	if u.Host != "open.spotify.com" {
		return "", fmt.Errorf("%w %q: the URL must be on open.spotify.com", ErrInvalid, clip(s))
	}
	// RawPath is set when the path holds escapes such as %2F; an ID never does.
	if u.RawPath != "" || u.User != nil || u.Port() != "" {
		return "", fmt.Errorf("%w %q: not an artist URL", ErrInvalid, clip(s))
	}
	parts := strings.Split(strings.TrimPrefix(u.Path, "/"), "/")
	if len(parts) > 0 && strings.HasPrefix(parts[0], "intl-") {
		parts = parts[1:]
	}
	if len(parts) == 3 && parts[2] == "" { // trailing slash
		parts = parts[:2]
	}
	if len(parts) != 2 || parts[0] != "artist" {
		return "", fmt.Errorf("%w %q: the URL must be https://open.spotify.com/artist/ID", ErrInvalid, clip(s))
	}
	return parts[1], nil
}

// clip keeps error lines short when the input is long.
func clip(s string) string {
	const max = 80
	if len(s) <= max {
		return s
	}
	return s[:max] + "…"
}
