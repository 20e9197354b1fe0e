package dynamostore_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/google/go-cmp/cmp"

	"github.com/sixpotify/top-tracks/internal/store"
	"github.com/sixpotify/top-tracks/internal/store/dynamostore"
	"github.com/sixpotify/top-tracks/internal/store/storetest"
	"github.com/sixpotify/top-tracks/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// fastRetries keeps the tests' backoff short.
var fastRetries = dynamostore.Options{RetryBase: 2 * time.Millisecond, RetryMax: 40 * time.Millisecond}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		return newStore(t, fastRetries, nil)
	}, storetest.Features{NewestWins: true})
}

var tableSeq atomic.Int64

func client(t *testing.T) *dynamodb.Client { return testenv.DynamoDBClient(t) }

// tableNames returns fresh table names, deleted when t ends.
func tableNames(t *testing.T, c *dynamodb.Client) (tracks, artists string) {
	n := tableSeq.Add(1)
	tracks, artists = fmt.Sprintf("t%03d_top_tracks", n), fmt.Sprintf("t%03d_artists", n)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		for _, name := range []string{tracks, artists} {
			_, _ = c.DeleteTable(ctx, &dynamodb.DeleteTableInput{TableName: aws.String(name)})
		}
	})
	return tracks, artists
}

// env is a store over fresh tables, with the real client beside it.
type env struct {
	*dynamostore.Store
	client          *dynamodb.Client
	tracks, artists string
}

// newStore returns a store over fresh tables. wrap, when not nil, wraps the
// real client (fault injection); the tables are created through the real one.
func newStore(t *testing.T, opts dynamostore.Options, wrap func(*dynamodb.Client) dynamostore.API) env {
	t.Helper()
	c := client(t)
	tracks, artists := tableNames(t, c)
	if err := dynamostore.New(c, tracks, artists).CreateTables(testenv.Context(t)); err != nil {
		t.Fatalf("CreateTables: %v", err)
	}
	var api dynamostore.API = c
	if wrap != nil {
		api = wrap(c)
	}
	s, err := dynamostore.NewWithOptions(api, tracks, artists, opts)
	if err != nil {
		t.Fatal(err)
	}
	return env{Store: s, client: c, tracks: tracks, artists: artists}
}

// faulty wraps the real client. Its faults are set before use or through
// atomics, so the store's goroutines may call it concurrently.
type faulty struct {
	*dynamodb.Client
	// partial is how many more BatchWriteItem calls send only their first
	// request to dynalite and hand the rest back as UnprocessedItems.
	partial atomic.Int32
	// throttle makes every BatchWriteItem fail with a throttling error.
	throttle atomic.Bool
	// throttleFirst maps an operation to how many of its next calls fail
	// with a throttling error before reaching dynalite.
	mu            sync.Mutex
	throttleFirst map[string]int
	// answerLost maps an operation to how many of its next calls reach
	// dynalite but answer a throttling error, as if the answer were lost.
	answerLost map[string]int
	batchCalls atomic.Int32
	queries    atomic.Int32 // Query calls
}

func (f *faulty) fault(op string) (before, after bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.throttleFirst[op] > 0 {
		f.throttleFirst[op]--
		return true, false
	}
	if f.answerLost[op] > 0 {
		f.answerLost[op]--
		return false, true
	}
	return false, false
}

var errThrottled = &types.ThrottlingException{Message: aws.String("injected")}

func (f *faulty) BatchWriteItem(ctx context.Context, in *dynamodb.BatchWriteItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.BatchWriteItemOutput, error) {
	f.batchCalls.Add(1)
	if f.throttle.Load() {
		return nil, &types.ProvisionedThroughputExceededException{Message: aws.String("injected")}
	}
	if f.partial.Add(-1) < 0 {
		return f.Client.BatchWriteItem(ctx, in, optFns...)
	}
	first := map[string][]types.WriteRequest{}
	rest := map[string][]types.WriteRequest{}
	for table, reqs := range in.RequestItems {
		first[table] = reqs[:1]
		if len(reqs) > 1 {
			rest[table] = reqs[1:]
		}
	}
	out, err := f.Client.BatchWriteItem(ctx, &dynamodb.BatchWriteItemInput{RequestItems: first}, optFns...)
	if err != nil {
		return nil, err
	}
	out.UnprocessedItems = rest
	return out, nil
}

