// Package demo is what `make run` runs: it enqueues an embedded sample of
// artists into the embedded queue, runs the worker until the queue is
// drained with a live progress display, prints a summary, and exports the
// store to the lake in the directory lake (DEMO_LAKE). Without
// Spotify credentials it starts the project's Spotify stand-in and says so.
package demo

import (
	"bytes"
	"context"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/sixpotify/top-tracks/internal/backend"
	"github.com/sixpotify/top-tracks/internal/export"
	"github.com/sixpotify/top-tracks/internal/export/filedest"
	"github.com/sixpotify/top-tracks/internal/fakespotify"
	"github.com/sixpotify/top-tracks/internal/logging"
	"github.com/sixpotify/top-tracks/internal/progress"
	"github.com/sixpotify/top-tracks/internal/store"
	"github.com/sixpotify/top-tracks/internal/workercmd"
	"github.com/sixpotify/top-tracks/producer"
)

//go:embed sample.txt
var sample []byte

// Run runs the demo. Settings come from getenv as for the worker (QUEUE_URL,
// STORE_URL, SPOTIFY_*, …), with defaults suited to a first run.
func Run(ctx context.Context, getenv func(string) string, stdout, stderr io.Writer) error {
	env := map[string]string{
		"UNTIL_EMPTY":       "true",
		"RECEIVE_WAIT_TIME": "1s",
		"HTTP_ADDR":         "",
		"LOG_LEVEL":         "error",
	}
	get := func(k string) (string, bool) {
		if v := getenv(k); v != "" {
			return v, true
		}
		v, ok := env[k]
		return v, ok
	}
	standIn := getenv("SPOTIFY_CLIENT_ID") == "" && getenv("SPOTIFY_CLIENT_SECRET") == ""
	var fake *fakespotify.Server
	if standIn {
		// A stand-in that rate-limits a little below what the worker is told,
		// so that the summary shows 429s being absorbed.
		secret := fmt.Sprintf("demo-%x", rand.Uint64())
		fake = fakespotify.New(fakespotify.Config{
			ClientID: "sixpotify-demo", ClientSecret: secret,
			Latency: 40 * time.Millisecond, Limit: 20, Window: time.Second,
		})
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return err
		}
		srv := &http.Server{Handler: fake, ReadHeaderTimeout: 5 * time.Second}
		go func() { _ = srv.Serve(l) }()
		defer srv.Close()
		base := "http://" + l.Addr().String()
		env["SPOTIFY_API_URL"], env["SPOTIFY_TOKEN_URL"] = base+"/v1", base+"/api/token"
		env["SPOTIFY_CLIENT_ID"], env["SPOTIFY_CLIENT_SECRET"] = "sixpotify-demo", secret
		env["SPOTIFY_RATE"] = "25"
		fmt.Fprintf(stdout, "No SPOTIFY_CLIENT_ID/SPOTIFY_CLIENT_SECRET set: using the project's Spotify stand-in at %s (set both to fetch from Spotify for real).\n", base)
	} else {
		fmt.Fprintf(stdout, "Fetching from Spotify at %s as app %s.\n", orDefault(getenv("SPOTIFY_API_URL"), "https://api.spotify.com/v1"), clipID(getenv("SPOTIFY_CLIENT_ID")))
	}

	cfg, err := workercmd.Load(nil, get, stderr)
	if errors.Is(err, workercmd.ErrHelp) {
		return nil
	}
	if err != nil {
		return err
	}
	log, err := logging.New(stderr, "text", cfg.LogLevel)
	if err != nil {
		return err
	}
	reg := prometheus.NewRegistry()
	parts, err := workercmd.Build(ctx, cfg, log, reg)
	if err != nil {
		return err
	}
	defer parts.Close()

	p, err := producer.Open(ctx, cfg.QueueURL, producer.Options{})
	if err != nil {
		return err
	}
	sum, err := p.EnqueueFrom(ctx, bytes.NewReader(sample))
	p.Close()
	if err != nil {
		return err
	}
	if err := sum.Err(); err != nil {
		return fmt.Errorf("enqueue the sample: %w", err)
	}
	fmt.Fprintf(stdout, "Enqueued %d sample artists on %s; store %s. Draining…\n", sum.Enqueued, cfg.QueueURL, cfg.StoreURL)

	start := time.Now()
	prog := progress.Start(stdout, "artists", sum.Enqueued, func() int {
		return int(gather(reg).sum("sixpotify_messages_processed_total", nil))
	})
	err = parts.Worker.Run(ctx)
	prog.Stop()
	if err != nil {
		return err
	}
	elapsed := time.Since(start)
	if err := summary(ctx, stdout, reg, parts.Store, cfg, elapsed, fake); err != nil {
		return err
	}
	return exportLake(ctx, stdout, parts.Store, orDefault(getenv("DEMO_LAKE"), "lake"))
}

