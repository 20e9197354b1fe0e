package producer_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	gocmp "github.com/google/go-cmp/cmp"

	"github.com/sixpotify/top-tracks/internal/artistid"
	"github.com/sixpotify/top-tracks/internal/fakespotify"
	"github.com/sixpotify/top-tracks/internal/fakespotify/fakespotifytest"
	"github.com/sixpotify/top-tracks/internal/gate"
	"github.com/sixpotify/top-tracks/internal/spotify"
	"github.com/sixpotify/top-tracks/internal/store"
	"github.com/sixpotify/top-tracks/internal/store/dynamostore"
	"github.com/sixpotify/top-tracks/internal/store/sqlitestore"
	"github.com/sixpotify/top-tracks/internal/store/storetest"
	"github.com/sixpotify/top-tracks/internal/testenv"
	"github.com/sixpotify/top-tracks/internal/testutil"
	"github.com/sixpotify/top-tracks/producer"
	"github.com/sixpotify/top-tracks/worker"
)

// Both store backends are the chatbot's Reader.
var (
	_ producer.Reader = (*dynamostore.Store)(nil)
	_ producer.Reader = (*sqlitestore.Store)(nil)
)

// askQueue is the chatbot's lane: the producer's side and the worker's.
type askQueue interface {
	producer.Sender
	worker.Queue
}

// askStore is the store: the worker writes it, the chatbot reads it.
type askStore interface {
	worker.Store
	producer.Reader
}

// askWorld is a chatbot's world: its lane, the store, the Spotify stand-in,
// and a real worker between them once started.
type askWorld struct {
	t      *testing.T
	q      askQueue
	st     askStore
	fake   *fakespotify.Server
	client *spotify.Client
	gate   *gate.Gate
	sent   atomic.Int64 // messages the askers sent
}

var askBackends = []struct {
	name string
	open func(t *testing.T) (askQueue, askStore)
}{
	{"embedded", func(t *testing.T) (askQueue, askStore) {
		path := filepath.Join(t.TempDir(), "sixpotify.db")
		st, err := sqlitestore.Open(t.Context(), path)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		return openSQLite(t), st
	}},
	{"emulators", func(t *testing.T) (askQueue, askStore) {
		db := testenv.DynamoDBClient(t, func(o *dynamodb.Options) { o.HTTPClient = testenv.HTTPClient(t) })
		n := queueSeq.Add(1)
		st := dynamostore.New(db, fmt.Sprintf("ask_tracks_%d", n), fmt.Sprintf("ask_artists_%d", n))
		if err := st.CreateTables(t.Context()); err != nil {
			t.Fatal(err)
		}
		return openSQS(t), st
	}},
}

func newAskWorld(t *testing.T, open func(t *testing.T) (askQueue, askStore)) *askWorld {
	t.Helper()
	w := &askWorld{t: t}
	w.q, w.st = open(t)
	w.gate = gate.New(gate.Options{})
	w.fake, w.client = fakespotifytest.Start(t, fakespotify.Config{}, spotify.Config{Gate: w.gate})
	return w
}

// startWorker runs a worker on the world's lane until the test ends.
func (w *askWorld) startWorker() {
	w.t.Helper()
	wk, err := worker.New(w.q, nil, w.st, w.client, worker.Options{
		WaitTime:  200 * time.Millisecond, // the SQS emulator's long poll waits out a batch that does not fill
		RetryBase: 10 * time.Millisecond,
		Gate:      w.gate,
	})
	if err != nil {
		w.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- wk.Run(ctx) }()
	w.t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			w.t.Errorf("worker Run: %v", err)
		}
	})
}

func (w *askWorld) asker(popts producer.Options) *producer.Asker {
	return producer.NewAsker(producer.New(senderFunc(w.send), popts), w.st, producer.AskOptions{})
}

// send sends to the lane, counting what was sent.
func (w *askWorld) send(ctx context.Context, entries []producer.Entry) ([]error, error) {
	errs, err := w.q.SendBatch(ctx, entries)
	if err == nil {
		for _, e := range errs {
			if e == nil {
				w.sent.Add(1)
			}
		}
	}
	return errs, err
}

// save stores a fetch of the artist made at at, as the worker would.
func (w *askWorld) save(id string, at time.Time, gen int) {
	w.t.Helper()
	err := w.st.Save(w.t.Context(), store.Result{ArtistID: id, Market: "US", Status: store.StatusOK,
		FetchedAt: at.UTC().Truncate(time.Millisecond), Tracks: fakespotify.Tracks(id, gen, 10)})
	if err != nil {
		w.t.Fatal(err)
	}
}

// queued returns how many messages the lane holds visible now.
func (w *askWorld) queued() int {
	w.t.Helper()
	msgs, err := w.q.Receive(w.t.Context(), 10, 0)
	if err != nil {
		w.t.Fatal(err)
	}
	return len(msgs)
}