func (f *faulty) GetItem(ctx context.Context, in *dynamodb.GetItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error) {
	return wrapCall(f, "GetItem", ctx, in, optFns, f.Client.GetItem)
}

func (f *faulty) PutItem(ctx context.Context, in *dynamodb.PutItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error) {
	return wrapCall(f, "PutItem", ctx, in, optFns, f.Client.PutItem)
}

func (f *faulty) UpdateItem(ctx context.Context, in *dynamodb.UpdateItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error) {
	return wrapCall(f, "UpdateItem", ctx, in, optFns, f.Client.UpdateItem)
}

func (f *faulty) Query(ctx context.Context, in *dynamodb.QueryInput, optFns ...func(*dynamodb.Options)) (*dynamodb.QueryOutput, error) {
	f.queries.Add(1)
	return wrapCall(f, "Query", ctx, in, optFns, f.Client.Query)
}

func (f *faulty) Scan(ctx context.Context, in *dynamodb.ScanInput, optFns ...func(*dynamodb.Options)) (*dynamodb.ScanOutput, error) {
	return wrapCall(f, "Scan", ctx, in, optFns, f.Client.Scan)
}

func wrapCall[In, Out any](f *faulty, op string, ctx context.Context, in In, optFns []func(*dynamodb.Options),
	call func(context.Context, In, ...func(*dynamodb.Options)) (Out, error)) (Out, error) {
	before, after := f.fault(op)
	if before {
		var zero Out
		return zero, errThrottled
	}
	out, err := call(ctx, in, optFns...)
	if after && err == nil {
		var zero Out
		return zero, errThrottled
	}
	return out, err
}

func wrapWith(f *faulty) func(*dynamodb.Client) dynamostore.API {
	return func(c *dynamodb.Client) dynamostore.API {
		f.Client = c
		return f
	}
}

func result(artistID string, at time.Time, n int) store.Result {
	return store.Result{ArtistID: artistID, Market: "US", Status: store.StatusOK, FetchedAt: at, Tracks: storetest.Tracks(artistID, 0, n)}
}

var t0 = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)

func checkRows(t *testing.T, s store.Store, r store.Result) {
	t.Helper()
	got, err := s.Tracks(testenv.Context(t), r.ArtistID)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(got, storetest.Rows(r)); diff != "" {
		t.Errorf("Tracks mismatch (-got +want):\n%s", diff)
	}
}

func TestUnprocessedItemsRetried(t *testing.T) {
	f := &faulty{}
	s := newStore(t, fastRetries, wrapWith(f))
	f.partial.Store(4)
	r := result(storetest.ID("unprocessed"), t0, 30)
	if err := s.Save(testenv.Context(t), r); err != nil {
		t.Fatalf("Save: %v", err)
	}
	checkRows(t, s, r)
	st := s.Stats()
	// Chunk one (25) comes back 24, 23, 22, 21 unprocessed, then goes; chunk two goes at once.
	if st.Unprocessed != 24+23+22+21 || st.BatchWriteCalls != 6 || st.ItemsPut != 30 {
		t.Errorf("Stats = %+v; want Unprocessed 90, BatchWriteCalls 6, ItemsPut 30", st)
	}

	// Deletes are retried the same way.
	f.partial.Store(2)
	small := result(r.ArtistID, t0.Add(time.Second), 2)
	if err := s.Save(testenv.Context(t), small); err != nil {
		t.Fatalf("Save: %v", err)
	}
	checkRows(t, s, small)
	if st := s.Stats(); st.ItemsDeleted != 28 {
		t.Errorf("ItemsDeleted = %d, want 28", st.ItemsDeleted)
	}
}

