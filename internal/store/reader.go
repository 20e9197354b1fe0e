package store

import "context"

// Reader is the read-only side of a store: what a chatbot needs to answer a
// user from it, and nothing that writes. Both backends (dynamostore,
// sqlitestore) are Readers, so the chatbot's read path is the store's own.
type Reader interface {
	// Artist reads the artists row; ok is false when the store holds no
	// fetch of the artist.
	Artist(ctx context.Context, id string) (a Artist, ok bool, err error)
	// Tracks returns the artist's rows by rank.
	Tracks(ctx context.Context, id string) ([]Row, error)
}
