package spotify

import "time"

// SetClock makes c tell the time with now: for token refreshes and
// Retry-After dates.
func SetClock(c *Client, now func() time.Time) {
	c.now = now
	c.tokens.now = now
}

// DecodeTopTracks is decodeTopTracks, for the fuzz test.
var DecodeTopTracks = decodeTopTracks
