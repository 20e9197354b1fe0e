package dynamostore_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/sixpotify/top-tracks/internal/store"
	"github.com/sixpotify/top-tracks/internal/store/dynamostore"
	"github.com/sixpotify/top-tracks/internal/store/storetest"
	"github.com/sixpotify/top-tracks/internal/testenv"
)

// TestUnchangedResultCostsOneWrite counts the writes of a Save whose answer
// equals what is stored, with change-aware writes on and off.
func TestUnchangedResultCostsOneWrite(t *testing.T) {
	for _, tt := range []struct {
		name           string
		writeUnchanged bool
		wantBatch      int64 // BatchWriteItem calls of the second Save
		wantPut        int64 // track rows put by the second Save
		wantUnchanged  int64
	}{
		{name: "change-aware", wantBatch: 0, wantPut: 0, wantUnchanged: 1},
		{name: "WriteUnchanged", writeUnchanged: true, wantBatch: 1, wantPut: 10, wantUnchanged: 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s := newStore(t, dynamostore.Options{WriteUnchanged: tt.writeUnchanged}, nil)
			ctx := testenv.Context(t)
			a := storetest.ID("changeaware/" + tt.name)
			t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
			first := store.Result{ArtistID: a, Market: "US", Status: store.StatusOK, FetchedAt: t0, Tracks: storetest.Tracks(a, 0, 10)}
			if err := s.Save(ctx, first); err != nil {
				t.Fatal(err)
			}
			before := s.Stats()
			again := first
			again.FetchedAt = t0.Add(24 * time.Hour)
			if err := s.Save(ctx, again); err != nil {
				t.Fatal(err)
			}
			after := s.Stats()
			if got := after.BatchWriteCalls - before.BatchWriteCalls; got != tt.wantBatch {
				t.Errorf("BatchWriteItem calls of the unchanged Save = %d, want %d", got, tt.wantBatch)
			}
			if got := after.ItemsPut - before.ItemsPut; got != tt.wantPut {
				t.Errorf("track rows put by the unchanged Save = %d, want %d", got, tt.wantPut)
			}
			if got := after.Unchanged - before.Unchanged; got != tt.wantUnchanged {
				t.Errorf("Saves done by the fast path = %d, want %d", got, tt.wantUnchanged)
			}
			got, ok, err := s.Artist(ctx, a)
			if err != nil || !ok || !got.FetchedAt.Equal(again.FetchedAt) {
				t.Errorf("Artist = %+v, %v, %v; want fetched_at %v", got, ok, err, again.FetchedAt)
			}
		})
	}
}

// TestFirstFetchSkipsTheUnchangedCheck: a first save does not spend a
// conditional write that can only be refused.
func TestFirstFetchSkipsTheUnchangedCheck(t *testing.T) {
	s := newStore(t, dynamostore.Options{}, nil)
	ctx := testenv.Context(t)
	a := storetest.ID("changeaware/first")
	r := store.Result{ArtistID: a, Market: "US", Status: store.StatusOK, FetchedAt: time.Now(), Tracks: storetest.Tracks(a, 0, 10), FirstFetch: true}
	if err := s.Save(ctx, r); err != nil {
		t.Fatal(err)
	}
	if got := s.Stats().UnchangedCalls; got != 0 {
		t.Errorf("a first save tried the unchanged check %d times; want 0", got)
	}
	rows, err := s.Tracks(ctx, a)
	if err != nil || len(rows) != 10 {
		t.Errorf("Tracks = %d rows, %v; want 10", len(rows), err)
	}
}

func TestCountArtists(t *testing.T) {
	var asked []string
	s := newStore(t, dynamostore.Options{}, func(c *dynamodb.Client) dynamostore.API {
		return countingDescribe{Client: c, asked: &asked}
	})
	ctx := testenv.Context(t)
	// dynalite answers DescribeTable but, unlike DynamoDB (which refreshes
	// the figure about every six hours), always counts 0 items; the wrapper
	// stands for the refreshed figure.
	n, err := s.CountArtists(ctx)
	if err != nil || n != 42 {
		t.Errorf("CountArtists = %d, %v; want 42", n, err)
	}
	if len(asked) != 1 || !strings.HasSuffix(asked[0], "artists") {
		t.Errorf("DescribeTable asked about %v; want the artists table once", asked)
	}
}

// countingDescribe passes DescribeTable to dynalite and reports 42 items.
type countingDescribe struct {
	*dynamodb.Client
	asked *[]string
}

func (c countingDescribe) DescribeTable(ctx context.Context, in *dynamodb.DescribeTableInput, opts ...func(*dynamodb.Options)) (*dynamodb.DescribeTableOutput, error) {
	*c.asked = append(*c.asked, aws.ToString(in.TableName))
	out, err := c.Client.DescribeTable(ctx, in, opts...)
	if err == nil && out.Table != nil {
		out.Table.ItemCount = aws.Int64(42)
	}
	return out, err
}
