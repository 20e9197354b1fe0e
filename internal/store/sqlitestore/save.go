package sqlitestore

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/sixpotify/top-tracks/internal/spotify"
	"github.com/sixpotify/top-tracks/internal/store"
)

// Save makes the artist's rows exactly r.Tracks (rank = position in
// Spotify's answer; of a track id given twice, the first), or none for a
// not_found result, and upserts the artists row, in one transaction. When the
// store holds a newer fetch of the artist it writes nothing and returns an
// error wrapping store.ErrStale; a fetch as old as the stored one replaces
// it, so saving a result again changes nothing. A result whose
// store.ListHash equals the stored one only moves the artists row's
// fetched_at (change-aware writes): the track rows keep theirs.
func (s *Store) Save(ctx context.Context, r store.Result) error {
	if err := r.Validate(); err != nil {
		return fmt.Errorf("sqlitestore: save %q: %w: %w", r.ArtistID, store.ErrRejected, err)
	}
	fetched := formatTime(r.FetchedAt)
	expires := store.ExpiresAt(r.FetchedAt, s.opts.RetainFor)
	rows, err := trackRows(r)
	if err != nil {
		return fmt.Errorf("sqlitestore: save %s: %w", r.ArtistID, err)
	}
	hash := store.ListHash(r)
	err = s.write(ctx, func(tx *sql.Tx) error {
		var stored, storedHash string
		switch err := tx.QueryRowContext(ctx, `SELECT fetched_at, list_hash FROM artists WHERE artist_id = ?`, r.ArtistID).Scan(&stored, &storedHash); {
		case errors.Is(err, sql.ErrNoRows):
		case err != nil:
			return fmt.Errorf("read the artists row: %w", err)
		case stored > fetched:
			return fmt.Errorf("stored fetch %s is newer than %s: %w", stored, fetched, store.ErrStale)
		case storedHash == hash:
			// Change-aware: the rows already hold this answer (the hash
			// covers status and market); only the check time and the
			// expiry move, and a success clears the failure recorded.
			if _, err := tx.ExecContext(ctx, `UPDATE artists SET fetched_at = ?, expires_at = ?, last_error = NULL, last_error_at = NULL
				WHERE artist_id = ?`, fetched, expires, r.ArtistID); err != nil {
				return fmt.Errorf("write the artists row: %w", err)
			}
			if _, err := tx.ExecContext(ctx, `UPDATE top_tracks SET expires_at = ? WHERE artist_id = ?`, expires, r.ArtistID); err != nil {
				return fmt.Errorf("refresh the rows' expiry: %w", err)
			}
			return nil
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM top_tracks WHERE artist_id = ?`, r.ArtistID); err != nil {
			return fmt.Errorf("delete the old rows: %w", err)
		}
		if len(rows) > 0 {
			ins, err := tx.PrepareContext(ctx, `
				INSERT INTO top_tracks (artist_id, id, rank, name, popularity, duration_ms, explicit, uri,
					album, artists, external_urls, preview_url, track_number, market, fetched_at, isrc, expires_at)
				VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`)
			if err != nil {
				return err
			}
			defer ins.Close()
			for _, row := range rows {
				t := row.track
				if _, err := ins.ExecContext(ctx, r.ArtistID, t.ID, row.rank, t.Name, t.Popularity, t.DurationMS,
					t.Explicit, t.URI, row.album, row.artists, row.externalURLs, t.PreviewURL, t.TrackNumber,
					r.Market, fetched, t.ISRC, expires); err != nil {
					return fmt.Errorf("write track %s: %w", t.ID, err)
				}
			}
		}
		if _, err := tx.ExecContext(ctx, `
			INSERT INTO artists (artist_id, fetched_at, market, status, track_count, list_hash, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?)
			ON CONFLICT (artist_id) DO UPDATE SET
				fetched_at = excluded.fetched_at, market = excluded.market,
				status = excluded.status, track_count = excluded.track_count, list_hash = excluded.list_hash,
				expires_at = excluded.expires_at, last_error = NULL, last_error_at = NULL`,
			r.ArtistID, fetched, r.Market, string(r.Status), len(rows), hash, expires); err != nil {
			return fmt.Errorf("write the artists row: %w", err)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("sqlitestore: save %s: %w", r.ArtistID, err)
	}
	if s.purgeDue() {
		// The rows are saved: a purge that fails does not undo that, and
		// the next due purge (or the next Open) deletes what this one
		// left.
		_, _ = s.Purge(ctx)
	}
	return nil
}

// trackRow is a track ready to be written.
type trackRow struct {
	rank                         int
	track                        *spotify.Track
	album, artists, externalURLs string
}

// trackRows marshals the first of each track id of r, with its rank.
func trackRows(r store.Result) ([]trackRow, error) {
	rows := make([]trackRow, 0, len(r.Tracks))
	seen := make(map[string]bool, len(r.Tracks))
	for i := range r.Tracks {
		t := &r.Tracks[i]
		if seen[t.ID] {
			continue
		}
		seen[t.ID] = true
		row := trackRow{rank: i + 1, track: t}
		var err error
		if row.album, err = marshal(t.Album); err == nil {
			if row.artists, err = marshal(t.Artists); err == nil {
				row.externalURLs, err = marshal(t.ExternalURLs)
			}
		}
		if err != nil {
			return nil, fmt.Errorf("track %s: %w", t.ID, err)
		}
		rows = append(rows, row)
	}
	return rows, nil
}

// marshal encodes v as JSON text, leaving <, > and & as they are.
func marshal(v any) (string, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return "", err
	}
	return string(bytes.TrimSuffix(b.Bytes(), []byte("\n"))), nil
}
