package producer_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/sixpotify/top-tracks/producer"
)

// A Go chatbot enqueues the artist a user asked about. Here the queue is the
// embedded one; in production the URL is the SQS queue's (QUEUE_URL).
func Example() {
	dir, _ := os.MkdirTemp("", "producer-example")
	defer os.RemoveAll(dir)
	ctx := context.Background()

	p, err := producer.Open(ctx, "sqlite:"+filepath.Join(dir, "sixpotify.db"), producer.Options{Market: "US"})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer p.Close()

	// What the user pasted: a share link.
	sum, err := p.Enqueue(ctx, "https://open.spotify.com/artist/0TnOYISbd1XYRBk9myaseg?si=Xq3kZ")
	if err != nil {
		fmt.Println(err) // the context ended
		return
	}
	if err := sum.Err(); err != nil {
		fmt.Println(err) // the artist was rejected, or could not be sent
		return
	}
	fmt.Printf("enqueued %d artist\n", sum.Enqueued)

	// Anything that is not an artist is rejected before it is sent.
	sum, _ = p.Enqueue(ctx, "spotify:track:4kLLWz7srcuLKA7Et40PQR")
	fmt.Println(sum.Enqueued, sum.Err())
	// Output:
	// enqueued 1 artist
	// 0 rejected "spotify:track:4kLLWz7srcuLKA7Et40PQR" (input 1): invalid artist "spotify:track:4kLLWz7srcuLKA7Et40PQR": a spotify: URI must be spotify:artist:ID
}
