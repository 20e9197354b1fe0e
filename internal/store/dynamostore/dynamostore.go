// Package dynamostore is the DynamoDB backend of the store: the tracks table
// (artist_id HASH, id RANGE) and the artists table (artist_id HASH) described
// in the contract's Tables section.
//
// # How Save keeps an artist's rows whole
//
// DynamoDB has no multi-item isolation short of transactions (which dynalite
// lacks and which cost twice as much), and BatchWriteItem takes no
// conditions. Two Saves of one artist that interleave could leave a mixture of
// both results' tracks. Save therefore takes a short lease on the artist's
// row in the artists table before it touches the tracks table:
//
//  1. Lock: a conditional UpdateItem sets lock_owner and lock_until on the
//     artists row, only when no live lease is there and the stored fetched_at
//     is not newer than the result's. If the row holds a newer fetch, Save
//     returns store.ErrStale before it writes anything. If another writer
//     holds the lease, Save waits (backoff with jitter) and tries again.
//     The same UpdateItem removes track_ids and list_hash and returns what
//     the row held (ReturnValues ALL_OLD).
//  2. Write: BatchWriteItem the puts of every returned track and the
//     deletes of every id that left the list. The ids there are are the
//     track_ids the lock returned; when the row had none (a row written
//     before rows listed their ids, one whose last Save did not commit, or
//     a lock whose answer was lost), a Query of the tracks table tells. An
//     artist with no row at all has never been saved and has no rows.
//  3. Commit: a PutItem of the artists row, conditional on still owning the
//     lease, replaces the whole row (with track_ids and list_hash of the
//     new rows) and so releases the lease.
//
// Change-aware writes: the artists row keeps list_hash, store.ListHash of
// the stored result. A Save whose result has the same hash first tries one
// conditional UpdateItem that only moves fetched_at forward (when no lease
// is held and no newer fetch is stored); the track rows, which would be
// rewritten identically but for their fetched_at, are left as they are. So
// a track row's fetched_at is when Spotify last answered with that list, and
// the artists row's is when Spotify was last asked.
//
// With the lease, the newest fetched_at wins and no mixture of two results is
// ever left behind, as long as a writer finishes within its lease. The
// remaining window, stated honestly: a writer stops sending writes when three
// quarters of its lease (Options.Lease) have passed by its own monotonic
// clock, and others may take the lease over when lock_until has passed by
// their wall clock. A writer paused for longer than the last quarter of the
// lease (or clocks skewed by more than that), with a request already in
// flight, could still land a write after another writer took over. A reader
// (Tracks) that runs during a Save may see a mixture: there is no read
// isolation.
//
// Retention: every row carries expires_at (N, epoch seconds), fetched_at +
// Options.RetainFor, the attribute DynamoDB's TTL deletes by
// (deploy/template.yaml enables it on both tables; TTL deletes within days
// of the time, not at it). The change-aware fast path keeps the stored
// expiry while at least nine tenths of RetainFor is left of it; past that a
// Save rewrites the rows with a new one (see saveUnchanged).
//
// A Save that fails part way through releases its lease and leaves rows that
// the next successful Save of the artist converges; the caller keeps the
// message, so that Save happens. Its artists row then lists no track ids and
// no list hash (the lock removed them), so the next Save asks the tracks
// table and cannot take the unchanged fast path; a first Save that may have
// written track rows leaves its placeholder row (no fetched_at, ignored by
// readers) for the same reason.
package dynamostore

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/attributevalue"

	"github.com/sixpotify/top-tracks/internal/store"
)

// Options tunes a Store. The zero value of every field means its default.
type Options struct {
	// Lease is how long a Save may hold an artist's write lease. A lease
	// left by a crashed writer blocks the artist's Saves this long at most.
	// Default 30s.
	Lease time.Duration
	// RetryBase and RetryMax bound the exponential backoff (with ±50%
	// jitter) used for UnprocessedItems, throttling errors and waiting for a
	// busy artist. Defaults 50ms and 5s.
	RetryBase time.Duration
	RetryMax  time.Duration
	// RetryFor is how long one operation keeps retrying before it fails
	// with the last error; ctx may end it sooner. Writes also end with the
	// lease. Default 1m.
	RetryFor time.Duration
	// ScanSegments is how many segments ScanArtists reads in parallel.
	// Default 4.
	ScanSegments int
	// WriteUnchanged turns change-aware writes off: every Save rewrites the
	// artist's track rows even when Spotify's answer is what the store
	// already holds (for comparison in benchmarks). By default such a Save
	// only moves the artists row's fetched_at forward.
	WriteUnchanged bool
	// RetainFor is how long an artist's rows are kept after its last fetch:
	// Save sets expires_at (the tables' TTL attribute) to fetched_at +
	// RetainFor. Default store.DefaultRetainFor.
	RetainFor time.Duration
	// Now is the wall clock used for the lease timestamps. Default time.Now.
	Now func() time.Time
	// Logger receives notes that are not errors (a duplicate track in
	// Spotify's answer). Default: discarded.
	Logger *slog.Logger
}

