package dynamostore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/sixpotify/top-tracks/internal/store"
)

// Attributes of a recorded store.Failure on an artists row.
const (
	attrLastError   = "last_error"
	attrLastErrorAt = "last_error_at" // S, store.TimeFormat
)

var (
	_ store.FailureRecorder = (*Store)(nil)
	_ store.FailureReader   = (*Store)(nil)
	_ store.ArtistCounter   = (*Store)(nil)
)

// RecordFailure sets last_error and last_error_at on the artists row with one
// UpdateItem, unless a later failure is recorded there. A row that does not
// exist yet gets only artist_id and these two: with no fetched_at it is no
// artist to Artist or ScanArtists, as a lease placeholder is not. The commit
// of the next Save replaces the whole row, and so clears them.
func (s *Store) RecordFailure(ctx context.Context, artistID, reason string, at time.Time) error {
	if artistID == "" {
		return errors.New("dynamostore: record failure: empty artist id")
	}
	err := s.setUnlessLater(ctx, artistID, attrLastErrorAt, map[string]types.AttributeValue{
		attrLastError:   str(store.ClipReason(reason)),
		attrLastErrorAt: str(formatTime(at)),
	})
	if err != nil {
		return fmt.Errorf("dynamostore: record failure of %s: %w", artistID, err)
	}
	return nil
}

// LastFailure reads the failure recorded on the artists row (consistent
// read of those two attributes).
func (s *Store) LastFailure(ctx context.Context, artistID string) (store.Failure, bool, error) {
	item, err := s.readArtistRow(ctx, artistID, attrLastError, attrLastErrorAt)
	if err != nil {
		return store.Failure{}, false, fmt.Errorf("dynamostore: last failure of %s: %w", artistID, err)
	}
	at := attrString(item, attrLastErrorAt)
	if at == "" {
		return store.Failure{}, false, nil
	}
	t, err := parseTime(at)
	if err != nil {
		return store.Failure{}, false, fmt.Errorf("dynamostore: last failure of %s: last_error_at %q: %w", artistID, at, err)
	}
	return store.Failure{Reason: attrString(item, attrLastError), At: t.UTC()}, true, nil
}

// CountArtistsBy returns DynamoDB's own item count of the artists table
// (DescribeTable's ItemCount, refreshed about every six hours: Approximate).
// Counting by status, staleness or failure would read the whole table, so
// it does not (Exact is false).
func (s *Store) CountArtistsBy(ctx context.Context, _ time.Time) (store.ArtistCounts, error) {
	n, err := s.CountArtists(ctx)
	if err != nil {
		return store.ArtistCounts{}, err
	}
	return store.ArtistCounts{Total: n, Approximate: true}, nil
}
