package producercmd_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	gocmp "github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/sixpotify/top-tracks/internal/message"
	"github.com/sixpotify/top-tracks/internal/producercmd"
	"github.com/sixpotify/top-tracks/internal/spotify"
	"github.com/sixpotify/top-tracks/internal/store"
	"github.com/sixpotify/top-tracks/internal/store/storetest"
)

func TestReprocess(t *testing.T) {
	now := time.Now().UTC()
	saved := []store.Result{
		{ArtistID: pitbull, Market: "US", Status: store.StatusOK, FetchedAt: now.Add(-3 * time.Hour),
			Tracks: []spotify.Track{{ID: "2takcwOaAZWiXQijPHIx7B", Name: "Time of Our Lives"}}},
		{ArtistID: taylor, Market: "SE", Status: store.StatusOK, FetchedAt: now.Add(-2 * time.Hour)},
		{ArtistID: drake, Market: "US", Status: store.StatusOK, FetchedAt: now.Add(-10 * time.Minute)},
		{ArtistID: weeknd, Market: "GB", Status: store.StatusNotFound, FetchedAt: now.Add(-50 * time.Hour)},
	}
	stale := []message.Message{{ArtistID: taylor, Market: "SE"}, {ArtistID: pitbull, Market: "US"}, {ArtistID: weeknd, Market: "GB"}}
	all := []message.Message{{ArtistID: taylor, Market: "SE"}, {ArtistID: pitbull, Market: "US"}, {ArtistID: weeknd, Market: "GB"}, {ArtistID: drake, Market: "US"}}
	forced := []message.Message{{ArtistID: taylor, Market: "SE", Force: true}, {ArtistID: pitbull, Market: "US", Force: true}, {ArtistID: weeknd, Market: "GB", Force: true}}
	const bulkURL = "sqlite:{dir}/sixpotify.db?queue=bulk"

	tests := []struct {
		name       string
		oneLane    bool // no BULK_QUEUE_URL
		args       []string
		wantQueues map[string][]message.Message
		wantStdout *regexp.Regexp
	}{
		{
			name:       "only the stale ones, on the bulk lane",
			args:       []string{"reprocess", "--stale-after", "1h"},
			wantQueues: map[string][]message.Message{"bulk": stale},
			wantStdout: summaryLine(3, 0, 0, 0, bulkURL),
		},
		{
			name:       "every artist",
			args:       []string{"reprocess"},
			wantQueues: map[string][]message.Message{"bulk": all},
			wantStdout: summaryLine(4, 0, 0, 0, bulkURL),
		},
		{
			name:       "--force",
			args:       []string{"reprocess", "--stale-after=1h", "--force"},
			wantQueues: map[string][]message.Message{"bulk": forced},
			wantStdout: summaryLine(3, 0, 0, 0, bulkURL),
		},
		{
			name:       "--dry-run counts without enqueueing",
			args:       []string{"reprocess", "--stale-after", "1h", "--dry-run"},
			wantStdout: regexp.MustCompile(`^dry run: 3 artists would be enqueued on ` + regexp.QuoteMeta(bulkURL) + "\n$"),
		},
		{
			name:       "one lane: on QUEUE_URL",
			oneLane:    true,
			args:       []string{"reprocess", "--stale-after", "1h"},
			wantQueues: map[string][]message.Message{"default": stale},
			wantStdout: summaryLine(3, 0, 0, 0, "sqlite:{dir}/sixpotify.db"),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// The queue and the store share one file, as with the defaults.
			path := savedStore(t, saved...)
			dir := filepath.Dir(path)
			expand := func(s string) string { return strings.ReplaceAll(s, "{dir}", dir) }
			env := map[string]string{"QUEUE_URL": "sqlite:" + path, "STORE_URL": "sqlite:" + path}
			if !tt.oneLane {
				env["BULK_QUEUE_URL"] = expand(bulkURL)
			}
			got := run(t, env, "", tt.args...)
			if got.code != 0 {
				t.Errorf("exit code: got %d, want 0\nstdout: %s\nstderr: %s", got.code, got.stdout, got.stderr)
			}
			if want := regexp.MustCompile(strings.ReplaceAll(tt.wantStdout.String(), regexp.QuoteMeta("{dir}"), regexp.QuoteMeta(dir))); !want.MatchString(got.stdout) {
				t.Errorf("stdout: got %q, want a match of %q", got.stdout, want)
			}
			if got.stderr != "" {
				t.Errorf("stderr: got %q, want nothing", got.stderr)
			}
			for _, name := range []string{"default", "bulk"} {
				if diff := gocmp.Diff(messages(t, path, name), tt.wantQueues[name], cmpopts.EquateEmpty()); diff != "" {
					t.Errorf("queue %s (-got +want):\n%s", name, diff)
				}
			}
		})
	}
}

