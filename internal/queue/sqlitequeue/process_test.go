package sqlitequeue_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/sixpotify/top-tracks/internal/queue"
	"github.com/sixpotify/top-tracks/internal/queue/sqlitequeue"
)

// helperEnv names the database a re-executed test binary works on as a
// worker process (see TestHelperWorkerProcess).
const helperEnv = "SQLITEQUEUE_HELPER_DB"

// TestSeparateProcesses runs two worker processes (this test binary, run
// again) with four receivers each against one file while this process sends:
// SQLite's locks between processes, not only between connections of one
// process, must keep every message to one delivery, and lose none.
func TestSeparateProcesses(t *testing.T) {
	const total = 300
	path := dbPath(t)
	producer := open(t, path, "default", sqlitequeue.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	type worker struct {
		cmd   *exec.Cmd
		stdin io.WriteCloser
		lines []string
	}
	workers := make([]*worker, 2)
	var readers sync.WaitGroup
	for i := range workers {
		cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestHelperWorkerProcess$", "-test.count=1")
		cmd.Env = append(os.Environ(), helperEnv+"="+path)
		cmd.Stderr = os.Stderr
		stdin, err := cmd.StdinPipe()
		if err != nil {
			t.Fatal(err)
		}
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		w := &worker{cmd: cmd, stdin: stdin}
		workers[i] = w
		readers.Go(func() {
			sc := bufio.NewScanner(stdout)
			for sc.Scan() {
				if line := sc.Text(); strings.HasPrefix(line, "got ") {
					w.lines = append(w.lines, strings.TrimPrefix(line, "got "))
				}
			}
		})
	}
	stopWorkers := func() {
		for _, w := range workers {
			w.stdin.Close()
		}
		readers.Wait()
		for i, w := range workers {
			if err := w.cmd.Wait(); err != nil {
				t.Errorf("worker process %d: %v", i, err)
			}
		}
	}

	for start := 0; start < total; start += queue.MaxBatch {
		var entries []queue.Entry
		for i := start; i < start+queue.MaxBatch; i++ {
			entries = append(entries, queue.Entry{Body: fmt.Appendf(nil, "m%03d", i)})
		}
		errs, err := producer.SendBatch(ctx, entries)
		if err == nil {
			err = queue.FirstError(errs)
		}
		if err != nil {
			stopWorkers()
			t.Fatalf("SendBatch: %v", err)
		}
	}
	// Wait until the workers have deleted everything.
	for {
		v, i, d, err := producer.Len(ctx)
		if err != nil {
			stopWorkers()
			t.Fatalf("Len: %v", err)
		}
		if v+i+d == 0 {
			break
		}
		select {
		case <-ctx.Done():
			stopWorkers()
			t.Fatalf("messages left after a minute: %d visible, %d in flight, %d dead", v, i, d)
		case <-time.After(20 * time.Millisecond): // paces the polling; asserts nothing
		}
	}
	stopWorkers()

	got := map[string]int{}
	for _, w := range workers {
		for _, body := range w.lines {
			got[body]++
		}
	}
	for i := range total {
		if n := got[fmt.Sprintf("m%03d", i)]; n != 1 {
			t.Errorf("message m%03d delivered %d times, want once", i, n)
		}
	}
	if len(got) != total {
		t.Errorf("%d distinct bodies delivered, want %d", len(got), total)
	}
}

// TestHelperWorkerProcess is a worker process of TestSeparateProcesses: four
// receivers that print and delete what they receive until standard input
// closes. Run directly, it does nothing.
func TestHelperWorkerProcess(t *testing.T) {
	path := os.Getenv(helperEnv)
	if path == "" {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		io.Copy(io.Discard, os.Stdin)
		cancel()
	}()
	q := open(t, path, "default", sqlitequeue.Options{VisibilityTimeout: 5 * time.Minute, PollInterval: 5 * time.Millisecond})
	var out sync.Mutex
	g := new(errgroup.Group)
	for range 4 {
		g.Go(func() error {
			for ctx.Err() == nil {
				msgs, err := q.Receive(ctx, queue.MaxBatch, time.Second)
				if err != nil {
					if ctx.Err() != nil {
						return nil
					}
					return err
				}
				out.Lock()
				receipts := make([]string, len(msgs))
				for i, m := range msgs {
					fmt.Printf("got %s\n", m.Body)
					receipts[i] = m.Receipt
				}
				out.Unlock()
				if len(msgs) == 0 {
					continue
				}
				// Deleted even if stdin closes now: nothing is left behind.
				errs, err := q.DeleteBatch(context.WithoutCancel(ctx), receipts)
				if err == nil {
					err = queue.FirstError(errs)
				}
				if err != nil {
					return err
				}
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		t.Fatal(err)
	}
}
