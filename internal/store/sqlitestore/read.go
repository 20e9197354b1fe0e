package sqlitestore

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/sixpotify/top-tracks/internal/store"
)

// scanPage is how many artists rows ScanArtists reads at a time.
const scanPage = 200

// Artist reads the artists row. ok is false when the store holds no fetch of
// the artist.
func (s *Store) Artist(ctx context.Context, id string) (store.Artist, bool, error) {
	row := s.db.QueryRowContext(ctx, `
		SELECT artist_id, fetched_at, market, status, track_count FROM artists
		WHERE artist_id = ? AND fetched_at != ''`, id)
	a, err := scanArtist(row)
	if errors.Is(err, sql.ErrNoRows) {
		return store.Artist{}, false, nil
	}
	if err != nil {
		return store.Artist{}, false, fmt.Errorf("sqlitestore: artist %s: %w", id, err)
	}
	return a, true, nil
}

// Tracks returns the artist's rows by rank (none when the store holds no
// fetch of the artist, or it was not found).
func (s *Store) Tracks(ctx context.Context, id string) ([]store.Row, error) {
	rows, err := s.db.QueryContext(ctx, `
		SELECT `+trackColumns+`
		FROM top_tracks WHERE artist_id = ? ORDER BY rank, id`, id)
	if err != nil {
		return nil, fmt.Errorf("sqlitestore: tracks %s: %w", id, err)
	}
	defer rows.Close()
	var out []store.Row
	for rows.Next() {
		r, err := scanRow(rows)
		if err != nil {
			return nil, fmt.Errorf("sqlitestore: tracks %s: %w", id, err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlitestore: tracks %s: %w", id, err)
	}
	return out, nil
}

// trackColumns are the columns scanRow reads, in its order.
const trackColumns = `artist_id, id, rank, name, popularity, duration_ms, explicit, uri,
	album, artists, external_urls, preview_url, track_number, market, fetched_at, isrc`

// scanRow reads one row of trackColumns.
func scanRow(rows rowScanner) (store.Row, error) {
	var (
		r                            store.Row
		album, artists, externalURLs string
		fetched                      string
	)
	t := &r.Track
	if err := rows.Scan(&r.ArtistID, &t.ID, &r.Rank, &t.Name, &t.Popularity, &t.DurationMS, &t.Explicit, &t.URI,
		&album, &artists, &externalURLs, &t.PreviewURL, &t.TrackNumber, &r.Market, &fetched, &t.ISRC); err != nil {
		return store.Row{}, err
	}
	if err := errors.Join(
		unmarshal("album", album, &t.Album),
		unmarshal("artists", artists, &t.Artists),
		unmarshal("external_urls", externalURLs, &t.ExternalURLs),
	); err != nil {
		return store.Row{}, fmt.Errorf("track %s: %w", t.ID, err)
	}
	var err error
	if r.FetchedAt, err = parseTime(fetched); err != nil {
		return store.Row{}, fmt.Errorf("track %s: %w", t.ID, err)
	}
	return r, nil
}

// tracksPage is how many track rows ScanTracks reads at a time.
const tracksPage = 1000

// ScanTracks calls fn with every row of top_tracks, in (artist_id, id)
// order, tracksPage rows at a time: like ScanArtists it holds no
// transaction while fn runs, so Saves go on meanwhile and an artist saved
// during the scan may show rows of either save. An error of fn stops the
// scan and is returned as it is.
func (s *Store) ScanTracks(ctx context.Context, fn func(store.Row) error) error {
	const cols = `SELECT ` + trackColumns + ` FROM top_tracks`
	return scanPages(ctx, "tracks", tracksPage, func(after *store.Row) (*sql.Rows, error) {
		if after == nil {
			return s.db.QueryContext(ctx, cols+` ORDER BY artist_id, id LIMIT ?`, tracksPage)
		}
		return s.db.QueryContext(ctx, cols+` WHERE (artist_id, id) > (?, ?) ORDER BY artist_id, id LIMIT ?`,
			after.ArtistID, after.ID, tracksPage)
	}, scanRow, fn)
}

// CountTracks returns how many track rows the store holds (for progress).
func (s *Store) CountTracks(ctx context.Context) (int, error) {
	var n int
	if err := s.db.QueryRowContext(ctx, `SELECT count(*) FROM top_tracks`).Scan(&n); err != nil {
		return 0, fmt.Errorf("sqlitestore: count tracks: %w", err)
	}
	return n, nil
}

// ScanArtists calls fn with every artists row, in artist_id order, one page
// at a time: no transaction or lock is held while fn runs, so fn may take its
// time, and Saves go on meanwhile (an artist saved during the scan may or may
// not be visited, but none is visited twice). An error of fn stops the scan
// and is returned as it is.
func (s *Store) ScanArtists(ctx context.Context, fn func(store.Artist) error) error {
	// A row with no fetched_at holds only a recorded failure: no artist yet.
	const cols = `SELECT artist_id, fetched_at, market, status, track_count FROM artists WHERE fetched_at != ''`
	return scanPages(ctx, "artists", scanPage, func(after *store.Artist) (*sql.Rows, error) {
		if after == nil {
			return s.db.QueryContext(ctx, cols+` ORDER BY artist_id LIMIT ?`, scanPage)
		}
		return s.db.QueryContext(ctx, cols+` AND artist_id > ? ORDER BY artist_id LIMIT ?`, after.ArtistID, scanPage)
	}, scanArtist, fn)
}

// scanPages calls fn with every row that query selects, size rows at a
// time: query selects the page after the last row of the one before (nil:
// the first page), in the order of its key, and no transaction is held
// while fn runs. fn's error is returned as it is; the reads' own, and a
// cancelled ctx, are wrapped naming what was scanned.
func scanPages[T any](ctx context.Context, what string, size int, query func(after *T) (*sql.Rows, error),
	scan func(rowScanner) (T, error), fn func(T) error) error {
	page := make([]T, 0, size)
	var after *T
	for {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("sqlitestore: scan %s: %w", what, err)
		}
		var err error
		if page, err = readPage(page[:0], after, query, scan); err != nil {
			return fmt.Errorf("sqlitestore: scan %s: %w", what, err)
		}
		for _, v := range page {
			if err := fn(v); err != nil {
				return err
			}
		}
		if len(page) < size {
			return nil
		}
		last := page[len(page)-1] // a copy: the next page reuses the buffer
		after = &last
	}
}

// readPage appends to page the rows query selects after after.
func readPage[T any](page []T, after *T, query func(after *T) (*sql.Rows, error), scan func(rowScanner) (T, error)) ([]T, error) {
	rows, err := query(after)
	if err != nil {
		return page, err
	}
	defer rows.Close()
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return page, err
		}
		page = append(page, v)
	}
	return page, rows.Err()
}