func TestPersistentThrottlingEndsInError(t *testing.T) {
	f := &faulty{}
	s := newStore(t, fastRetries, wrapWith(f))
	f.throttle.Store(true)
	r := result(storetest.ID("throttled"), t0, 10)
	ctx, cancel := context.WithTimeout(testenv.Context(t), 300*time.Millisecond)
	defer cancel()
	began := time.Now()
	err := s.Save(ctx, r)
	var pte *types.ProvisionedThroughputExceededException
	if !errors.Is(err, context.DeadlineExceeded) || !errors.As(err, &pte) {
		t.Fatalf("Save = %v; want the deadline and the throttling error", err)
	}
	if errors.Is(err, store.ErrRejected) {
		t.Errorf("Save = %v; a throttle is the store's, not the result's: want no store.ErrRejected", err)
	}
	if took := time.Since(began); took > 2*time.Second {
		t.Errorf("Save took %v after a 300ms deadline", took)
	}
	if calls := f.batchCalls.Load(); calls < 3 {
		t.Errorf("BatchWriteItem called %d times; want retries", calls)
	}
	// The failed Save released its lease: the next one need not wait it out.
	f.throttle.Store(false)
	ctx, cancel = context.WithTimeout(testenv.Context(t), 5*time.Second)
	defer cancel()
	if err := s.Save(ctx, r); err != nil {
		t.Fatalf("Save after the throttling ended: %v", err)
	}
	checkRows(t, s, r)
	if st := s.Stats(); st.LockWaits != 0 || st.Throttled < 3 {
		t.Errorf("Stats = %+v; want no lease waits and the throttles counted", st)
	}
}

func TestLeaseRunsOut(t *testing.T) {
	f := &faulty{}
	opts := fastRetries
	opts.Lease = 400 * time.Millisecond
	s := newStore(t, opts, wrapWith(f))
	f.throttle.Store(true)
	began := time.Now()
	err := s.Save(testenv.Context(t), result(storetest.ID("lease"), t0, 3))
	if err == nil || !strings.Contains(err.Error(), "lease ran out") {
		t.Fatalf("Save = %v; want the lease to run out", err)
	}
	if took := time.Since(began); took > 2*time.Second {
		t.Errorf("Save took %v with a 400ms lease", took)
	}
}

func TestRetryForBoundsReads(t *testing.T) {
	f := &faulty{throttleFirst: map[string]int{"GetItem": 1 << 30}}
	opts := fastRetries
	opts.RetryFor = 200 * time.Millisecond
	s := newStore(t, opts, wrapWith(f))
	_, _, err := s.Artist(testenv.Context(t), storetest.ID("nobody"))
	var te *types.ThrottlingException
	if !errors.As(err, &te) {
		t.Fatalf("Artist = %v; want the throttling error after RetryFor", err)
	}
}

func TestTransientThrottlesAndLostAnswers(t *testing.T) {
	f := &faulty{
		throttleFirst: map[string]int{"GetItem": 2, "UpdateItem": 2, "Query": 2, "PutItem": 2, "Scan": 2},
		answerLost:    map[string]int{"UpdateItem": 1, "PutItem": 1},
	}
	s := newStore(t, fastRetries, wrapWith(f))
	r := result(storetest.ID("transient"), t0, 10)
	if err := s.Save(testenv.Context(t), r); err != nil {
		t.Fatalf("Save: %v", err)
	}
	checkRows(t, s, r)
	got, ok, err := s.Artist(testenv.Context(t), r.ArtistID)
	if err != nil || !ok || got.FetchedAt != r.FetchedAt || got.Tracks != 10 {
		t.Fatalf("Artist = %+v, %v, %v", got, ok, err)
	}
	n := 0
	if err := s.ScanArtists(testenv.Context(t), func(store.Artist) error { n++; return nil }); err != nil || n != 1 {
		t.Fatalf("ScanArtists = %v after %d artists; want nil after 1", err, n)
	}
	if st := s.Stats(); st.LockWaits != 0 {
		t.Errorf("LockWaits = %d: a lease taken by a lost answer was not recognised as ours", st.LockWaits)
	}
}

