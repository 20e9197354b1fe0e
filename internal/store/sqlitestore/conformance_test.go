package sqlitestore_test

import (
	"testing"

	"github.com/sixpotify/top-tracks/internal/store"
	"github.com/sixpotify/top-tracks/internal/store/storetest"
)

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		return open(t, dbPath(t))
	}, storetest.Features{
		// Every Save is one serialized transaction that checks fetched_at.
		NewestWins: true,
	})
}
