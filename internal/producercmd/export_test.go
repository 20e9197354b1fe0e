package producercmd_test

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/sixpotify/top-tracks/internal/spotify"
	"github.com/sixpotify/top-tracks/internal/store"
	"github.com/sixpotify/top-tracks/internal/testenv"
)

// exportStore is an SQLite store with two artists, one with tracks.
func exportStore(t *testing.T) string {
	t.Helper()
	// Fetched now: the store deletes rows older than RETAIN_FOR when it is
	// opened. The partition's date is --date's, not the fetch's.
	at := time.Now().UTC().Truncate(time.Millisecond)
	return savedStore(t,
		store.Result{ArtistID: pitbull, Market: "US", Status: store.StatusOK, FetchedAt: at,
			Tracks: []spotify.Track{{ID: "4pT4M4KAlKgaRfJQ7gYuBn", Name: "Timber", URI: "spotify:track:4pT4M4KAlKgaRfJQ7gYuBn"}}},
		store.Result{ArtistID: taylor, Market: "GB", Status: store.StatusNotFound, FetchedAt: at})
}

var exportSummary = regexp.MustCompile(`^exported sqlite:\S+ dt=2026-01-02 to (\S+): 1 track rows, 2 artists, 2 files, [0-9.]+ (B|KiB) in \S+ \([0-9]+ rows/s\)\n$`)

func TestExportToFile(t *testing.T) {
	db := exportStore(t)
	lake := filepath.Join(t.TempDir(), "lake")
	r := run(t, map[string]string{"STORE_URL": "sqlite:" + db}, "", "export", "--to", "file:"+lake, "--date", "2026-01-02")
	if r.code != 0 {
		t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
	}
	if !exportSummary.MatchString(r.stdout) {
		t.Errorf("stdout %q, want the summary", r.stdout)
	}
	for _, p := range []string{"top_tracks/dt=2026-01-02/part-00000.parquet", "artists/dt=2026-01-02/part-00000.parquet"} {
		if _, err := os.Stat(filepath.Join(lake, p)); err != nil {
			t.Errorf("%s: %v", p, err)
		}
	}
}

// TestExportToS3 goes through the SDK's own configuration, as a user's run
// does: AWS_ENDPOINT_URL_S3 and the credentials from the environment.
func TestExportToS3(t *testing.T) {
	t.Setenv("AWS_ENDPOINT_URL_S3", testenv.S3Endpoint(t))
	t.Setenv("AWS_ACCESS_KEY_ID", testenv.S3AccessKey)
	t.Setenv("AWS_SECRET_ACCESS_KEY", testenv.S3SecretKey)
	t.Setenv("AWS_REGION", testenv.Region)
	env := map[string]string{"STORE_URL": "sqlite:" + exportStore(t)}
	r := run(t, env, "", "export", "--to", "s3://"+testenv.Bucket+"/producercmd", "--date", "2026-01-02")
	if r.code != 0 || !exportSummary.MatchString(r.stdout) {
		t.Fatalf("exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	r = run(t, env, "", "export", "--to", "s3://no-such-bucket/lake", "--date", "2026-01-02")
	lines := strings.Split(strings.TrimSpace(r.stderr), "\n")
	if r.code != 1 || len(lines) != 1 || !strings.Contains(lines[0], "producer: s3://no-such-bucket: the bucket does not exist") {
		t.Errorf("a missing bucket: exit %d, stderr %q; want 1 and one line", r.code, r.stderr)
	}
}

func TestExportUsage(t *testing.T) {
	db := exportStore(t)
	env := map[string]string{"STORE_URL": "sqlite:" + db}
	for _, tc := range []struct {
		args []string
		env  map[string]string
		want string
	}{
		{[]string{"export"}, env, "--to"},
		{[]string{"export", "--to", "ftp://x"}, env, "--to: \"ftp://x\" is neither"},
		{[]string{"export", "--to", "s3://"}, env, "--to:"},
		{[]string{"export", "--to", "file:lake", "--date", "2026-13-01"}, env, "--date:"},
		{[]string{"export", "--to", "file:lake"}, map[string]string{"STORE_URL": "sqlite:" + db + ".missing"}, "STORE_URL (--store-url)"},
	} {
		r := run(t, tc.env, "", tc.args...)
		lines := strings.Split(strings.TrimSpace(r.stderr), "\n")
		if r.code != 2 || len(lines) != 1 || !strings.Contains(r.stderr, tc.want) {
			t.Errorf("%v: exit %d, stderr %q; want 2 and one line naming %q", tc.args, r.code, r.stderr, tc.want)
		}
	}
}