// exportLake ends the demo as the nightly job would: the store's snapshot
// to the lake, here the directory dir.
func exportLake(ctx context.Context, w io.Writer, st store.Store, dir string) error {
	e, err := export.New(st, filedest.New(dir), export.Options{})
	if err != nil {
		return err
	}
	sum, err := e.Run(ctx)
	if err != nil {
		return fmt.Errorf("export to file:%s: %w", dir, err)
	}
	fmt.Fprintf(w, "\nExported the store to file:%s (what `producer export --to file:%s` does): %d track rows and %d artists as Parquet in %d files, %.1f KiB, partition dt=%s.\n",
		dir, dir, sum.TrackRows, sum.ArtistRows, sum.Files, float64(sum.Bytes)/1024, sum.Date)
	fmt.Fprintf(w, "Look at it with DuckDB (or any Parquet reader: pandas, Spark, Athena):\n"+
		"  duckdb -c \"SELECT artist_id, rank, name, popularity, fetched_at FROM '%s/top_tracks/*/*.parquet' ORDER BY artist_id, rank LIMIT 20\"\n"+
		"  duckdb -c \"SELECT dt, count(*) FROM read_parquet('%s/artists/*/*.parquet', hive_partitioning = true) GROUP BY dt\"\n", dir, dir)
	return nil
}

func summary(ctx context.Context, w io.Writer, reg prometheus.Gatherer, st store.Store, cfg workercmd.Config, elapsed time.Duration, fake *fakespotify.Server) error {
	m := gather(reg)
	processed := m.sum("sixpotify_messages_processed_total", nil)
	ok := m.sum("sixpotify_messages_processed_total", map[string]string{"outcome": "ok"})
	fresh := m.sum("sixpotify_messages_processed_total", map[string]string{"outcome": "skipped_fresh"})
	notFound := m.sum("sixpotify_messages_processed_total", map[string]string{"outcome": "not_found"})
	poison := m.sum("sixpotify_messages_processed_total", map[string]string{"outcome": "poison"})
	calls := m.sum("sixpotify_spotify_requests_total", nil)
	throttled := m.sum("sixpotify_spotify_requests_total", map[string]string{"code": "429"})
	retries := m.sum("sixpotify_spotify_retries_total", nil)
	tokens := m.sum("sixpotify_spotify_token_requests_total", nil)

	tracks := 0
	err := st.ScanArtists(ctx, func(a store.Artist) error {
		tracks += a.Tracks
		return nil
	})
	if err != nil {
		return fmt.Errorf("count tracks: %w", err)
	}
	rate := 0.0
	if s := elapsed.Seconds(); s > 0 {
		rate = processed / s
	}
	fmt.Fprintf(w, "\nDone in %s.\n", elapsed.Round(10*time.Millisecond))
	fmt.Fprintf(w, "  artists processed   %4.0f  (fetched %.0f, not found %.0f, skipped as fresh %.0f, poison %.0f)\n", processed, ok, notFound, fresh, poison)
	fmt.Fprintf(w, "  artists/s           %6.1f\n", rate)
	fmt.Fprintf(w, "  Spotify calls       %4.0f  (%.0f answered 429 and absorbed, %.0f retries, %.0f token requests)\n", calls, throttled, retries, tokens)
	fmt.Fprintf(w, "  track rows stored   %4d  (all artists in the store)\n", tracks)
	if fake != nil {
		st := fake.Stats()
		fmt.Fprintf(w, "  stand-in saw        %4d calls, %d inside a Retry-After\n", st.Requests, st.InsideRetryAfter)
	}
	if fresh > 0 {
		fmt.Fprintf(w, "Artists fetched less than FRESH_FOR (%s) ago are skipped: FRESH_FOR=0 make run fetches them again.\n", cfg.Options.FreshFor)
	}
	if backend.IsSQLite(cfg.StoreURL) {
		path := strings.TrimPrefix(strings.SplitN(cfg.StoreURL, "?", 2)[0], "sqlite:")
		fmt.Fprintf(w, "The data is in %s (SQLite). Look at it with:\n  sqlite3 %s \"SELECT artist_id, rank, name, popularity FROM top_tracks ORDER BY artist_id, rank LIMIT 20\"\n  sqlite3 %s \"SELECT * FROM artists\"\n", path, path, path)
	} else {
		fmt.Fprintf(w, "The data is in DynamoDB: %s and table %s.\n", cfg.StoreURL, cfg.ArtistsTable)
	}
	return nil
}

// metricsView sums gathered metrics.
type metricsView []*dto.MetricFamily

func gather(g prometheus.Gatherer) metricsView {
	mfs, _ := g.Gather()
	return mfs
}

// sum adds the values of the counters or gauges named name whose labels
// include every pair of want.
func (v metricsView) sum(name string, want map[string]string) float64 {
	total := 0.0
	for _, mf := range v {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			for k, val := range want {
				found := false
				for _, lp := range m.GetLabel() {
					if lp.GetName() == k && lp.GetValue() == val {
						found = true
					}
				}
				if !found {
					continue next
				}
			}
			switch {
			case m.GetCounter() != nil:
				total += m.GetCounter().GetValue()
			case m.GetGauge() != nil:
				total += m.GetGauge().GetValue()
			}
		}
	}
	return total
}

func orDefault(v, def string) string {
	if v == "" {
		return def
	}
	return v
}

// clipID shows the start of a client ID only.
func clipID(id string) string {
	if len(id) > 6 {
		return id[:6] + "…"
	}
	return id
}
