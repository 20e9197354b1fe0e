package sqlitestore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/sixpotify/top-tracks/internal/store"
)

var _ store.PauseKeeper = (*Store)(nil)

// SetSpotifyPause records p unless a pause that ends later is recorded.
func (s *Store) SetSpotifyPause(ctx context.Context, p store.SpotifyPause) error {
	err := s.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `
			INSERT INTO spotify_pause (id, paused_until, paused_since, reason) VALUES (1, ?, ?, ?)
			ON CONFLICT (id) DO UPDATE SET
				paused_until = excluded.paused_until, paused_since = excluded.paused_since, reason = excluded.reason
			WHERE spotify_pause.paused_until <= excluded.paused_until`,
			formatTime(p.Until), formatTime(p.Since), store.ClipReason(p.Reason))
		return err
	})
	if err != nil {
		return fmt.Errorf("sqlitestore: record the Spotify pause: %w", err)
	}
	return nil
}

// SpotifyPause reads the recorded pause.
func (s *Store) SpotifyPause(ctx context.Context) (store.SpotifyPause, bool, error) {
	var until, since, reason string
	err := s.db.QueryRowContext(ctx, `SELECT paused_until, paused_since, reason FROM spotify_pause WHERE id = 1`).Scan(&until, &since, &reason)
	if errors.Is(err, sql.ErrNoRows) {
		return store.SpotifyPause{}, false, nil
	}
	if err != nil {
		return store.SpotifyPause{}, false, fmt.Errorf("sqlitestore: read the Spotify pause: %w", err)
	}
	u, err := parseTime(until)
	if err != nil {
		return store.SpotifyPause{}, false, fmt.Errorf("sqlitestore: read the Spotify pause: paused_until %q: %w", until, err)
	}
	sn, _ := parseTime(since)
	return store.SpotifyPause{Until: u.UTC(), Since: sn.UTC(), Reason: reason}, true, nil
}
