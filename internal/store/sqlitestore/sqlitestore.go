package sqlitestore

import (
	"context"
	"database/sql"
	"fmt"
	"strings"

	"github.com/sixpotify/top-tracks/internal/sqlitedb"
	"github.com/sixpotify/top-tracks/internal/store"
)

const schema = `
CREATE TABLE IF NOT EXISTS top_tracks (
	artist_id     TEXT    NOT NULL,
	id            TEXT    NOT NULL,
	rank          INTEGER NOT NULL,
	name          TEXT    NOT NULL,
	popularity    INTEGER NOT NULL,
	duration_ms   INTEGER NOT NULL,
	explicit      INTEGER NOT NULL, -- 0 or 1
	uri           TEXT    NOT NULL,
	album         TEXT    NOT NULL, -- JSON
	artists       TEXT    NOT NULL, -- JSON
	external_urls TEXT    NOT NULL, -- JSON
	preview_url   TEXT,
	track_number  INTEGER NOT NULL,
	market        TEXT    NOT NULL,
	fetched_at    TEXT    NOT NULL, -- RFC 3339 UTC, milliseconds
	PRIMARY KEY (artist_id, id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS artists (
	artist_id   TEXT    NOT NULL PRIMARY KEY,
	fetched_at  TEXT    NOT NULL,
	market      TEXT    NOT NULL,
	status      TEXT    NOT NULL,
	track_count INTEGER NOT NULL,
	list_hash   TEXT    NOT NULL DEFAULT '', -- store.ListHash of the stored result
	last_error    TEXT, -- store.Failure: why the artist's last message failed
	last_error_at TEXT  -- and when (RFC 3339 UTC, milliseconds)
) WITHOUT ROWID;
`

var _ store.Store = (*Store)(nil)

// Store is the top_tracks and artists tables of one SQLite file. It is safe
// for concurrent use, and other handles and processes may use the same file
// at the same time.
type Store struct {
	db   *sql.DB
	path string
	// wsem serializes this handle's write transactions, so that they queue
	// here (watching ctx) instead of spinning in SQLite's busy handler.
	wsem chan struct{}
}

// Open opens the store in the SQLite file at path, creating the file and its
// tables when missing.
func Open(ctx context.Context, path string) (*Store, error) {
	db, err := sqlitedb.Open(ctx, path, schema)
	if err != nil {
		return nil, fmt.Errorf("sqlitestore: open %s: %w", path, err)
	}
	if err := addColumns(ctx, db); err != nil {
		db.Close()
		return nil, fmt.Errorf("sqlitestore: open %s: %w", path, err)
	}
	return &Store{db: db, path: path, wsem: make(chan struct{}, 1)}, nil
}

// addColumns adds to an artists table made before they existed the columns
// added since: list_hash, last_error and last_error_at.
func addColumns(ctx context.Context, db *sql.DB) error {
	for _, c := range []struct{ name, decl string }{
		{"list_hash", "TEXT NOT NULL DEFAULT ''"},
		{"last_error", "TEXT"},
		{"last_error_at", "TEXT"},
	} {
		var n int
		if err := db.QueryRowContext(ctx, `SELECT count(*) FROM pragma_table_info('artists') WHERE name = ?`, c.name).Scan(&n); err != nil {
			return fmt.Errorf("inspect the artists table: %w", err)
		}
		if n > 0 {
			continue
		}
		_, err := db.ExecContext(ctx, `ALTER TABLE artists ADD COLUMN `+c.name+` `+c.decl)
		if err != nil && !strings.Contains(err.Error(), "duplicate column") { // another process added it first
			return fmt.Errorf("add %s to the artists table: %w", c.name, err)
		}
	}
	return nil
}

// Close closes the handle.
func (s *Store) Close() error {
	return s.db.Close()
}

// write runs fn in one BEGIN IMMEDIATE transaction, after this handle's
// earlier writes.
func (s *Store) write(ctx context.Context, fn func(*sql.Tx) error) error {
	select {
	case s.wsem <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-s.wsem }()
	return sqlitedb.InTx(ctx, s.db, fn)
}
