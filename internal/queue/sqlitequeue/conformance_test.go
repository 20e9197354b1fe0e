package sqlitequeue_test

import (
	"context"
	"fmt"
	"path/filepath"
	"regexp"
	"sync"
	"testing"

	"github.com/sixpotify/top-tracks/internal/queue/queuetest"
	"github.com/sixpotify/top-tracks/internal/queue/sqlitequeue"
)

// TestConformance runs the shared suite with every case's queue a lane of
// one file, so that the cases also contend for the file as workers would.
func TestConformance(t *testing.T) {
	path := filepath.Join(t.TempDir(), "conformance.db")
	unsafe := regexp.MustCompile(`[^A-Za-z0-9_-]+`)
	var (
		mu    sync.Mutex
		lanes = map[string]int{}
	)
	newQueue := func(t *testing.T, opts queuetest.QueueOptions) queuetest.Instance {
		name := unsafe.ReplaceAllString(t.Name(), "_")
		mu.Lock()
		lanes[name]++
		if n := lanes[name]; n > 1 {
			name = fmt.Sprintf("%s_%d", name, n)
		}
		mu.Unlock()
		if len(name) > 80 {
			name = name[len(name)-80:]
		}
		maxReceives := opts.MaxReceiveCount
		if maxReceives == 0 {
			maxReceives = -1 // no dead-letter queue
		}
		q := open(t, path, name, sqlitequeue.Options{
			VisibilityTimeout: opts.VisibilityTimeout,
			MaxReceiveCount:   maxReceives,
		})
		taken := 0
		return queuetest.Instance{
			Queue: q,
			DeadLetters: func(ctx context.Context) ([][]byte, error) {
				dead, err := q.DeadLetters(ctx)
				if err != nil {
					return nil, err
				}
				var bodies [][]byte
				for _, m := range dead[taken:] {
					bodies = append(bodies, m.Body)
				}
				taken = len(dead)
				return bodies, nil
			},
		}
	}
	queuetest.Run(t, newQueue, queuetest.Features{})
}