// holdLease puts another writer's lease on the artist's row, as a crashed
// Save would leave it.
func holdLease(t *testing.T, c *dynamodb.Client, artistsTable, artistID string, until time.Time) {
	t.Helper()
	_, err := c.UpdateItem(testenv.Context(t), &dynamodb.UpdateItemInput{
		TableName:        aws.String(artistsTable),
		Key:              map[string]types.AttributeValue{"artist_id": &types.AttributeValueMemberS{Value: artistID}},
		UpdateExpression: aws.String("SET lock_owner = :o, lock_until = :u"),
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":o": &types.AttributeValueMemberS{Value: "someone-else"},
			":u": &types.AttributeValueMemberN{Value: fmt.Sprint(until.UnixMilli())},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestLease(t *testing.T) {
	s := newStore(t, fastRetries, nil)
	c, artists := s.client, s.artists

	// A live lease on an artist never fetched: the placeholder row is no
	// artist, and a Save waits for the lease until its context ends.
	busy := storetest.ID("busy")
	holdLease(t, c, artists, busy, time.Now().Add(time.Hour))
	if _, ok, err := s.Artist(testenv.Context(t), busy); ok || err != nil {
		t.Errorf("Artist(leased placeholder) = %v, %v; want false, nil", ok, err)
	}
	n := 0
	if err := s.ScanArtists(testenv.Context(t), func(store.Artist) error { n++; return nil }); err != nil || n != 0 {
		t.Errorf("ScanArtists = %v, %d artists; want nil, 0", err, n)
	}
	ctx, cancel := context.WithTimeout(testenv.Context(t), 200*time.Millisecond)
	defer cancel()
	if err := s.Save(ctx, result(busy, t0, 3)); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Save(leased artist) = %v; want the deadline", err)
	}
	if st := s.Stats(); st.LockWaits == 0 {
		t.Errorf("LockWaits = 0 after waiting on a lease")
	}

	// An expired lease on a stored artist is taken over, and the committed
	// row carries no lease.
	stale := storetest.ID("expired")
	first := result(stale, t0, 5)
	if err := s.Save(testenv.Context(t), first); err != nil {
		t.Fatal(err)
	}
	holdLease(t, c, artists, stale, time.Now().Add(-time.Second))
	second := result(stale, t0.Add(time.Minute), 4)
	if err := s.Save(testenv.Context(t), second); err != nil {
		t.Fatalf("Save over an expired lease: %v", err)
	}
	checkRows(t, s, second)
	out, err := c.GetItem(testenv.Context(t), &dynamodb.GetItemInput{
		TableName: aws.String(artists),
		Key:       map[string]types.AttributeValue{"artist_id": &types.AttributeValueMemberS{Value: stale}},
	})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for k := range out.Item {
		names = append(names, k)
	}
	if diff := cmp.Diff(names, []string{"artist_id", "expires_at", "fetched_at", "list_hash", "market", "status", "track_count", "track_ids"}, sortStrings); diff != "" {
		t.Errorf("artists row attributes (-got +want):\n%s", diff)
	}

	// A newer fetch is stale-checked before the lease is waited for.
	holdLease(t, c, artists, stale, time.Now().Add(time.Hour))
	if err := s.Save(testenv.Context(t), first); !errors.Is(err, store.ErrStale) {
		t.Errorf("Save(older, while leased) = %v; want ErrStale at once", err)
	}
}

var sortStrings = cmp.Transformer("sort", func(in []string) []string {
	return slices.Sorted(slices.Values(in))
})

func TestTrackAttributes(t *testing.T) {
	s := newStore(t, fastRetries, nil)
	a := storetest.ID("attrs")
	r := result(a, time.Date(2025, 6, 1, 14, 0, 0, 7_000_000, time.FixedZone("CEST", 2*3600)), 1)
	if err := s.Save(testenv.Context(t), r); err != nil {
		t.Fatal(err)
	}
	out, err := s.client.Query(testenv.Context(t), &dynamodb.QueryInput{
		TableName:                 aws.String(s.tracks),
		KeyConditionExpression:    aws.String("artist_id = :a"),
		ExpressionAttributeValues: map[string]types.AttributeValue{":a": &types.AttributeValueMemberS{Value: a}},
	})
	if err != nil || len(out.Items) != 1 {
		t.Fatalf("Query = %d items, %v", len(out.Items), err)
	}
	item := out.Items[0]
	var names []string
	for k := range item {
		names = append(names, k)
	}
	// Track 0 has no preview: preview_url is absent, not NULL.
	want := []string{"artist_id", "id", "rank", "name", "popularity", "duration_ms", "explicit", "uri", "album",
		"artists", "external_urls", "track_number", "market", "fetched_at", "isrc", "expires_at"}
	if diff := cmp.Diff(names, want, sortStrings); diff != "" {
		t.Errorf("track attributes (-got +want):\n%s", diff)
	}
	wantExpires := strconv.FormatInt(r.FetchedAt.Add(store.DefaultRetainFor).Unix()+1, 10) // .007 s rounds up
	if got, ok := item["expires_at"].(*types.AttributeValueMemberN); !ok || got.Value != wantExpires {
		t.Errorf("expires_at = %#v, want N %s (fetched_at + the default RETAIN_FOR)", item["expires_at"], wantExpires)
	}
	if got := item["fetched_at"].(*types.AttributeValueMemberS).Value; got != "2025-06-01T12:00:00.007Z" {
		t.Errorf("fetched_at = %q, want RFC 3339 UTC with milliseconds", got)
	}
	if got := item["rank"].(*types.AttributeValueMemberN).Value; got != "1" {
		t.Errorf("rank = %q, want N 1", got)
	}
}

func TestCreateTables(t *testing.T) {
	c := client(t)
	tracks, artists := tableNames(t, c)
	s := dynamostore.New(c, tracks, artists)
	for i := range 2 {
		if err := s.CreateTables(testenv.Context(t)); err != nil {
			t.Fatalf("CreateTables #%d: %v", i+1, err)
		}
	}
	for _, name := range []string{tracks, artists} {
		out, err := c.DescribeTable(testenv.Context(t), &dynamodb.DescribeTableInput{TableName: aws.String(name)})
		if err != nil {
			t.Fatal(err)
		}
		if out.Table.TableStatus != types.TableStatusActive {
			t.Errorf("%s is %s, want ACTIVE", name, out.Table.TableStatus)
		}
		if out.Table.BillingModeSummary == nil || out.Table.BillingModeSummary.BillingMode != types.BillingModePayPerRequest {
			t.Errorf("%s billing mode = %+v, want PAY_PER_REQUEST", name, out.Table.BillingModeSummary)
		}
	}

	// A table of that name with other keys is an error, not silently used.
	err := dynamostore.New(c, artists, tracks).CreateTables(testenv.Context(t))
	if err == nil || !strings.Contains(err.Error(), "key schema") {
		t.Errorf("CreateTables with the tables swapped = %v; want a key schema error", err)
	}
}

func TestOptionsValidate(t *testing.T) {
	err := dynamostore.Options{Lease: -1, RetryBase: time.Second, RetryMax: time.Millisecond, ScanSegments: -2}.Validate()
	for _, want := range []string{"Lease", "RetryMax", "ScanSegments"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate() = %v; want it to name %s", err, want)
		}
	}
	if err := (dynamostore.Options{}).Validate(); err != nil {
		t.Errorf("zero Options: %v", err)
	}
}
