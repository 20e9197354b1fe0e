package bench_test

// BenchmarkExport: how fast `producer export` writes a catalogue of
// exportRows track rows from SQLite, to file: and to the S3 emulator, how
// much memory it takes, and how many bytes a row costs on disk. Two
// baselines in the same run say what bounds it:
//
//   - read: the store's ScanTracks alone, rows thrown away;
//   - encode: the export of the same number of rows from memory (a source
//     that cycles over rows read once), to file:, with no store read.
//
// The export overlaps reading and encoding (two goroutines), so on two
// cores its rate approaches the slower of the two; export÷read near 1
// means the store's read bounds it. Memory is sampled from the Go runtime
// (every class but released heap) every 10 ms; a 100,000-row catalogue is
// exported too, so that the two peaks show whether memory grows with rows.

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"runtime/debug"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/sixpotify/top-tracks/internal/export"
	"github.com/sixpotify/top-tracks/internal/export/filedest"
	"github.com/sixpotify/top-tracks/internal/export/s3dest"
	"github.com/sixpotify/top-tracks/internal/store"
	"github.com/sixpotify/top-tracks/internal/store/sqlitestore"
	"github.com/sixpotify/top-tracks/internal/store/storetest"
	"github.com/sixpotify/top-tracks/internal/testenv"
)

const (
	exportRows      = 1_000_000
	exportRowsSmall = 100_000
	tracksPerArtist = 10
)

// exportDB returns an SQLite store file holding rows track rows, made once
// and kept in the temporary directory for later runs.
func exportDB(b *testing.B, rows int) string {
	b.Helper()
	path := filepath.Join(os.TempDir(), fmt.Sprintf("sixpotify-bench-export-%d.db", rows))
	ctx := context.Background()
	s, err := sqlitestore.Open(ctx, path)
	if err != nil {
		b.Fatal(err)
	}
	n, err := s.CountTracks(ctx)
	s.Close()
	if err != nil {
		b.Fatal(err)
	}
	if n == rows {
		return path
	}
	os.Remove(path)
	s, err = sqlitestore.Open(ctx, path)
	if err != nil {
		b.Fatal(err)
	}
	s.Close()
	// Rows written straight into the store's tables (the store's Save, one
	// transaction per artist, would take minutes here), with the same
	// columns and JSON the store writes.
	db, err := sql.Open("sqlite", path)
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	at := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	for first := 0; first < rows/tracksPerArtist; first += 5000 {
		tx, err := db.Begin()
		if err != nil {
			b.Fatal(err)
		}
		tr, _ := tx.Prepare(`INSERT INTO top_tracks (artist_id, id, rank, name, popularity, duration_ms, explicit, uri,
			album, artists, external_urls, preview_url, track_number, market, fetched_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)`)
		ar, _ := tx.Prepare(`INSERT INTO artists (artist_id, fetched_at, market, status, track_count) VALUES (?,?,?,?,?)`)
		for i := first; i < min(first+5000, rows/tracksPerArtist); i++ {
			a := storetest.ID(fmt.Sprintf("bench/export/%d", i))
			fetched := at.Add(time.Duration(i) * time.Millisecond).Format(store.TimeFormat)
			for rank, t := range storetest.Tracks(a, i%50, tracksPerArtist) {
				album, _ := json.Marshal(t.Album)
				artists, _ := json.Marshal(t.Artists)
				urls, _ := json.Marshal(t.ExternalURLs)
				if _, err := tr.Exec(a, t.ID, rank+1, t.Name, t.Popularity, t.DurationMS, t.Explicit, t.URI,
					string(album), string(artists), string(urls), t.PreviewURL, t.TrackNumber, "US", fetched); err != nil {
					b.Fatal(err)
				}
			}
			if _, err := ar.Exec(a, fetched, "US", "ok", tracksPerArtist); err != nil {
				b.Fatal(err)
			}
		}
		if err := tx.Commit(); err != nil {
			b.Fatal(err)
		}
	}
	return path
}

// peakOf runs fn under the package's memory sampler and returns the peak
// of the Go runtime's memory (every class but the heap released to the OS).
func peakOf(fn func()) uint64 {
	m := startMemSampler()
	fn()
	_, rt := m.Stop()
	return rt
}

// cycling is a source that yields n rows cycling over rows, and no artists.
type cycling struct {
	rows []store.Row
	n    int
}

func (c cycling) ScanTracks(ctx context.Context, fn func(store.Row) error) error {
	for i := range c.n {
		if err := fn(c.rows[i%len(c.rows)]); err != nil {
			return err
		}
	}
	return nil
}

func (c cycling) ScanArtists(context.Context, func(store.Artist) error) error { return nil }

