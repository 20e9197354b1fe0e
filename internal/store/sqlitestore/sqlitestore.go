package sqlitestore

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/sixpotify/top-tracks/internal/sqlitedb"
	"github.com/sixpotify/top-tracks/internal/store"
)

const schema = `
CREATE TABLE IF NOT EXISTS spotify_pause ( -- store.SpotifyPause: the fleet's, one row
	id           INTEGER PRIMARY KEY CHECK (id = 1),
	paused_until TEXT NOT NULL, -- RFC 3339 UTC, milliseconds
	paused_since TEXT NOT NULL,
	reason       TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS top_tracks (
	artist_id     TEXT    NOT NULL,
	id            TEXT    NOT NULL,
	rank          INTEGER NOT NULL,
	name          TEXT    NOT NULL,
	popularity    INTEGER,          -- NULL when Spotify left it out
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
	isrc          TEXT,             -- external_ids.isrc; NULL when Spotify left it out
	expires_at    INTEGER,          -- epoch seconds: deleted after this
	PRIMARY KEY (artist_id, id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS artists (
	artist_id   TEXT    NOT NULL PRIMARY KEY,
	fetched_at  TEXT    NOT NULL,
	market      TEXT    NOT NULL,
	status      TEXT    NOT NULL,
	track_count INTEGER NOT NULL,
	list_hash   TEXT    NOT NULL DEFAULT '', -- store.ListHash of the stored result
	expires_at    INTEGER,         -- epoch seconds: deleted after this
	last_error    TEXT,            -- store.Failure: why the artist's last message failed
	last_error_at TEXT             -- and when (RFC 3339 UTC, milliseconds)
) WITHOUT ROWID;
`

var _ store.Store = (*Store)(nil)

// Store is the top_tracks and artists tables of one SQLite file. It is safe
// for concurrent use, and other handles and processes may use the same file
// at the same time.
type Store struct {
	db   *sql.DB
	path string
	opts Options
	// wsem serializes this handle's write transactions, so that they queue
	// here (watching ctx) instead of spinning in SQLite's busy handler.
	wsem chan struct{}

	mu        sync.Mutex
	nextPurge time.Time // when a Save next deletes expired rows
}

// DefaultPurgeEvery is how often Saves delete expired rows, by default.
const DefaultPurgeEvery = time.Hour

// Options tune a Store. The zero value of each field means its default.
type Options struct {
	// RetainFor is how long an artist's rows are kept after its last
	// fetch: every Save sets their expires_at to fetched_at + RetainFor
	// (default store.DefaultRetainFor).
	RetainFor time.Duration
	// PurgeEvery: expired rows are deleted when the store is opened, and
	// then by the first Save after each PurgeEvery (default 1h). A purge
	// scans both tables (expires_at has no index, which would cost every
	// write), so it runs at most this often, not on every Save.
	PurgeEvery time.Duration
	// Now tells the time for expiry (default time.Now).
	Now func() time.Time
}

// Open opens the store in the SQLite file at path, creating the file and its
// tables when missing, with the default Options.
func Open(ctx context.Context, path string) (*Store, error) {
	return OpenOptions(ctx, path, Options{})
}

