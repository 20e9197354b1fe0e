// Package asker opens a producer.Asker from the URLs a chatbot is
// configured with: the chatbot's lane and the store the worker writes.
//
// It lives apart from package producer so that a chatbot which only
// enqueues does not pull in the store backends (DynamoDB's SDK among them);
// one that asks and waits imports this package.
package asker

import (
	"context"

	"github.com/sixpotify/top-tracks/internal/backend"
	"github.com/sixpotify/top-tracks/internal/backend/stores"
	"github.com/sixpotify/top-tracks/producer"
)

// Config names what Open opens.
type Config struct {
	// QueueURL is the chatbot's lane (the worker's QUEUE_URL).
	QueueURL string
	// StoreURL is the store (STORE_URL): dynamodb:TABLE or sqlite:PATH.
	StoreURL string
	// ArtistsTable is the DynamoDB artists table (default "artists").
	ArtistsTable string
	Producer     producer.Options
	Ask          producer.AskOptions
}

// Open opens the queue and the store cfg names and returns an Asker over
// them. Close it when done: that closes both.
func Open(ctx context.Context, cfg Config) (*producer.Asker, error) {
	if cfg.ArtistsTable == "" {
		cfg.ArtistsTable = backend.DefaultArtistsTable
	}
	st, closeStore, err := stores.Open(ctx, cfg.StoreURL, cfg.ArtistsTable)
	if err != nil {
		return nil, err
	}
	p, err := producer.Open(ctx, cfg.QueueURL, cfg.Producer)
	if err != nil {
		closeStore()
		return nil, err
	}
	return producer.NewAsker(p, st, cfg.Ask).WithClose(func() error {
		pErr := p.Close()
		if err := closeStore(); err != nil && pErr == nil {
			return err
		}
		return pErr
	}), nil
}
