// Package sqlitestore is the embedded store backend: the contract's
// top_tracks and artists tables in one SQLite file, through the pure-Go
// driver modernc.org/sqlite (binaries build with CGO_ENABLED=0).
//
// A Save is one BEGIN IMMEDIATE transaction: it checks the artist's stored
// fetched_at (an older result fails with store.ErrStale and writes nothing),
// replaces the artist's rows with exactly the result's tracks, and upserts the
// artists row. Readers never see a half-saved artist. Several processes may
// share the file (WAL mode, busy timeout), and so may the queue: the default
// sqlite:sixpotify.db holds both, each package touching only its own tables.
//
// album, artists and external_urls hold JSON text as Spotify sends it;
// explicit is 0 or 1; popularity, preview_url and isrc are NULL when Spotify
// left them out; fetched_at is RFC 3339 UTC with milliseconds
// (store.TimeFormat); expires_at is epoch seconds, fetched_at + RetainFor.
// Rows past expires_at are deleted when the file is opened and by the first
// Save after each Options.PurgeEvery.
package sqlitestore