// catalogue saves n artists in a SQLite store and returns the environment
// of a producer that reads it and sends to the bulk lane of the same file.
func catalogue(t *testing.T, n int) (map[string]string, string) {
	t.Helper()
	var results []store.Result
	for i := range n {
		results = append(results, store.Result{ArtistID: storetest.ID(fmt.Sprint("resume", i)), Market: "US", Status: store.StatusOK,
			FetchedAt: time.Now().Add(-48 * time.Hour)})
	}
	db := savedStore(t, results...)
	return map[string]string{
		"STORE_URL": "sqlite:" + db, "QUEUE_URL": "sqlite:" + db, "BULK_QUEUE_URL": "sqlite:" + db + "?queue=bulk",
	}, db
}

func TestReprocessResumesAfterAnInterruption(t *testing.T) {
	const n = 60
	env, db := catalogue(t, n)
	ckpt := filepath.Join(t.TempDir(), "backfill.ckpt")

	// A paced run (20/s) interrupted after about a second.
	ctx, cancel := context.WithTimeout(t.Context(), time.Second)
	defer cancel()
	var stdout, stderr bytes.Buffer
	code := producercmd.Run(ctx, []string{"reprocess", "--rate", "20", "--resume", ckpt},
		func(k string) (string, bool) { v, ok := env[k]; return v, ok }, strings.NewReader(""), &stdout, &stderr)
	if code == 0 {
		t.Fatalf("the interrupted run exited 0:\n%s%s", stdout.String(), stderr.String())
	}
	if !strings.Contains(stderr.String(), "run the same command again") {
		t.Errorf("the interrupted run does not say how to continue:\n%s", stderr.String())
	}
	first := len(messages(t, db, "bulk"))
	if first == 0 || first >= n {
		t.Fatalf("the interrupted run enqueued %d of %d artists; want some, not all", first, n)
	}
	written, err := os.ReadFile(ckpt)
	if err != nil {
		t.Fatal(err)
	}
	if got := len(lines(string(written))); got != first {
		t.Errorf("the checkpoint lists %d artists; %d were enqueued", got, first)
	}

	// The same command again enqueues exactly the rest.
	r := run(t, env, "", "reprocess", "--resume", ckpt)
	if r.code != 0 {
		t.Fatalf("the resumed run exited %d:\n%s%s", r.code, r.stdout, r.stderr)
	}
	if want := fmt.Sprintf("skipped %d artists already enqueued", first); !strings.Contains(r.stdout, want) {
		t.Errorf("the resumed run's summary does not say %q:\n%s", want, r.stdout)
	}
	rest := messages(t, db, "bulk")
	if len(rest)+first != n {
		t.Errorf("the two runs enqueued %d + %d artists; want %d in all, none twice", first, len(rest), n)
	}
	seen := map[string]bool{}
	for _, l := range lines(string(written)) {
		seen[l] = true
	}
	for _, m := range rest {
		if seen[m.ArtistID] {
			t.Errorf("artist %s was enqueued by both runs", m.ArtistID)
		}
	}
}

func TestReprocessRejectsABadRate(t *testing.T) {
	env, _ := catalogue(t, 1)
	for _, rate := range []string{"-1", "NaN", "+Inf", "fast"} {
		if r := run(t, env, "", "reprocess", "--rate", rate); r.code != 2 {
			t.Errorf("--rate %s exited %d, want 2:\n%s", rate, r.code, r.stderr)
		}
	}
}
