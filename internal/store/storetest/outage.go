package storetest

import (
	"context"
	"errors"
	"sync/atomic"

	"github.com/sixpotify/top-tracks/internal/store"
)

// ErrOutage is what an Outage answers while down.
var ErrOutage = errors.New("connection reset by peer (injected store outage)")

// Outage wraps a store and fails every call while down, as a DynamoDB that
// resets every connection does once the SDK's retries are spent. Set Down to
// start and end the outage; set WritesDown for one in which reads still
// work (a table whose writes are throttled past every retry, say).
type Outage struct {
	Store interface {
		Save(ctx context.Context, r store.Result) error
		Artist(ctx context.Context, id string) (store.Artist, bool, error)
	}
	Down, WritesDown atomic.Bool
}

// Save saves r, or fails while down or while writes are.
func (o *Outage) Save(ctx context.Context, r store.Result) error {
	if o.Down.Load() || o.WritesDown.Load() {
		return ErrOutage
	}
	return o.Store.Save(ctx, r)
}

// Artist reads the artist's row, or fails while down.
func (o *Outage) Artist(ctx context.Context, id string) (store.Artist, bool, error) {
	if o.Down.Load() {
		return store.Artist{}, false, ErrOutage
	}
	return o.Store.Artist(ctx, id)
}
