package bench_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/sixpotify/top-tracks/internal/fakespotify"
	"github.com/sixpotify/top-tracks/internal/gate"
)

// BenchmarkGateLanes: a backfill of 1,200 artists alone, on the chatbot's
// lane and on the bulk lane (as producer reprocess sends it), against the
// stand-in's 20 calls/s over a rolling 5s window, SPOTIFY_RATE=60. The bulk
// lane must take the whole rate when no chatbot call is made: the two rows
// should read alike.
func BenchmarkGateLanes(b *testing.B) {
	type row struct {
		lane                    string
		steady, whole           float64
		tooMany, calls, elapsed float64
	}
	var rows []row
	for b.Loop() {
		rows = nil
		for _, lane := range []string{"chatbot", "bulk"} {
			w := 5 * time.Second
			cfg := fakespotify.Config{Limit: int(gateQuota * w.Seconds()), Window: w, Latency: spotifyLatency}
			rig := newQuotaRig(b, cfg)
			ids := artistIDs(1200)
			q := rig.chatbot
			if lane == "bulk" {
				q = rig.bulk
			}
			if err := send(testContext(b), q, ids); err != nil {
				b.Fatal(err)
			}
			g := gate.New(gate.Options{Rate: gateOverRate})
			start := time.Now()
			stop := rig.startWorker(b, rig.client(b, g), g, true)
			for rig.store.saved(time.Time{}) < len(ids) && time.Since(start) < 150*time.Second {
				time.Sleep(20 * time.Millisecond)
			}
			stop()
			calls := rig.calls.all()
			if len(calls) == 0 {
				b.Fatalf("%s lane: no call reached the stand-in", lane)
			}
			st := rig.fake.Stats()
			rows = append(rows, row{lane: lane,
				steady: goodputSince(calls, calls[0].at.Add(steadyAfter(w)), cfg), whole: goodputSince(calls, calls[0].at.Add(w), cfg),
				tooMany: float64(st.TooMany), calls: float64(st.Requests), elapsed: time.Since(start).Seconds()})
		}
	}
	fmt.Printf("\nA backfill alone, by lane: 1,200 artists, quota %.0f/s over a rolling 5s window, SPOTIFY_RATE=%.0f, one process\n", gateQuota, gateOverRate)
	for _, r := range rows {
		fmt.Printf("  %-7s lane: goodput %.3f of the quota from 25s (%.3f from 5s), %.0f of %.0f calls answered 429, drained in %.1fs\n",
			r.lane, r.steady, r.whole, r.tooMany, r.calls, r.elapsed)
	}
	if len(rows) == 2 {
		fmt.Printf("  bulk ÷ chatbot goodput: %.3f (goal ≥ 0.95)\n", rows[1].steady/rows[0].steady)
	}
}