// checkTracks asserts that ans holds the stand-in's tracks of generation gen.
func checkTracks(t *testing.T, ans producer.Answer, id string, gen int) {
	t.Helper()
	if ans.ArtistID != id || ans.Status != producer.StatusOK || ans.NotFound() {
		t.Errorf("answer for %s: artist %s status %q; want %s, ok", id, ans.ArtistID, ans.Status, id)
	}
	got := make([]spotify.Track, len(ans.Tracks))
	for i, r := range ans.Tracks {
		got[i] = r.Track
		if r.Rank != i+1 {
			t.Errorf("answer for %s: track %d has rank %d", id, i+1, r.Rank)
		}
	}
	if diff := gocmp.Diff(got, fakespotify.Tracks(id, gen, 10)); diff != "" {
		t.Errorf("answer for %s: tracks (-got +want):\n%s", id, diff)
	}
}

// notFoundID returns an artist ID the stand-in answers 404.
func notFoundID(seed string) string { return "0000" + storetest.ID(seed)[4:] }

func TestAskUnknownArtist(t *testing.T) {
	for _, b := range askBackends {
		t.Run(b.name, func(t *testing.T) {
			w := newAskWorld(t, b.open)
			w.startWorker()
			id := storetest.ID("ask-unknown-" + b.name)
			before := time.Now()
			ans, err := w.asker(producer.Options{}).Ask(t.Context(), "spotify:artist:"+id)
			if err != nil {
				t.Fatalf("Ask: %v", err)
			}
			checkTracks(t, ans, id, 0)
			if !ans.Enqueued || ans.Market != "US" || ans.FetchedAt.Before(before.Truncate(time.Millisecond)) {
				t.Errorf("answer: enqueued %t market %q fetched at %v; want enqueued, US, after %v", ans.Enqueued, ans.Market, ans.FetchedAt, before)
			}
			if n := w.fake.Stats().PerArtist[id]; n != 1 {
				t.Errorf("Spotify was asked %d times for the artist; want 1", n)
			}
		})
	}
}

func TestAskStaleArtistIsFetchedAgain(t *testing.T) {
	for _, b := range askBackends {
		t.Run(b.name, func(t *testing.T) {
			w := newAskWorld(t, b.open)
			id := storetest.ID("ask-stale-" + b.name)
			old := time.Now().Add(-2 * time.Hour)
			w.save(id, old, 0)
			w.fake.SetGeneration(id, 1)
			w.startWorker()
			ans, err := w.asker(producer.Options{Market: "US"}).Ask(t.Context(), id)
			if err != nil {
				t.Fatalf("Ask: %v", err)
			}
			checkTracks(t, ans, id, 1)
			if !ans.Enqueued || !ans.FetchedAt.After(old) {
				t.Errorf("answer: enqueued %t, fetched at %v; want a fetch after %v", ans.Enqueued, ans.FetchedAt, old)
			}
		})
	}
}

func TestAskFreshArtistSendsNothing(t *testing.T) {
	for _, b := range askBackends {
		t.Run(b.name, func(t *testing.T) {
			w := newAskWorld(t, b.open) // no worker: the store must answer
			id := storetest.ID("ask-fresh-" + b.name)
			at := time.Now().Add(-10 * time.Minute)
			w.save(id, at, 0)
			ans, err := w.asker(producer.Options{}).Ask(t.Context(), id)
			if err != nil {
				t.Fatalf("Ask: %v", err)
			}
			checkTracks(t, ans, id, 0)
			if ans.Enqueued || !ans.FetchedAt.Equal(at.UTC().Truncate(time.Millisecond)) {
				t.Errorf("answer: enqueued %t, fetched at %v; want the stored fetch of %v, not enqueued", ans.Enqueued, ans.FetchedAt, at)
			}
			if n := w.queued(); n != 0 {
				t.Errorf("the lane holds %d messages; want none", n)
			}
			if s := w.fake.Stats(); s.Requests+s.TokenRequests != 0 {
				t.Errorf("Spotify saw %d calls; want none", s.Requests+s.TokenRequests)
			}

			// A market other than the stored one is not that answer.
			p := producer.New(w.q, producer.Options{Market: "SE"})
			ctx, cancel := context.WithCancel(t.Context())
			cancel()
			if _, err := producer.NewAsker(p, w.st, producer.AskOptions{}).Ask(ctx, id); !errors.Is(err, context.Canceled) {
				t.Errorf("Ask in SE with a cancelled context: %v; want context.Canceled", err)
			}
		})
	}
}

