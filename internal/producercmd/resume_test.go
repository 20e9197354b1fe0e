package producercmd_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sixpotify/top-tracks/internal/producercmd"
	"github.com/sixpotify/top-tracks/internal/store"
	"github.com/sixpotify/top-tracks/internal/store/sqlitestore"
	"github.com/sixpotify/top-tracks/internal/store/storetest"
)

// catalogue saves n artists in a SQLite store and returns the environment
// of a producer that reads it and sends to the bulk lane of the same file.
func catalogue(t *testing.T, n int) (map[string]string, string) {
	t.Helper()
	db := filepath.Join(t.TempDir(), "sixpotify.db")
	s, err := sqlitestore.Open(t.Context(), db)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for i := range n {
		r := store.Result{ArtistID: storetest.ID(fmt.Sprint("resume", i)), Market: "US", Status: store.StatusOK,
			FetchedAt: time.Now().Add(-48 * time.Hour)}
		if err := s.Save(t.Context(), r); err != nil {
			t.Fatal(err)
		}
	}
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
