package dynamostore_test

import (
	"strconv"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/sixpotify/top-tracks/internal/fakespotify"
	"github.com/sixpotify/top-tracks/internal/fakespotify/fakespotifytest"
	"github.com/sixpotify/top-tracks/internal/store"
	"github.com/sixpotify/top-tracks/internal/store/storetest"
	"github.com/sixpotify/top-tracks/internal/testenv"
)

// items returns the artist's raw rows of the tracks table.
func items(t *testing.T, e env, artistID string) []map[string]types.AttributeValue {
	t.Helper()
	out, err := e.client.Query(testenv.Context(t), &dynamodb.QueryInput{
		TableName:                 aws.String(e.tracks),
		KeyConditionExpression:    aws.String("artist_id = :a"),
		ExpressionAttributeValues: map[string]types.AttributeValue{":a": &types.AttributeValueMemberS{Value: artistID}},
		ConsistentRead:            aws.Bool(true),
	})
	if err != nil {
		t.Fatal(err)
	}
	return out.Items
}

func artistItem(t *testing.T, e env, artistID string) map[string]types.AttributeValue {
	t.Helper()
	out, err := e.client.GetItem(testenv.Context(t), &dynamodb.GetItemInput{
		TableName:      aws.String(e.artists),
		Key:            map[string]types.AttributeValue{"artist_id": &types.AttributeValueMemberS{Value: artistID}},
		ConsistentRead: aws.Bool(true),
	})
	if err != nil {
		t.Fatal(err)
	}
	return out.Item
}

func numberOf(item map[string]types.AttributeValue, name string) string {
	if n, ok := item[name].(*types.AttributeValueMemberN); ok {
		return n.Value
	}
	return ""
}

// TestRemovedFieldsAreAbsent fetches from the stand-in answering as Spotify
// answers a Development Mode app since February 2026 (no popularity), saves
// what the client decoded, and reads the raw items: popularity is absent,
// not 0; the ISRC, which Spotify still sends, is there.
func TestRemovedFieldsAreAbsent(t *testing.T) {
	a := storetest.ID("removed-fields")
	tracks, at := fakespotifytest.TopTracks(t, fakespotify.Config{FieldsRemoved: true}, a)
	e := newStore(t, fastRetries, nil)
	if err := e.Save(testenv.Context(t), store.Result{ArtistID: a, Market: "US", Status: store.StatusOK, FetchedAt: at, Tracks: tracks}); err != nil {
		t.Fatal(err)
	}
	got := items(t, e, a)
	if len(got) != 10 {
		t.Fatalf("%d items, want 10", len(got))
	}
	for _, item := range got {
		id := item["id"].(*types.AttributeValueMemberS).Value
		if v, ok := item["popularity"]; ok {
			t.Errorf("track %s: popularity = %#v; want the attribute absent (Spotify left it out)", id, v)
		}
		if _, ok := item["isrc"].(*types.AttributeValueMemberS); !ok {
			t.Errorf("track %s: isrc = %#v; want S (Spotify sent external_ids.isrc)", id, item["isrc"])
		}
		if numberOf(item, "expires_at") == "" {
			t.Errorf("track %s: no expires_at", id)
		}
	}
	rows, err := e.Tracks(testenv.Context(t), a)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rows {
		if r.Popularity != nil {
			t.Errorf("track %s reads back with popularity %d; want nil", r.ID, *r.Popularity)
		}
	}
}

// TestExpiresAt: every row carries expires_at = fetched_at + RetainFor. A
// fetch with the same answer soon after keeps it (the change-aware fast
// path: one UpdateItem); a fetch once less than nine tenths of RetainFor is
// left rewrites every row with the new expiry.
func TestExpiresAt(t *testing.T) {
	opts := fastRetries
	opts.RetainFor = 10 * time.Hour
	e := newStore(t, opts, nil)
	a := storetest.ID("expires")
	check := func(when string, fetched time.Time) {
		t.Helper()
		want := strconv.FormatInt(fetched.Add(opts.RetainFor).Unix(), 10)
		if got := numberOf(artistItem(t, e, a), "expires_at"); got != want {
			t.Errorf("%s: artists row expires_at = %q, want %s", when, got, want)
		}
		rows := items(t, e, a)
		if len(rows) != 3 {
			t.Fatalf("%s: %d track rows, want 3", when, len(rows))
		}
		for _, item := range rows {
			if got := numberOf(item, "expires_at"); got != want {
				t.Errorf("%s: track row expires_at = %q, want %s", when, got, want)
			}
		}
	}
	save := func(at time.Time) {
		t.Helper()
		if err := e.Save(testenv.Context(t), result(a, at, 3)); err != nil {
			t.Fatal(err)
		}
	}

	save(t0)
	check("first fetch", t0)
	save(t0.Add(30 * time.Minute))
	if n := e.Stats().Unchanged; n != 1 {
		t.Errorf("a same answer 30m later: %d unchanged saves, want 1 (the fast path)", n)
	}
	check("same answer 30m later", t0)
	later := t0.Add(3 * time.Hour)
	save(later)
	if n := e.Stats().Unchanged; n != 1 {
		t.Errorf("a same answer 3h later: %d unchanged saves, want still 1 (a rewrite)", n)
	}
	check("same answer 3h later", later)
}