func TestAskNotFound(t *testing.T) {
	for _, b := range askBackends {
		t.Run(b.name, func(t *testing.T) {
			w := newAskWorld(t, b.open)
			w.startWorker()
			id := notFoundID("ask-404-" + b.name)
			a := w.asker(producer.Options{})
			ans, err := a.Ask(t.Context(), id)
			if err != nil {
				t.Fatalf("Ask: %v", err)
			}
			if !ans.NotFound() || len(ans.Tracks) != 0 || !ans.Enqueued {
				t.Errorf("answer: status %q, %d tracks, enqueued %t; want not_found, none, enqueued", ans.Status, len(ans.Tracks), ans.Enqueued)
			}
			// Asked again, the fresh not_found is the answer, with no message.
			again, err := a.Ask(t.Context(), id)
			if err != nil || !again.NotFound() || again.Enqueued {
				t.Errorf("Ask again: %+v, %v; want the stored not_found", again, err)
			}
			if n := w.fake.Stats().NotFound; n != 1 {
				t.Errorf("Spotify answered %d 404s; want 1", n)
			}
		})
	}
}

func TestAskRejectsWhatIsNoArtist(t *testing.T) {
	w := newAskWorld(t, askBackends[0].open)
	_, err := w.asker(producer.Options{}).Ask(t.Context(), "spotify:track:4kLLWz7srcuLKA7Et40PQR")
	if !errors.Is(err, artistid.ErrInvalid) {
		t.Errorf("Ask of a track: %v; want artistid.ErrInvalid", err)
	}
	if n := w.queued(); n != 0 {
		t.Errorf("the lane holds %d messages; want none", n)
	}
}

// TestAskDeadlineDuringCooldown: while every call to Spotify draws a 429
// that is no penalty (here with no Retry-After: short cooldowns, one after
// another), an ask ends at its caller's deadline, and its artist is
// answered once the cooldowns are over. (A penalty is told at once instead:
// worker.TestAPenaltyIsKnownByTheFleet.)
func TestAskDeadlineDuringCooldown(t *testing.T) {
	for _, b := range askBackends {
		t.Run(b.name, func(t *testing.T) {
			w := newAskWorld(t, b.open)
			w.fake.SetThrottled(true)
			w.startWorker()
			a := w.asker(producer.Options{})
			// Another artist starts the cooldown.
			if _, err := producer.New(w.q, producer.Options{}).Enqueue(t.Context(), storetest.ID("ask-cooldown-first-"+b.name)); err != nil {
				t.Fatal(err)
			}
			testutil.Eventually(t, 30*time.Second, "Spotify answered a 429", func() bool { return w.fake.Stats().TooMany > 0 })

			id := storetest.ID("ask-cooldown-" + b.name)
			ctx, cancel := context.WithTimeout(t.Context(), time.Second)
			defer cancel()
			_, err := a.Ask(ctx, id)
			if !errors.Is(err, context.DeadlineExceeded) || !errors.Is(err, producer.ErrNoAnswer) {
				t.Fatalf("Ask during the cooldown: %v; want ErrNoAnswer and context.DeadlineExceeded", err)
			}

			w.fake.SetThrottled(false)
			testutil.Eventually(t, 30*time.Second, "the artist asked during the cooldown is stored", func() bool {
				_, ok, err := a.Lookup(t.Context(), id)
				return err == nil && ok
			})
			ans, ok, err := a.Lookup(t.Context(), id)
			if err != nil || !ok {
				t.Fatalf("Lookup: %v, %v", ok, err)
			}
			checkTracks(t, ans, id, 0)
		})
	}
}

// TestAskManyShareOneFetch: many chatbot calls waiting for one unknown
// artist at once all get its answer from one Spotify call.
func TestAskManyShareOneFetch(t *testing.T) {
	for _, b := range askBackends {
		t.Run(b.name, func(t *testing.T) {
			w := newAskWorld(t, b.open)
			a := w.asker(producer.Options{})
			id := storetest.ID("ask-shared-" + b.name)
			const callers = 25
			var (
				wg      sync.WaitGroup
				answers [callers]producer.Answer
				errs    [callers]error
			)
			for i := range callers {
				wg.Go(func() { answers[i], errs[i] = a.Ask(t.Context(), id) })
			}
			// Every caller's first look finds nothing: the worker starts
			// once each of them has enqueued.
			testutil.Eventually(t, 30*time.Second, "every caller enqueued", func() bool { return w.sent.Load() == callers })
			w.startWorker()
			wg.Wait()
			for i := range callers {
				if errs[i] != nil {
					t.Fatalf("caller %d: %v", i, errs[i])
				}
				checkTracks(t, answers[i], id, 0)
				if !answers[i].FetchedAt.Equal(answers[0].FetchedAt) {
					t.Errorf("caller %d got the fetch of %v, caller 0 that of %v", i, answers[i].FetchedAt, answers[0].FetchedAt)
				}
			}
			if n := w.fake.Stats().PerArtist[id]; n != 1 {
				t.Errorf("Spotify was asked %d times for the artist; want 1", n)
			}
		})
	}
}
