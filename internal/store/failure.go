package store

import (
	"context"
	"time"

	"github.com/sixpotify/top-tracks/internal/clip"
)

// Failure is why a message for an artist last failed on its own account (an
// answer Spotify refused, a result the store rejected, retries spent), and
// when. A store keeps it on the artist's row beside, never instead of, the
// contract's attributes: last_error and last_error_at. A successful Save of
// the artist clears it.
type Failure struct {
	Reason string
	At     time.Time
}

// MaxFailureReason is the most bytes of a reason a store keeps.
const MaxFailureReason = 1000

// FailureRecorder is the optional capability of a store that records a
// Failure. A row that does not exist yet gets only artist_id and the
// failure, and is no artist to the other reads (Artist, ScanArtists): the
// store holds no fetch of it. Of two failures recorded for one artist the
// later (by at) stays.
type FailureRecorder interface {
	RecordFailure(ctx context.Context, artistID, reason string, at time.Time) error
}

// FailureReader is the optional capability of a store that reads the
// Failure recorded for an artist; ok is false when there is none.
type FailureReader interface {
	LastFailure(ctx context.Context, artistID string) (f Failure, ok bool, err error)
}

// ArtistCounts are the artists a store holds, as far as it can count them
// without reading every row.
type ArtistCounts struct {
	// Total is every artist the store holds (with Approximate, an estimate
	// that may include rows that are not artists yet).
	Total int
	// Approximate is true when Total is the store's own estimate
	// (DynamoDB's ItemCount, refreshed about every six hours).
	Approximate bool
	// Exact is true when ByStatus, Stale and Failing were counted; a store
	// that would have to read the whole table leaves them zero.
	Exact    bool
	ByStatus map[Status]int
	// Stale counts the artists fetched before the staleBefore given.
	Stale int
	// Failing counts the artists whose last message failed and that have
	// not been fetched since (a recorded Failure).
	Failing int
}

// ArtistCounter is the optional capability of a store that counts its
// artists cheaply: exactly when it can, or its own estimate.
type ArtistCounter interface {
	CountArtistsBy(ctx context.Context, staleBefore time.Time) (ArtistCounts, error)
}

// ClipReason cuts a reason to MaxFailureReason bytes, on a rune boundary.
func ClipReason(reason string) string { return clip.String(reason, MaxFailureReason) }
