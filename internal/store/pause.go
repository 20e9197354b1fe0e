package store

import (
	"context"
	"time"
)

// SpotifyPause is a pause of every Spotify call that the whole fleet shares:
// Spotify answered one task a 429 that closes the API for long (its quota is
// spent, or a Retry-After longer than a task sleeps through), until Until,
// because Reason. One task records it; the others read it and make no call
// to learn it, and a chatbot's ask answers at once with the time.
type SpotifyPause struct {
	Until  time.Time
	Since  time.Time
	Reason string
}

// PauseKeeper is the optional capability of a store that keeps the fleet's
// SpotifyPause: one small item beside the artists (DynamoDB: an item of the
// artists table whose key is no artist ID, with no fetched_at, so that no
// read of the artists sees it; SQLite: a table of its own). Of two pauses
// recorded, the one that ends later stays. ok is false when none was ever
// recorded; a pause that has ended is returned as it was.
type PauseKeeper interface {
	SetSpotifyPause(ctx context.Context, p SpotifyPause) error
	SpotifyPause(ctx context.Context) (p SpotifyPause, ok bool, err error)
}

// PauseKey is the artist_id of the DynamoDB item that holds the fleet's
// SpotifyPause: not 22 characters of [0-9A-Za-z], so never an artist's.
const PauseKey = "#spotify-pause"
