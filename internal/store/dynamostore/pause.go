package dynamostore

import (
	"context"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/sixpotify/top-tracks/internal/store"
)

var _ store.PauseKeeper = (*Store)(nil)

// Attributes of the pause item (store.PauseKey in the artists table). It has
// no fetched_at, so no read of the artists sees it, and it expires a day
// after the pause ends (expires_at, the table's TTL).
const (
	attrPausedUntil = "paused_until"
	attrPausedSince = "paused_since"
	attrPauseReason = "pause_reason"
)

// pauseKeep is how long the pause item outlives its pause.
const pauseKeep = 24 * time.Hour

// SetSpotifyPause records p unless a pause that ends later is recorded.
func (s *Store) SetSpotifyPause(ctx context.Context, p store.SpotifyPause) error {
	err := s.setUnlessLater(ctx, store.PauseKey, attrPausedUntil, map[string]types.AttributeValue{
		attrPausedUntil: str(formatTime(p.Until)),
		attrPausedSince: str(formatTime(p.Since)),
		attrPauseReason: str(store.ClipReason(p.Reason)),
		attrExpiresAt:   num(p.Until.Add(pauseKeep).Unix()),
	})
	if err != nil {
		return fmt.Errorf("dynamostore: record the Spotify pause: %w", err)
	}
	return nil
}

// SpotifyPause reads the recorded pause (a consistent read).
func (s *Store) SpotifyPause(ctx context.Context) (store.SpotifyPause, bool, error) {
	item, err := s.readArtistRow(ctx, store.PauseKey, attrPausedUntil, attrPausedSince, attrPauseReason)
	if err != nil {
		return store.SpotifyPause{}, false, fmt.Errorf("dynamostore: read the Spotify pause: %w", err)
	}
	raw := attrString(item, attrPausedUntil)
	if raw == "" {
		return store.SpotifyPause{}, false, nil
	}
	until, err := parseTime(raw)
	if err != nil {
		return store.SpotifyPause{}, false, fmt.Errorf("dynamostore: read the Spotify pause: paused_until %q: %w", raw, err)
	}
	since, _ := parseTime(attrString(item, attrPausedSince))
	return store.SpotifyPause{Until: until.UTC(), Since: since.UTC(), Reason: attrString(item, attrPauseReason)}, true, nil
}