// rowScanner is a *sql.Row or a *sql.Rows.
type rowScanner interface{ Scan(...any) error }

func scanArtist(row rowScanner) (store.Artist, error) {
	var (
		a       store.Artist
		fetched string
		status  string
	)
	if err := row.Scan(&a.ArtistID, &fetched, &a.Market, &status, &a.Tracks); err != nil {
		return store.Artist{}, err
	}
	a.Status = store.Status(status)
	var err error
	if a.FetchedAt, err = parseTime(fetched); err != nil {
		return store.Artist{}, fmt.Errorf("artist %s: %w", a.ArtistID, err)
	}
	return a, nil
}

func formatTime(t time.Time) string { return t.UTC().Format(store.TimeFormat) }

func parseTime(s string) (time.Time, error) {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("fetched_at %q: %w", s, err)
	}
	return t.UTC(), nil
}

func unmarshal(column, text string, v any) error {
	if err := json.Unmarshal([]byte(text), v); err != nil {
		return fmt.Errorf("%s: %w", column, err)
	}
	return nil
}

// CountArtists returns how many artists the store holds (for progress and ETAs).
func (s *Store) CountArtists(ctx context.Context) (int, error) {
	var n int
	if err := s.db.QueryRowContext(ctx, `SELECT count(*) FROM artists WHERE fetched_at != ''`).Scan(&n); err != nil {
		return 0, fmt.Errorf("sqlitestore: count artists: %w", err)
	}
	return n, nil
}