// Validate reports every problem with the options at once.
func (o Options) Validate() error {
	var errs []error
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"Lease", o.Lease}, {"RetryBase", o.RetryBase}, {"RetryMax", o.RetryMax}, {"RetryFor", o.RetryFor}, {"RetainFor", o.RetainFor}} {
		if d.v < 0 {
			errs = append(errs, fmt.Errorf("dynamostore: %s is negative (%v)", d.name, d.v))
		}
	}
	if o.ScanSegments < 0 {
		errs = append(errs, fmt.Errorf("dynamostore: ScanSegments is negative (%d)", o.ScanSegments))
	}
	if o.RetryBase > 0 && o.RetryMax > 0 && o.RetryMax < o.RetryBase {
		errs = append(errs, fmt.Errorf("dynamostore: RetryMax (%v) is below RetryBase (%v)", o.RetryMax, o.RetryBase))
	}
	return errors.Join(errs...)
}

func (o Options) withDefaults() Options {
	if o.Lease == 0 {
		o.Lease = 30 * time.Second
	}
	if o.RetryBase == 0 {
		o.RetryBase = 50 * time.Millisecond
	}
	if o.RetryMax == 0 {
		o.RetryMax = max(5*time.Second, o.RetryBase)
	}
	if o.RetryFor == 0 {
		o.RetryFor = time.Minute
	}
	if o.ScanSegments == 0 {
		o.ScanSegments = 4
	}
	if o.RetainFor == 0 {
		o.RetainFor = store.DefaultRetainFor
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return o
}

var _ store.Store = (*Store)(nil)

// Store is the DynamoDB store. It is safe for concurrent use.
type Store struct {
	client  API
	tracks  string
	artists string
	opts    Options
	dec     *attributevalue.Decoder
	stats   counters
}

// New returns a Store over the two tables with default Options.
func New(client API, tracksTable, artistsTable string) *Store {
	s, _ := NewWithOptions(client, tracksTable, artistsTable, Options{}) // the zero Options are valid
	return s
}

// NewWithOptions returns a Store over the two tables, or every problem with
// opts.
func NewWithOptions(client API, tracksTable, artistsTable string, opts Options) (*Store, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	return &Store{
		client:  client,
		tracks:  tracksTable,
		artists: artistsTable,
		opts:    opts.withDefaults(),
		dec:     attributevalue.NewDecoder(func(o *attributevalue.DecoderOptions) { o.TagKey = "json" }),
	}, nil
}

// Stats counts the Store's work since it was made, for benchmarks and
// metrics.
type Stats struct {
	// BatchWriteCalls is the number of BatchWriteItem requests sent.
	BatchWriteCalls int64
	// ItemsPut and ItemsDeleted count track rows DynamoDB accepted.
	ItemsPut     int64
	ItemsDeleted int64
	// Unprocessed counts items DynamoDB handed back as UnprocessedItems.
	Unprocessed int64
	// Throttled counts throttling errors that were retried.
	Throttled int64
	// PutCalls counts PutItem requests (one per committed artists row).
	PutCalls int64
	// LockCalls counts lease UpdateItem requests; LockWaits those that
	// found the artist leased by another writer.
	LockCalls int64
	LockWaits int64
	// DuplicateTracks counts repeated track ids dropped from results.
	DuplicateTracks int64
	// Unchanged counts Saves whose result equalled what was stored, done
	// with one UpdateItem of the artists row; UnchangedCalls counts those
	// UpdateItem requests, successful or not.
	Unchanged      int64
	UnchangedCalls int64
}

type counters struct {
	batchWriteCalls, itemsPut, itemsDeleted, unprocessed, throttled atomic.Int64
	putCalls, lockCalls, lockWaits, duplicateTracks                 atomic.Int64
	unchanged, unchangedCalls                                       atomic.Int64
}

// Stats returns a snapshot of the counters.
func (s *Store) Stats() Stats {
	c := &s.stats
	return Stats{
		BatchWriteCalls: c.batchWriteCalls.Load(),
		ItemsPut:        c.itemsPut.Load(),
		ItemsDeleted:    c.itemsDeleted.Load(),
		Unprocessed:     c.unprocessed.Load(),
		Throttled:       c.throttled.Load(),
		PutCalls:        c.putCalls.Load(),
		LockCalls:       c.lockCalls.Load(),
		LockWaits:       c.lockWaits.Load(),
		DuplicateTracks: c.duplicateTracks.Load(),
		Unchanged:       c.unchanged.Load(),
		UnchangedCalls:  c.unchangedCalls.Load(),
	}
}
