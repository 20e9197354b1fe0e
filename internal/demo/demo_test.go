package demo

import (
	"bytes"
	"context"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sixpotify/top-tracks/internal/store/sqlitestore"
)

// TestRunDrainsTheSampleOffline is `make run` on a fresh machine: no
// credentials, no AWS, a new directory.
func TestRunDrainsTheSampleOffline(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, "sixpotify.db")
	lake := filepath.Join(dir, "lake")
	env := map[string]string{"QUEUE_URL": "sqlite:" + db, "STORE_URL": "sqlite:" + db, "DEMO_LAKE": lake}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var stdout, stderr bytes.Buffer
	if err := Run(ctx, func(k string) string { return env[k] }, &stdout, &stderr); err != nil {
		t.Fatalf("Run: %v\nstdout:\n%s\nstderr:\n%s", err, stdout.String(), stderr.String())
	}
	out := stdout.String()
	lines := strings.Split(out, "\n")
	if !strings.Contains(lines[0], "Spotify stand-in") {
		t.Errorf("first line %q does not say the stand-in is used", lines[0])
	}
	for _, want := range []string{"artists processed", "artists/s", "Spotify calls", "429", "retries", "track rows stored", db,
		"Exported the store to file:" + lake, "duckdb -c", lake + "/top_tracks/*/*.parquet"} {
		if !strings.Contains(out, want) {
			t.Errorf("the summary does not mention %q:\n%s", want, out)
		}
	}
	ids := sampleIDs(t)
	s, err := sqlitestore.Open(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, id := range ids {
		rows, err := s.Tracks(ctx, id)
		if err != nil || len(rows) != 10 {
			t.Errorf("artist %s has %d rows (%v); want 10", id, len(rows), err)
		}
	}
	if strings.Contains(stderr.String(), "level=ERROR") {
		t.Errorf("errors were logged:\n%s", stderr.String())
	}

	// A second run finds every artist fresh and says how to fetch again.
	stdout.Reset()
	if err := Run(ctx, func(k string) string { return env[k] }, &stdout, &stderr); err != nil {
		t.Fatalf("second Run: %v", err)
	}
	if !strings.Contains(stdout.String(), "skipped as fresh "+strconv.Itoa(len(ids))) || !strings.Contains(stdout.String(), "FRESH_FOR=0") {
		t.Errorf("second run's summary:\n%s", stdout.String())
	}
}

func sampleIDs(t *testing.T) []string {
	t.Helper()
	var ids []string
	for _, line := range strings.Split(string(sample), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if i := strings.LastIndex(line, ":"); strings.HasPrefix(line, "spotify:") {
			line = line[i+1:]
		}
		if strings.HasPrefix(line, "https://") {
			line = strings.SplitN(strings.TrimPrefix(line, "https://open.spotify.com/artist/"), "?", 2)[0]
		}
		ids = append(ids, line)
	}
	if len(ids) < 20 {
		t.Fatalf("the sample holds %d artists", len(ids))
	}
	return ids
}