// OpenOptions opens the store at path with opts: it creates the file and
// its tables when missing, brings the tables of an older version up to date
// (nullable popularity, isrc and expires_at columns), gives rows written
// before expires_at existed one (their fetched_at + RetainFor), and deletes
// the rows that have expired.
func OpenOptions(ctx context.Context, path string, opts Options) (*Store, error) {
	if opts.RetainFor <= 0 {
		opts.RetainFor = store.DefaultRetainFor
	}
	if opts.PurgeEvery <= 0 {
		opts.PurgeEvery = DefaultPurgeEvery
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	db, err := sqlitedb.Open(ctx, path, schema)
	if err != nil {
		return nil, fmt.Errorf("sqlitestore: open %s: %w", path, err)
	}
	if err := addColumns(ctx, db); err != nil {
		db.Close()
		return nil, fmt.Errorf("sqlitestore: open %s: %w", path, err)
	}
	if err := sqlitedb.InTx(ctx, db, func(tx *sql.Tx) error { return migrate(ctx, tx, opts.RetainFor) }); err != nil {
		db.Close()
		return nil, fmt.Errorf("sqlitestore: open %s: %w", path, err)
	}
	s := &Store{db: db, path: path, opts: opts, wsem: make(chan struct{}, 1)}
	if _, err := s.Purge(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("sqlitestore: open %s: %w", path, err)
	}
	return s, nil
}

// migrate brings the tables of a file made by an older version up to date,
// in the caller's transaction: top_tracks is rebuilt when its popularity
// column is NOT NULL (SQLite cannot drop a constraint in place), isrc and
// expires_at are added where missing, and rows with no expires_at get
// fetched_at + retainFor.
func migrate(ctx context.Context, tx *sql.Tx, retainFor time.Duration) error {
	var notNull int
	err := tx.QueryRowContext(ctx, `SELECT "notnull" FROM pragma_table_info('top_tracks') WHERE name = 'popularity'`).Scan(&notNull)
	if err != nil {
		return fmt.Errorf("inspect the top_tracks table: %w", err)
	}
	if notNull == 1 {
		const old = `artist_id, id, rank, name, popularity, duration_ms, explicit, uri,
			album, artists, external_urls, preview_url, track_number, market, fetched_at`
		for _, q := range []string{
			`ALTER TABLE top_tracks RENAME TO top_tracks_before_nullable`,
			schema,
			`INSERT INTO top_tracks (` + old + `) SELECT ` + old + ` FROM top_tracks_before_nullable`,
			`DROP TABLE top_tracks_before_nullable`,
		} {
			if _, err := tx.ExecContext(ctx, q); err != nil {
				return fmt.Errorf("make popularity nullable: %w", err)
			}
		}
	}
	for _, c := range []struct{ table, column, decl string }{
		{"top_tracks", "isrc", "TEXT"},
		{"top_tracks", "expires_at", "INTEGER"},
		{"artists", "expires_at", "INTEGER"},
	} {
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM pragma_table_info(?) WHERE name = ?`, c.table, c.column).Scan(&n); err != nil {
			return fmt.Errorf("inspect the %s table: %w", c.table, err)
		}
		if n > 0 {
			continue
		}
		if _, err := tx.ExecContext(ctx, `ALTER TABLE `+c.table+` ADD COLUMN `+c.column+` `+c.decl); err != nil {
			return fmt.Errorf("add %s to the %s table: %w", c.column, c.table, err)
		}
	}
	secs := int64(retainFor / time.Second)
	for _, table := range []string{"top_tracks", "artists"} {
		// fetched_at is RFC 3339 UTC with a Z, which strftime reads.
		if _, err := tx.ExecContext(ctx, `UPDATE `+table+` SET expires_at = CAST(strftime('%s', fetched_at) AS INTEGER) + ? + 1
			WHERE expires_at IS NULL`, secs); err != nil {
			return fmt.Errorf("give the %s rows an expiry: %w", table, err)
		}
	}
	return nil
}

// Purge deletes the rows whose expires_at has passed, an artist's tracks
// rows and artists row alike, and returns how many it deleted.
func (s *Store) Purge(ctx context.Context) (int64, error) {
	now := s.opts.Now()
	var n int64
	err := s.write(ctx, func(tx *sql.Tx) error {
		n = 0
		for _, table := range []string{"top_tracks", "artists"} {
			res, err := tx.ExecContext(ctx, `DELETE FROM `+table+` WHERE expires_at <= ?`, now.Unix())
			if err != nil {
				return fmt.Errorf("delete expired %s rows: %w", table, err)
			}
			d, _ := res.RowsAffected()
			n += d
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("sqlitestore: purge: %w", err)
	}
	s.mu.Lock()
	s.nextPurge = now.Add(s.opts.PurgeEvery)
	s.mu.Unlock()
	return n, nil
}

// purgeDue reports whether a Save should purge now, and if so claims the
// purge, so that concurrent Saves do not all run it.
func (s *Store) purgeDue() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.opts.Now()
	if now.Before(s.nextPurge) {
		return false
	}
	s.nextPurge = now.Add(s.opts.PurgeEvery)
	return true
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

// Check reads the key columns of both tables, so that a file whose tables
// are not this version's is found before the first Save.
func (s *Store) Check(ctx context.Context) error {
	for _, q := range []string{
		`SELECT artist_id, id, expires_at FROM top_tracks LIMIT 1`,
		`SELECT artist_id, expires_at FROM artists LIMIT 1`,
	} {
		rows, err := s.db.QueryContext(ctx, q)
		if err != nil {
			return fmt.Errorf("sqlitestore: check %s: %w", s.path, err)
		}
		rows.Close()
	}
	return nil
}
