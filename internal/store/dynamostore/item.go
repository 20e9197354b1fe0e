package dynamostore

import (
	"fmt"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/sixpotify/top-tracks/internal/spotify"
	"github.com/sixpotify/top-tracks/internal/store"
)

// Attribute names of the two tables (see the contract's Tables section), and
// the lease attributes a Save puts on an artists row while it writes.
const (
	attrArtistID   = "artist_id"
	attrID         = "id"
	attrFetchedAt  = "fetched_at"
	attrMarket     = "market"
	attrStatus     = "status"
	attrTrackCount = "track_count"
	attrListHash   = "list_hash"  // store.ListHash of the stored result
	attrExpiresAt  = "expires_at" // N, epoch seconds: the tables' TTL attribute
	attrTrackIDs   = "track_ids"  // L of S: the ids of the artist's track rows
	attrLockOwner  = "lock_owner"
	attrLockUntil  = "lock_until" // N, Unix milliseconds
)

// TTLAttribute is the attribute DynamoDB's TTL reads on both tables
// (deploy/template.yaml enables it; internal/deploy checks the two agree).
const TTLAttribute = attrExpiresAt

// trackItem is a row of the tracks table, as the reads decode it (Save
// builds it with trackAttrs). The embedded spotify.Track is
// flattened, its json tags naming the attributes.
type trackItem struct {
	ArtistID  string `json:"artist_id"`
	Rank      int    `json:"rank"`
	Market    string `json:"market"`
	FetchedAt string `json:"fetched_at"`
	ExpiresAt int64  `json:"expires_at,omitempty"`
	spotify.Track
}

// artistItem is a row of the artists table.
type artistItem struct {
	ArtistID   string `json:"artist_id"`
	FetchedAt  string `json:"fetched_at"`
	Market     string `json:"market"`
	Status     string `json:"status"`
	TrackCount int    `json:"track_count"`
	ListHash   string `json:"list_hash,omitempty"`
	ExpiresAt  int64  `json:"expires_at,omitempty"`
	// TrackIDs are the ids of the artist's track rows, in rank order;
	// written by every commit, an empty list when there are none.
	TrackIDs []string `json:"track_ids"`
}

// formatTime writes fetched_at. store.TimeFormat in UTC has a fixed width,
// so string order (what the condition expressions compare) is time order.
func formatTime(t time.Time) string { return t.UTC().Format(store.TimeFormat) }

func parseTime(s string) (time.Time, error) {
	// RFC 3339 parsing accepts the fractional seconds of store.TimeFormat.
	return time.Parse(time.RFC3339, s)
}

func (s *Store) unmarshal(item map[string]types.AttributeValue, v any) error {
	return s.dec.Decode(&types.AttributeValueMemberM{Value: item}, v)
}

// artistFrom decodes an artists row. A row with no fetched_at is a lease
// placeholder of a first Save still in flight (or one that died): not an
// artist yet, so ok is false.
func (s *Store) artistFrom(item map[string]types.AttributeValue) (a store.Artist, ok bool, err error) {
	if _, has := item[attrFetchedAt]; !has {
		return store.Artist{}, false, nil
	}
	var it artistItem
	if err := s.unmarshal(item, &it); err != nil {
		return store.Artist{}, false, fmt.Errorf("decode artists row: %w", err)
	}
	at, err := parseTime(it.FetchedAt)
	if err != nil {
		return store.Artist{}, false, fmt.Errorf("decode artists row %s: fetched_at: %w", it.ArtistID, err)
	}
	return store.Artist{
		ArtistID:  it.ArtistID,
		Market:    it.Market,
		Status:    store.Status(it.Status),
		FetchedAt: at,
		Tracks:    it.TrackCount,
	}, true, nil
}

func (s *Store) rowFrom(item map[string]types.AttributeValue) (store.Row, error) {
	var it trackItem
	if err := s.unmarshal(item, &it); err != nil {
		return store.Row{}, fmt.Errorf("decode tracks row: %w", err)
	}
	at, err := parseTime(it.FetchedAt)
	if err != nil {
		return store.Row{}, fmt.Errorf("decode tracks row %s/%s: fetched_at: %w", it.ArtistID, it.ID, err)
	}
	return store.Row{ArtistID: it.ArtistID, Rank: it.Rank, Market: it.Market, FetchedAt: at, Track: it.Track}, nil
}

func str(v string) types.AttributeValue { return &types.AttributeValueMemberS{Value: v} }

func num(v int64) types.AttributeValue {
	return &types.AttributeValueMemberN{Value: strconv.FormatInt(v, 10)}
}

func artistKey(id string) map[string]types.AttributeValue {
	return map[string]types.AttributeValue{attrArtistID: str(id)}
}