type exportResult struct {
	rows    int64
	seconds float64
	peak    uint64
	bytes   int64
}

var (
	exportMu      sync.Mutex
	exportResults = map[string]exportResult{}
)

func record(b *testing.B, name string, r exportResult) {
	b.ReportMetric(float64(r.rows)/r.seconds, "rows/s")
	b.ReportMetric(float64(r.peak)/(1<<20), "peak-mem-MB")
	if r.bytes > 0 {
		b.ReportMetric(float64(r.bytes)/float64(r.rows), "bytes/row")
	}
	exportMu.Lock()
	exportResults[name] = r
	exportMu.Unlock()
}

func runExport(b *testing.B, src export.Source, dst export.Destination) exportResult {
	b.Helper()
	e, err := export.New(src, dst, export.Options{Date: "2026-03-01"})
	if err != nil {
		b.Fatal(err)
	}
	var (
		sum  export.Summary
		secs float64
	)
	// As bin/producer runs it.
	defer debug.SetMemoryLimit(debug.SetMemoryLimit(export.MemoryLimit))
	peak := peakOf(func() {
		start := time.Now()
		sum, err = e.Run(context.Background())
		secs = time.Since(start).Seconds()
	})
	if err != nil {
		b.Fatal(err)
	}
	return exportResult{rows: sum.TrackRows + sum.ArtistRows, seconds: secs, peak: peak, bytes: sum.Bytes}
}

func BenchmarkExport(b *testing.B) {
	big, small := exportDB(b, exportRows), exportDB(b, exportRowsSmall)
	open := func(b *testing.B, path string) *sqlitestore.Store {
		s, err := sqlitestore.Open(context.Background(), path)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { s.Close() })
		return s
	}

	b.Run("read", func(b *testing.B) {
		s := open(b, big)
		for b.Loop() {
			var (
				n    int64
				secs float64
				err  error
			)
			peak := peakOf(func() {
				start := time.Now()
				err = s.ScanTracks(context.Background(), func(store.Row) error { n++; return nil })
				if err == nil {
					err = s.ScanArtists(context.Background(), func(store.Artist) error { n++; return nil })
				}
				secs = time.Since(start).Seconds()
			})
			if err != nil {
				b.Fatal(err)
			}
			record(b, "read", exportResult{rows: n, seconds: secs, peak: peak})
		}
	})
	b.Run("encode", func(b *testing.B) {
		s := open(b, small)
		var rows []store.Row
		_ = s.ScanTracks(context.Background(), func(r store.Row) error {
			if len(rows) < 10_000 {
				rows = append(rows, r)
			}
			return nil
		})
		for b.Loop() {
			record(b, "encode", runExport(b, cycling{rows: rows, n: exportRows}, filedest.New(b.TempDir())))
		}
	})
	b.Run("file", func(b *testing.B) {
		s := open(b, big)
		for b.Loop() {
			record(b, "file", runExport(b, s, filedest.New(b.TempDir())))
		}
	})
	b.Run("file-100k", func(b *testing.B) {
		s := open(b, small)
		for b.Loop() {
			record(b, "file-100k", runExport(b, s, filedest.New(b.TempDir())))
		}
	})
	b.Run("s3", func(b *testing.B) {
		s := open(b, big)
		endpoint := testenv.S3Endpoint(b)
		client := s3.NewFromConfig(testenv.S3Config(), func(o *s3.Options) {
			o.BaseEndpoint = aws.String(endpoint)
			o.UsePathStyle = true
		})
		for b.Loop() {
			record(b, "s3", runExport(b, s, s3dest.NewBucket(client, testenv.Bucket, "bench", endpoint)))
		}
	})

	exportMu.Lock()
	defer exportMu.Unlock()
	read, ok := exportResults["read"]
	if !ok {
		return
	}
	rate := func(r exportResult) float64 { return float64(r.rows) / r.seconds }
	fmt.Printf("\nexport of %d track rows (+ %d artists) from SQLite, one run each:\n", exportRows, exportRows/tracksPerArtist)
	fmt.Printf("  %-22s %12s %10s %12s %10s\n", "case", "rows/s", "÷ read", "peak mem MB", "bytes/row")
	for _, name := range []string{"read", "encode", "file", "s3", "file-100k"} {
		r, ok := exportResults[name]
		if !ok {
			continue
		}
		bpr := "-"
		if r.bytes > 0 {
			bpr = fmt.Sprintf("%.1f", float64(r.bytes)/float64(r.rows))
		}
		fmt.Printf("  %-22s %12.0f %10.2f %12.1f %10s\n", name, rate(r), rate(r)/rate(read), float64(r.peak)/(1<<20), bpr)
	}
}
