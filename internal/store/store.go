// Package store is the store port: the method set every store backend
// (dynamostore, sqlitestore) provides, declared once here, and the types it
// speaks. The worker saves through a Saver; the backend opener and the
// conformance suite in storetest speak the whole Store.
package store

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/sixpotify/top-tracks/internal/spotify"
)

// Saver is the part of a store the worker uses: Save converges one artist's
// rows to a fetch, then writes its artists row; Artist reads that row (ok is
// false when the store holds no fetch of the artist), so that an artist
// still fresh is skipped.
type Saver interface {
	Save(ctx context.Context, r Result) error
	Artist(ctx context.Context, id string) (a Artist, ok bool, err error)
}

// Store is the whole method set of every backend: a Saver, an artist's rows
// by rank (Tracks), and scans of the artists table (ScanArtists) and of the
// tracks table (ScanTracks, the export's), each of which stops at fn's first
// error and returns it.
type Store interface {
	Saver
	Tracks(ctx context.Context, id string) ([]Row, error)
	ScanArtists(ctx context.Context, fn func(Artist) error) error
	ScanTracks(ctx context.Context, fn func(Row) error) error
}

// Status of an artist in the artists table.
type Status string

const (
	StatusOK       Status = "ok"
	StatusNotFound Status = "not_found"
)

// Artist is a row of the artists table.
type Artist struct {
	ArtistID  string
	Market    string
	Status    Status
	FetchedAt time.Time
	// Tracks is how many track rows the artist has.
	Tracks int
}

// Result is what one fetch learned about an artist: Spotify's answer, in order.
// Saving it makes the artist's rows exactly Tracks (rank = index + 1), removing
// tracks that left the list, and then writes the artists row.
type Result struct {
	ArtistID  string
	Market    string
	Status    Status
	FetchedAt time.Time
	Tracks    []spotify.Track
	// FirstFetch says the store held no row for the artist when the fetch
	// began: a hint that lets a store skip looking for an unchanged answer
	// (in DynamoDB, a conditional write that would be refused but billed).
	FirstFetch bool
}

// Row is one row of the tracks table.
type Row struct {
	ArtistID  string
	Rank      int
	Market    string
	FetchedAt time.Time
	spotify.Track
}

// ErrStale is returned by Save when the store already holds a newer fetch of
// the artist: an older result never overwrites a newer one.
var ErrStale = errors.New("a newer result is already stored")

// ErrRejected is matched (errors.Is) by an error of Save that is the
// result's own fault, not the store's: the result fails Validate, or the
// store refuses it as invalid (DynamoDB's ValidationException, such as an
// item over 400 KB). Saving it again cannot help, and it says nothing of the
// store's health: the worker counts it against the artist (the redrive
// policy), never toward the outage breaker.
var ErrRejected = errors.New("the store rejects this result")

// DefaultFreshFor is FRESH_FOR when it is not set: an artist fetched less
// than an hour ago is not fetched again unless a message says force, so that
// duplicate requests (a chatbot asking twice, a reprocess overlapping the
// chatbot) cost a read instead of a Spotify call. The worker and the
// producer's --wait read it from here.
const DefaultFreshFor = time.Hour

// DefaultRetainFor is how long a fetched artist's rows are kept after its
// last fetch when RETAIN_FOR is not set: 30 days. Spotify's Developer Terms
// say "Do not store Spotify Content indefinitely" and allow storing it only
// "as strictly necessary to operate" the app; an artist the chatbot still
// asks about is fetched again (FRESH_FOR, reprocess --stale-after) long
// before, so its rows never lapse while in use, and an artist nobody asks
// about is gone within a month.
const DefaultRetainFor = 30 * 24 * time.Hour

// ExpiresAt is when the rows of a fetch at fetched may be deleted, kept
// retainFor (DefaultRetainFor when not positive): expires_at, epoch seconds,
// rounded up so that a row is never deleted early.
func ExpiresAt(fetched time.Time, retainFor time.Duration) int64 {
	if retainFor <= 0 {
		retainFor = DefaultRetainFor
	}
	t := fetched.Add(retainFor)
	s := t.Unix()
	if t.Nanosecond() > 0 {
		s++
	}
	return s
}

// TimeFormat is how fetched_at is written: RFC 3339, UTC, with milliseconds
// so that two fetches in one second still order.
const TimeFormat = "2006-01-02T15:04:05.000Z07:00"

// ListHash identifies the content of r as its rows would hold it: the
// status, the market and every track in order (a repeated track id counts
// once, at its first position), fetched_at excluded. Two results with the
// same ListHash leave the same track rows but for fetched_at, so a store can
// skip rewriting them (change-aware writes).
func ListHash(r Result) string {
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00%s\x00", r.Status, r.Market)
	seen := make(map[string]bool, len(r.Tracks))
	enc := json.NewEncoder(h)
	for _, t := range r.Tracks {
		if seen[t.ID] {
			continue
		}
		seen[t.ID] = true
		_ = enc.Encode(t) // a spotify.Track always encodes
	}
	return hex.EncodeToString(h.Sum(nil)[:16])
}

// Validate reports every problem that keeps r from being saved: an empty
// artist or track ID, a fetch time outside years 1 to 9999, an unknown
// status, or tracks on a not_found result.
func (r Result) Validate() error {
	var errs []error
	if r.ArtistID == "" {
		errs = append(errs, errors.New("empty artist id"))
	}
	if y := r.FetchedAt.UTC().Year(); r.FetchedAt.IsZero() || y < 1 || y > 9999 {
		errs = append(errs, fmt.Errorf("fetched_at %v is out of range", r.FetchedAt))
	}
	switch r.Status {
	case StatusOK:
	case StatusNotFound:
		if len(r.Tracks) > 0 {
			errs = append(errs, fmt.Errorf("a %s result has %d tracks", r.Status, len(r.Tracks)))
		}
	default:
		errs = append(errs, fmt.Errorf("unknown status %q", r.Status))
	}
	for i, t := range r.Tracks {
		if t.ID == "" {
			errs = append(errs, fmt.Errorf("track %d has an empty id", i+1))
		}
	}
	return errors.Join(errs...)
}
