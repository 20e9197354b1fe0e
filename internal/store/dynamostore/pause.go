package dynamostore

import (
	"context"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/sixpotify/top-tracks/internal/store"
)

var _ store.PauseKeeper = (*Store)(nil)

// Attributes of the pause item (store.PauseKey in the artists table). It has
// no fetched_at, so no read of the artists sees it, and it expires a day
// after the pause ends (expires_at, the table's TTL).
const (
	attrPausedUntil = "paused_until"
	attrPausedSince = "paused_since"
	attrPauseReason = "pause_reason"
)

// pauseKeep is how long the pause item outlives its pause.
const pauseKeep = 24 * time.Hour

// SetSpotifyPause records p unless a pause that ends later is recorded.
func (s *Store) SetSpotifyPause(ctx context.Context, p store.SpotifyPause) error {
	err := s.retrying(ctx, func(ctx context.Context) error {
		_, err := s.client.UpdateItem(ctx, &dynamodb.UpdateItemInput{
			TableName:           &s.artists,
			Key:                 artistKey(store.PauseKey),
			UpdateExpression:    aws.String("SET #u = :u, #s = :s, #r = :r, #exp = :exp"),
			ConditionExpression: aws.String("attribute_not_exists(#u) OR #u <= :u"),
			ExpressionAttributeNames: map[string]string{
				"#u": attrPausedUntil, "#s": attrPausedSince, "#r": attrPauseReason, "#exp": attrExpiresAt,
			},
			ExpressionAttributeValues: map[string]types.AttributeValue{
				":u": str(formatTime(p.Until)), ":s": str(formatTime(p.Since)), ":r": str(store.ClipReason(p.Reason)),
				":exp": num(p.Until.Add(pauseKeep).Unix()),
			},
		})
		if isConditionFailed(err) {
			return nil // a pause that ends later is recorded
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("dynamostore: record the Spotify pause: %w", err)
	}
	return nil
}

// SpotifyPause reads the recorded pause (a consistent read).
func (s *Store) SpotifyPause(ctx context.Context) (store.SpotifyPause, bool, error) {
	var item map[string]types.AttributeValue
	err := s.retrying(ctx, func(ctx context.Context) error {
		out, err := s.client.GetItem(ctx, &dynamodb.GetItemInput{
			TableName:                &s.artists,
			Key:                      artistKey(store.PauseKey),
			ConsistentRead:           aws.Bool(true),
			ProjectionExpression:     aws.String("#u, #s, #r"),
			ExpressionAttributeNames: map[string]string{"#u": attrPausedUntil, "#s": attrPausedSince, "#r": attrPauseReason},
		})
		if err != nil {
			return err
		}
		item = out.Item
		return nil
	})
	if err != nil {
		return store.SpotifyPause{}, false, fmt.Errorf("dynamostore: read the Spotify pause: %w", err)
	}
	raw := attrString(item, attrPausedUntil)
	if raw == "" {
		return store.SpotifyPause{}, false, nil
	}
	until, err := parseTime(raw)
	if err != nil {
		return store.SpotifyPause{}, false, fmt.Errorf("dynamostore: read the Spotify pause: paused_until %q: %w", raw, err)
	}
	since, _ := parseTime(attrString(item, attrPausedSince))
	return store.SpotifyPause{Until: until.UTC(), Since: since.UTC(), Reason: attrString(item, attrPauseReason)}, true, nil
}
