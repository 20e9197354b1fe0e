package sqlitequeue_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/sixpotify/top-tracks/internal/queue"
	"github.com/sixpotify/top-tracks/internal/queue/sqlitequeue"
)

func Example() {
	dir, _ := os.MkdirTemp("", "sqlitequeue-example")
	defer os.RemoveAll(dir)
	ctx := context.Background()

	path, name, err := sqlitequeue.ParseURL("sqlite:" + filepath.Join(dir, "sixpotify.db") + "?queue=bulk")
	if err != nil {
		fmt.Println(err)
		return
	}
	q, err := sqlitequeue.Open(ctx, path, name, sqlitequeue.Options{VisibilityTimeout: time.Minute})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer q.Close()

	errs, err := q.SendBatch(ctx, []queue.Entry{{Body: []byte(`{"artist_id": "0TnOYISbd1XYRBk9myaseg"}`)}})
	if err != nil || queue.FirstError(errs) != nil {
		fmt.Println(err, errs)
		return
	}
	msgs, err := q.Receive(ctx, queue.MaxBatch, 20*time.Second)
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, m := range msgs {
		fmt.Printf("%s (receive %d)\n", m.Body, m.ReceiveCount)
		// … process it, then:
		if _, err := q.DeleteBatch(ctx, []string{m.Receipt}); err != nil {
			fmt.Println(err)
		}
	}
	visible, inflight, dead, _ := q.Len(ctx)
	fmt.Println(visible, inflight, dead)
	// Output:
	// {"artist_id": "0TnOYISbd1XYRBk9myaseg"} (receive 1)
	// 0 0 0
}
