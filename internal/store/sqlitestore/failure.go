package sqlitestore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/sixpotify/top-tracks/internal/store"
)

var (
	_ store.FailureRecorder = (*Store)(nil)
	_ store.FailureReader   = (*Store)(nil)
	_ store.ArtistCounter   = (*Store)(nil)
)

// RecordFailure keeps reason and at as the artist's last_error and
// last_error_at, unless a later failure is already recorded. A row that
// does not exist yet is made with an empty fetched_at, market and status,
// which every read of artists skips: the store holds no fetch of it.
func (s *Store) RecordFailure(ctx context.Context, artistID, reason string, at time.Time) error {
	if artistID == "" {
		return errors.New("sqlitestore: record failure: empty artist id")
	}
	err := s.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `
			INSERT INTO artists (artist_id, fetched_at, market, status, track_count, last_error, last_error_at)
			VALUES (?, '', '', '', 0, ?, ?)
			ON CONFLICT (artist_id) DO UPDATE SET
				last_error = excluded.last_error, last_error_at = excluded.last_error_at
			WHERE artists.last_error_at IS NULL OR artists.last_error_at <= excluded.last_error_at`,
			artistID, store.ClipReason(reason), formatTime(at))
		return err
	})
	if err != nil {
		return fmt.Errorf("sqlitestore: record failure of %s: %w", artistID, err)
	}
	return nil
}

// LastFailure reads the failure recorded for the artist.
func (s *Store) LastFailure(ctx context.Context, artistID string) (store.Failure, bool, error) {
	var reason, at sql.NullString
	err := s.db.QueryRowContext(ctx, `SELECT last_error, last_error_at FROM artists WHERE artist_id = ?`, artistID).Scan(&reason, &at)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return store.Failure{}, false, nil
	case err != nil:
		return store.Failure{}, false, fmt.Errorf("sqlitestore: last failure of %s: %w", artistID, err)
	case !at.Valid:
		return store.Failure{}, false, nil
	}
	t, err := time.Parse(time.RFC3339, at.String)
	if err != nil {
		return store.Failure{}, false, fmt.Errorf("sqlitestore: last failure of %s: last_error_at %q: %w", artistID, at.String, err)
	}
	return store.Failure{Reason: reason.String, At: t.UTC()}, true, nil
}

// CountArtistsBy counts the artists exactly, by status, those fetched
// before staleBefore, and those with a failure recorded since their last
// fetch, in one read.
func (s *Store) CountArtistsBy(ctx context.Context, staleBefore time.Time) (store.ArtistCounts, error) {
	c := store.ArtistCounts{Exact: true, ByStatus: map[store.Status]int{}}
	rows, err := s.db.QueryContext(ctx, `
		SELECT status, count(*), count(CASE WHEN fetched_at < ?1 THEN 1 END)
		FROM artists WHERE fetched_at != '' GROUP BY status`, formatTime(staleBefore))
	if err != nil {
		return c, fmt.Errorf("sqlitestore: count artists: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var status string
		var n, stale int
		if err := rows.Scan(&status, &n, &stale); err != nil {
			return c, fmt.Errorf("sqlitestore: count artists: %w", err)
		}
		c.ByStatus[store.Status(status)] = n
		c.Total += n
		c.Stale += stale
	}
	if err := rows.Err(); err != nil {
		return c, fmt.Errorf("sqlitestore: count artists: %w", err)
	}
	if err := s.db.QueryRowContext(ctx, `SELECT count(*) FROM artists WHERE last_error_at IS NOT NULL`).Scan(&c.Failing); err != nil {
		return c, fmt.Errorf("sqlitestore: count artists: %w", err)
	}
	return c, nil
}
