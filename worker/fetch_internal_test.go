package worker

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sixpotify/top-tracks/internal/gate"
	"github.com/sixpotify/top-tracks/internal/message"
	"github.com/sixpotify/top-tracks/internal/store"
	"github.com/sixpotify/top-tracks/internal/store/storetest"
	"github.com/sixpotify/top-tracks/internal/testutil"
)

// downStore fails every Save; the first Save waits until release is closed.
type downStore struct {
	saves   atomic.Int32
	first   chan struct{} // closed once the first Save is waiting
	release chan struct{}
	once    sync.Once
}

var errStoreDown = errors.New("store unreachable")

func (s *downStore) Save(ctx context.Context, r store.Result) error {
	if s.saves.Add(1) == 1 {
		s.once.Do(func() { close(s.first) })
		<-s.release
	}
	return errStoreDown
}

func (s *downStore) Artist(ctx context.Context, id string) (store.Artist, bool, error) {
	return store.Artist{}, false, nil
}

type tracksFetcher struct{}

func (tracksFetcher) TopTracks(ctx context.Context, id, market string) ([]Track, error) {
	return storetest.Tracks(id, 0, 3), nil
}

// TestAProbeDoesItsOwnFetch: the breaker's probe, for an artist whose fetch
// another message started, does not wait for that fetch and take its result:
// it fetches and saves itself, so that its own failure judges it (the next
// probe waits twice as long), not nothing.
func TestAProbeDoesItsOwnFetch(t *testing.T) {
	clk := testutil.NewClock(time.Unix(1_000_000, 0))
	g := gate.New(gate.Options{Rate: 1000, Clock: clk.Now, ProbeBase: time.Second, ProbeCap: time.Minute})
	st := &downStore{first: make(chan struct{}), release: make(chan struct{})}
	opts := Options{FreshFor: -1, Gate: g}
	opts.setDefaults()
	f := &fetching{opts: &opts, store: st, fetcher: tracksFetcher{}, gate: g, metrics: opts.Metrics}
	ctx := context.Background()
	msg := message.Message{ArtistID: storetest.ID("probe-own-fetch")}
	log := opts.Logger

	// Another message's fetch of the artist is under way, its save stuck.
	other := make(chan error, 1)
	go func() {
		_, err := f.process(ctx, LaneChatbot, msg, log)
		other <- err
	}()
	defer close(st.release)
	<-st.first

	// The store fails for other artists meanwhile: the breaker opens.
	for i := 0; !g.BreakerOpen(); i++ {
		if i == 100 {
			t.Fatal("the breaker did not open")
		}
		g.Report(ctx, gate.CauseStore, fmt.Sprint("artist-", i), errStoreDown)
	}
	clk.Advance(time.Second)
	wait, _, probe := g.Hold()
	if wait > 0 || probe == nil {
		t.Fatalf("Hold after ProbeBase = %v, probe %v; want a probe", wait, probe)
	}

	// The probe is a message for the same artist, market and lane.
	done := make(chan error, 1)
	go func() {
		_, err := f.process(probe.Context(ctx), LaneChatbot, msg, log)
		done <- err
	}()
	select {
	case err := <-done:
		if !errors.Is(err, errStoreDown) {
			t.Errorf("the probe's process = %v, want its own save's error", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the probe waited for the other message's fetch")
	}
	probe.End()
	if n := st.saves.Load(); n != 2 {
		t.Errorf("saves = %d, want 2 (the other's, and the probe's own)", n)
	}
	if left, reason := g.Paused(); reason != gate.ReasonOutage || left != 2*time.Second {
		t.Errorf("after the probe failed: paused %v (%q), want 2s (%q): the failed probe doubles the backoff",
			left, reason, gate.ReasonOutage)
	}
	select {
	case err := <-other:
		t.Errorf("the other message's fetch ended (%v) before its save was released", err)
	default:
	}
}
