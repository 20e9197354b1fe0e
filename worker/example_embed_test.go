package worker_test

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/sixpotify/top-tracks/worker"
)

// memQueue is a queue of another module's making: what the worker needs of
// one is Receive, DeleteBatch and ChangeVisibility.
type memQueue struct {
	mu      sync.Mutex
	pending []worker.Delivery
	deleted []string
}

func (q *memQueue) Receive(_ context.Context, max int, _ time.Duration) ([]worker.Delivery, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	n := min(max, len(q.pending))
	out := q.pending[:n:n]
	q.pending = q.pending[n:]
	return out, nil
}

func (q *memQueue) DeleteBatch(_ context.Context, receipts []string) ([]error, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.deleted = append(q.deleted, receipts...)
	return make([]error, len(receipts)), nil
}

func (q *memQueue) ChangeVisibility(context.Context, string, time.Duration) error { return nil }

// memStore keeps what the worker saves.
type memStore struct {
	mu    sync.Mutex
	saved map[string]worker.Result
}

func (s *memStore) Save(_ context.Context, r worker.Result) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.saved[r.ArtistID] = r
	return nil
}

func (s *memStore) Artist(_ context.Context, id string) (worker.Artist, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.saved[id]
	return worker.Artist{ArtistID: id, Market: r.Market, Status: r.Status, FetchedAt: r.FetchedAt}, ok, nil
}

// fetcher calls "Spotify" through the same gate as the worker: Wait, then
// done with the outcome.
type fetcher struct{ gate *worker.Gate }

func (f fetcher) TopTracks(ctx context.Context, id, market string) ([]worker.Track, error) {
	done, err := f.gate.Wait(ctx)
	if err != nil {
		return nil, err
	}
	done(worker.Outcome{Fault: worker.Answered, Status: 200, Key: id})
	return []worker.Track{{ID: "4uLU6hMCjMI75M1A2tKUQC", Name: "a song of " + id[:4]}}, nil
}

// A module embeds the worker with its own queue, store and Spotify client,
// and the same gate for the worker and the client.
func Example_embedding() {
	q := &memQueue{}
	for i, id := range []string{"0TnOYISbd1XYRBk9myaseg", "66CXWjxzNUsdJxJ2JdwvnR"} {
		q.pending = append(q.pending, worker.Delivery{ID: strconv.Itoa(i), Receipt: "r" + strconv.Itoa(i),
			Body: []byte(`{"artist_id": "` + id + `"}`), ReceiveCount: 1})
	}
	st := &memStore{saved: map[string]worker.Result{}}
	g := worker.NewGate(worker.GateOptions{Rate: 50})
	w, err := worker.New(q, nil, st, fetcher{g}, worker.Options{Gate: g, StopWhenIdle: true, WaitTime: 10 * time.Millisecond})
	if err != nil {
		fmt.Println(err)
		return
	}
	if err := w.Run(context.Background()); err != nil {
		fmt.Println(err)
		return
	}
	var ids []string
	for id, r := range st.saved {
		ids = append(ids, fmt.Sprintf("%s: %d track, %q", id, len(r.Tracks), r.Tracks[0].Name))
	}
	slices.Sort(ids)
	for _, s := range ids {
		fmt.Println(s)
	}
	fmt.Println("deleted", len(q.deleted))
	// Output:
	// 0TnOYISbd1XYRBk9myaseg: 1 track, "a song of 0TnO"
	// 66CXWjxzNUsdJxJ2JdwvnR: 1 track, "a song of 66CX"
	// deleted 2
}
