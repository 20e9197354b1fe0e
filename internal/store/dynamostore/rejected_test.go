package dynamostore_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/sixpotify/top-tracks/internal/store"
	"github.com/sixpotify/top-tracks/internal/store/storetest"
	"github.com/sixpotify/top-tracks/internal/testenv"
)

// TestAnItemOverTheLimitIsRejected saves a result whose track row is over
// DynamoDB's 400 KB item limit: DynamoDB refuses it (ValidationException),
// which is the result's own fault, so Save's error matches store.ErrRejected;
// a throttle or an outage never does. The refused save leaves no lease
// behind: the next, valid, result of the artist is stored at once.
func TestAnItemOverTheLimitIsRejected(t *testing.T) {
	s := newStore(t, fastRetries, nil)
	ctx := testenv.Context(t)
	a := storetest.ID("toolarge")
	r := result(a, t0, 2)
	r.Tracks[1].Name = strings.Repeat("x", 410<<10)
	err := s.Save(ctx, r)
	if !errors.Is(err, store.ErrRejected) {
		t.Fatalf("Save of a 410 KB track = %v; want an error matching store.ErrRejected", err)
	}
	t.Logf("Save: %.200v", err)
	ok := result(a, t0.Add(time.Second), 2)
	if err := s.Save(ctx, ok); err != nil {
		t.Fatalf("Save after the refused one: %v", err)
	}
	checkRows(t, s, ok)
}
