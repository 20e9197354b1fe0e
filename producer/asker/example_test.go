package asker_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/sixpotify/top-tracks/producer"
	"github.com/sixpotify/top-tracks/producer/asker"
)

// A chatbot asks for an artist and answers the user in the same call. Here
// no worker runs, so the deadline passes; with one, Ask returns the tracks
// (see the README for the whole path, in Go and in Python).
func ExampleOpen() {
	dir, _ := os.MkdirTemp("", "asker-example")
	defer os.RemoveAll(dir)
	db := "sqlite:" + filepath.Join(dir, "sixpotify.db")

	a, err := asker.Open(context.Background(), asker.Config{QueueURL: db, StoreURL: db})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer a.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	ans, err := a.Ask(ctx, "https://open.spotify.com/artist/0TnOYISbd1XYRBk9myaseg")
	switch {
	case errors.Is(err, producer.ErrNoAnswer):
		fmt.Println("not answered in time: the artist stays enqueued")
	case errors.Is(err, producer.ErrInvalidArtist):
		fmt.Println("that is not an artist")
	case err != nil:
		fmt.Println(err)
	case ans.NotFound():
		fmt.Println("Spotify does not know this artist")
	default:
		for _, t := range ans.Tracks {
			fmt.Println(t.Rank, t.Name, *t.Popularity)
		}
	}
	// Output:
	// not answered in time: the artist stays enqueued
}
