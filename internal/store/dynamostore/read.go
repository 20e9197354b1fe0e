package dynamostore

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/sixpotify/top-tracks/internal/store"
)

// Artist reads the artists row (consistent read). ok is false when the store
// holds no fetch of the artist.
func (s *Store) Artist(ctx context.Context, id string) (store.Artist, bool, error) {
	item, err := s.readArtistRow(ctx, id)
	if err != nil {
		return store.Artist{}, false, fmt.Errorf("dynamostore: artist %s: %w", id, err)
	}
	a, ok, err := s.artistFrom(item)
	if err != nil {
		return store.Artist{}, false, fmt.Errorf("dynamostore: artist %s: %w", id, err)
	}
	return a, ok, nil
}

// readArtistRow is getArtistRow, retrying throttles.
func (s *Store) readArtistRow(ctx context.Context, artistID string, attrs ...string) (map[string]types.AttributeValue, error) {
	var item map[string]types.AttributeValue
	err := s.retrying(ctx, func(ctx context.Context) error {
		var err error
		item, err = s.getArtistRow(ctx, artistID, attrs...)
		return err
	})
	return item, err
}

// Tracks returns the artist's rows by rank (consistent read).
func (s *Store) Tracks(ctx context.Context, id string) ([]store.Row, error) {
	var rows []store.Row
	err := s.query(ctx, &dynamodb.QueryInput{
		TableName:                 &s.tracks,
		KeyConditionExpression:    aws.String("#a = :a"),
		ExpressionAttributeNames:  map[string]string{"#a": attrArtistID},
		ExpressionAttributeValues: map[string]types.AttributeValue{":a": str(id)},
		ConsistentRead:            aws.Bool(true),
	}, func(item map[string]types.AttributeValue) error {
		row, err := s.rowFrom(item)
		rows = append(rows, row)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("dynamostore: tracks of %s: %w", id, err)
	}
	sort.SliceStable(rows, func(i, j int) bool { return rows[i].Rank < rows[j].Rank })
	return rows, nil
}

// query runs a Query page by page, retrying throttled pages, and calls fn
// for each item.
func (s *Store) query(ctx context.Context, in *dynamodb.QueryInput, fn func(map[string]types.AttributeValue) error) error {
	page := *in
	for {
		var out *dynamodb.QueryOutput
		err := s.retrying(ctx, func(ctx context.Context) error {
			var err error
			out, err = s.client.Query(ctx, &page)
			return err
		})
		if err != nil {
			return err
		}
		for _, item := range out.Items {
			if err := fn(item); err != nil {
				return err
			}
		}
		if len(out.LastEvaluatedKey) == 0 {
			return nil
		}
		page.ExclusiveStartKey = out.LastEvaluatedKey
	}
}

// ScanArtists calls fn for every artist the store holds, in no particular
// order. Options.ScanSegments segments are read in parallel (consistent
// reads), but fn is called from one goroutine at a time. An error from fn
// stops the scan and is returned as is.
func (s *Store) ScanArtists(ctx context.Context, fn func(store.Artist) error) error {
	in := &dynamodb.ScanInput{
		TableName:            &s.artists,
		ConsistentRead:       aws.Bool(true),
		ProjectionExpression: aws.String("#a, #at, #m, #s, #n"),
		ExpressionAttributeNames: map[string]string{
			"#a": attrArtistID, "#at": attrFetchedAt, "#m": attrMarket, "#s": attrStatus, "#n": attrTrackCount,
		},
	}
	return parallelScan(ctx, s, "artists", in, s.artistFrom, fn)
}

// ScanTracks calls fn for every row of the tracks table, in no particular
// order, with the same parallel segmented scan as ScanArtists: fn is called
// from one goroutine at a time, and an error from fn stops the scan and is
// returned as is. The reads are eventually consistent (half the read units
// of a consistent scan): an export is a snapshot of a moving table anyway,
// and an artist saved during the scan may show its rows from either save.
func (s *Store) ScanTracks(ctx context.Context, fn func(store.Row) error) error {
	in := &dynamodb.ScanInput{TableName: &s.tracks}
	decode := func(item map[string]types.AttributeValue) (store.Row, bool, error) {
		r, err := s.rowFrom(item)
		return r, err == nil, err
	}
	return parallelScan(ctx, s, "tracks", in, decode, fn)
}

// parallelScan reads in with Options.ScanSegments segments in parallel,
// decodes each item (skipping those decode says are not rows yet) and calls
// fn with each from this goroutine. fn's error is returned as it is; the
// scan's own is wrapped naming what was scanned.
func parallelScan[T any](ctx context.Context, s *Store, what string, in *dynamodb.ScanInput,
	decode func(map[string]types.AttributeValue) (T, bool, error), fn func(T) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	pages := make(chan []T)
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		scanErr error
	)
	fail := func(err error) {
		mu.Lock()
		if scanErr == nil {
			scanErr = err
		}
		mu.Unlock()
		cancel()
	}
	segments := s.opts.ScanSegments
	for seg := range segments {
		wg.Go(func() {
			seg := int32(seg)
			page := *in
			page.Segment, page.TotalSegments = &seg, aws.Int32(int32(segments))
			if err := scanSegment(ctx, s, &page, decode, pages); err != nil {
				fail(err)
			}
		})
	}
	go func() {
		wg.Wait()
		close(pages)
	}()

	var fnErr error
	for page := range pages {
		for _, v := range page {
			if fnErr != nil {
				break
			}
			fnErr = fn(v)
		}
		if fnErr != nil {
			cancel() // the segments stop; keep draining until they have
		}
	}
	if fnErr != nil {
		return fnErr
	}
	if scanErr != nil {
		return fmt.Errorf("dynamostore: scan %s: %w", what, scanErr)
	}
	return nil
}

func scanSegment[T any](ctx context.Context, s *Store, in *dynamodb.ScanInput,
	decode func(map[string]types.AttributeValue) (T, bool, error), pages chan<- []T) error {
	for {
		var out *dynamodb.ScanOutput
		err := s.retrying(ctx, func(ctx context.Context) error {
			var err error
			out, err = s.client.Scan(ctx, in)
			return err
		})
		if err != nil {
			return fmt.Errorf("segment %d: %w", *in.Segment, err)
		}
		page := make([]T, 0, len(out.Items))
		for _, item := range out.Items {
			v, ok, err := decode(item)
			if err != nil {
				return err
			}
			if ok {
				page = append(page, v)
			}
		}
		if len(page) > 0 {
			select {
			case pages <- page:
			case <-ctx.Done():
				return context.Cause(ctx) // fn's error or another segment's, or the caller's
			}
		}
		if len(out.LastEvaluatedKey) == 0 {
			return nil
		}
		in.ExclusiveStartKey = out.LastEvaluatedKey
	}
}

// CountArtists returns DynamoDB's count of the artists table's items, for
// progress and ETAs. DynamoDB updates it about every six hours, so it is an
// estimate (in-progress first saves included), not a scan.
func (s *Store) CountArtists(ctx context.Context) (int, error) {
	out, err := s.client.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: &s.artists})
	if err != nil {
		return 0, fmt.Errorf("dynamostore: count artists: %w", err)
	}
	if out.Table == nil || out.Table.ItemCount == nil {
		return 0, errors.New("dynamostore: count artists: DescribeTable told no item count")
	}
	return int(*out.Table.ItemCount), nil
}
