// Package sqlitedb opens the embedded SQLite file that the queue
// (sqlitequeue) and the store (sqlitestore) share: WAL, a busy timeout, full
// fsync and BEGIN IMMEDIATE, and runs write transactions that start again
// when SQLite's unfair busy handler lets a writer lose a whole timeout.
package sqlitedb

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/url"
	"strings"
	"time"

	"modernc.org/sqlite" // the "sqlite" database/sql driver
	sqlite3 "modernc.org/sqlite/lib"
)

// busyTimeoutMS is how long a statement waits for another connection's (or
// process's) write lock before it fails with SQLITE_BUSY.
const busyTimeoutMS = 5000

// busyAttempts is how many busy timeouts in a row a write waits through
// before it gives up: SQLite's busy handler is not fair, so under heavy
// contention a writer can lose the race for a whole timeout and still get
// the lock on the next try.
const busyAttempts = 6

// poolSize bounds the connections of one handle. Writes of one handle are
// serialized before they reach SQLite (by the queue and the store); the other
// connections serve reads.
const poolSize = 4

// dsn is the modernc.org/sqlite data source name of the file at path: WAL,
// a busy timeout, full fsync on commit, and BEGIN IMMEDIATE for every
// transaction, so that a transaction takes the write lock before it reads.
func dsn(path string) string {
	p := strings.NewReplacer("%", "%25", "?", "%3f", "#", "%23").Replace(path)
	if strings.HasPrefix(p, "/") {
		p = "//" + p // file:///abs: an empty authority
	}
	v := url.Values{}
	v.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", busyTimeoutMS))
	v.Add("_pragma", "journal_mode(WAL)")
	v.Add("_pragma", "synchronous(FULL)")
	v.Set("_txlock", "immediate")
	return "file:" + p + "?" + v.Encode()
}

// Open opens the file at path (creating it when missing), checks that it is
// usable, and runs schema in one transaction.
func Open(ctx context.Context, path, schema string) (*sql.DB, error) {
	if path == "" || path == ":memory:" {
		return nil, fmt.Errorf("%q is not a file path", path)
	}
	db, err := sql.Open("sqlite", dsn(path))
	if err != nil {
		return nil, err
	}
	db.SetMaxOpenConns(poolSize)
	db.SetMaxIdleConns(poolSize)
	// Opening the first connection switches the file to WAL, which SQLite
	// does without waiting on its busy handler: when several handles open a
	// new file at once, all but one may see SQLITE_BUSY here. Like a write,
	// the schema is tried again.
	err = InTx(ctx, db, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, schema); err != nil {
			return fmt.Errorf("create tables: %w", err)
		}
		return nil
	})
	if err != nil {
		db.Close()
		return nil, err
	}
	return db, nil
}

// InTx runs fn in one transaction (BEGIN IMMEDIATE, see dsn) and commits it.
// When the write lock stays taken through a busy timeout it starts again, up
// to busyAttempts times while ctx lasts: fn must be safe to run again after a
// rolled-back attempt.
func InTx(ctx context.Context, db *sql.DB, fn func(*sql.Tx) error) error {
	var err error
	for i := range busyAttempts {
		if err = tryTx(ctx, db, fn); !isBusy(err) || ctx.Err() != nil {
			return err
		}
		// Some busy answers come at once (the switch to WAL): back off a
		// little, with jitter, before the next attempt.
		t := time.NewTimer(time.Duration(rand.Int64N(int64(10*time.Millisecond) << i)))
		select {
		case <-ctx.Done():
			t.Stop()
			return err
		case <-t.C:
		}
	}
	return err
}

func tryTx(ctx context.Context, db *sql.DB, fn func(*sql.Tx) error) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if err := fn(tx); err != nil {
		return err
	}
	return tx.Commit()
}

// isBusy reports whether err is SQLITE_BUSY (or one of its extended codes).
func isBusy(err error) bool {
	var e *sqlite.Error
	return errors.As(err, &e) && e.Code()&0xff == sqlite3.SQLITE_BUSY
}

// AddColumn adds column (with its declaration, such as "TEXT") to table
// unless the table has it already: a file written by an older version gains
// the columns that a newer one's schema declares.
func AddColumn(ctx context.Context, db *sql.DB, table, column, decl string) error {
	return InTx(ctx, db, func(tx *sql.Tx) error {
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM pragma_table_info(?) WHERE name = ?`, table, column).Scan(&n); err != nil {
			return fmt.Errorf("look for column %s.%s: %w", table, column, err)
		}
		if n > 0 {
			return nil
		}
		if _, err := tx.ExecContext(ctx, fmt.Sprintf("ALTER TABLE %s ADD COLUMN %s %s", table, column, decl)); err != nil {
			return fmt.Errorf("add column %s.%s: %w", table, column, err)
		}
		return nil
	})
}
