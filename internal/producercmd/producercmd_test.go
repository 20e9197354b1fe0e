package producercmd_test

import (
	"bytes"
	"cmp"
	"context"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sixpotify/top-tracks/internal/message"
	"github.com/sixpotify/top-tracks/internal/producercmd"
	"github.com/sixpotify/top-tracks/internal/queue"
	"github.com/sixpotify/top-tracks/internal/queue/sqlitequeue"
	"github.com/sixpotify/top-tracks/internal/store"
	"github.com/sixpotify/top-tracks/internal/store/sqlitestore"
	"github.com/sixpotify/top-tracks/internal/testenv"
)

func TestMain(m *testing.M) { testenv.MainNoLeaks(m) }

const (
	pitbull = "0TnOYISbd1XYRBk9myaseg"
	taylor  = "06HL4z0CvFAxyc27GXpf02"
	drake   = "3TVXtAsR1Inumwj472S9r4"
	weeknd  = "1Xyo4u8uXC1ZmMpatF05PJ"
)

type result struct {
	code           int
	stdout, stderr string
}

// run runs the command with env as the whole environment.
func run(t *testing.T, env map[string]string, stdin string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	var stdout, stderr bytes.Buffer
	getenv := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	code := producercmd.Run(ctx, args, getenv, strings.NewReader(stdin), &stdout, &stderr)
	return result{code: code, stdout: stdout.String(), stderr: stderr.String()}
}

// messages returns the decoded bodies of every message in the queue name of
// the SQLite file path, sorted by artist and market.
func messages(t *testing.T, path, name string) []message.Message {
	t.Helper()
	q, err := sqlitequeue.Open(t.Context(), path, name, sqlitequeue.Options{})
	if err != nil {
		t.Fatalf("open queue %s in %s: %v", name, path, err)
	}
	defer q.Close()
	var got []message.Message
	for {
		msgs, err := q.Receive(t.Context(), queue.MaxBatch, 0)
		if err != nil {
			t.Fatalf("receive from %s: %v", name, err)
		}
		if len(msgs) == 0 {
			break
		}
		for _, m := range msgs {
			d, err := message.Decode(m.Body)
			if err != nil {
				t.Errorf("body %s: %v", m.Body, err)
			}
			got = append(got, d)
		}
	}
	slices.SortFunc(got, func(a, b message.Message) int {
		return cmp.Or(strings.Compare(a.ArtistID, b.ArtistID), strings.Compare(a.Market, b.Market))
	})
	return got
}

// lines returns the non-empty lines of s.
func lines(s string) []string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.TrimSpace(l) != "" {
			out = append(out, l)
		}
	}
	return out
}

// summaryLine matches the summary of an enqueue: counts given, time and
// rate free.
func summaryLine(enqueued, dups, rejected, failed int, queueURL string) *regexp.Regexp {
	return regexp.MustCompile(`^enqueued ` + strconv.Itoa(enqueued) + ` artists on ` + regexp.QuoteMeta(queueURL) +
		` in \S+ \(\d+/s\); ` + strconv.Itoa(dups) + ` duplicates dropped, ` + strconv.Itoa(rejected) + ` rejected, ` + strconv.Itoa(failed) + " failed\n$")
}

func TestHelp(t *testing.T) {
	tests := []struct {
		args []string
		want string // in stdout or stderr
	}{
		{[]string{"--help"}, "Usage: producer <command> [flags]\n"},
		{[]string{"-h"}, "Usage: producer <command> [flags]\n"},
		{[]string{"help"}, "Usage: producer <command> [flags]\n"},
		{[]string{"enqueue", "--help"}, "Usage: producer enqueue [<artist> ...] [flags]\n"},
		{[]string{"enqueue", "-h"}, "Usage: producer enqueue [<artist> ...] [flags]\n"},
		{[]string{"enqueue", pitbull, "--help"}, "Usage: producer enqueue [<artist> ...] [flags]\n"},
		{[]string{"help", "enqueue"}, "Usage: producer enqueue [<artist> ...] [flags]\n"},
		{[]string{"reprocess", "--help"}, "Usage: producer reprocess [flags]\n"},
		{[]string{"help", "reprocess"}, "Usage: producer reprocess [flags]\n"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			got := run(t, map[string]string{"QUEUE_URL": "sqlite:" + filepath.Join(t.TempDir(), "q.db")}, "", tt.args...)
			if got.code != 0 {
				t.Errorf("exit code: got %d, want 0\nstderr: %s", got.code, got.stderr)
			}
			if !strings.HasPrefix(got.stdout, tt.want) || got.stderr != "" {
				t.Errorf("got stdout %q, stderr %q; want stdout to start %q and no stderr", got.stdout, got.stderr, tt.want)
			}
			if strings.Contains(got.stdout+got.stderr, "producer: ") {
				t.Errorf("output: got an error line:\n%s%s", got.stdout, got.stderr)
			}
		})
	}
	// Every command's help lists its flags.
	got := run(t, nil, "", "enqueue", "--help")
	for _, flag := range []string{"--queue-url", "--bulk-queue-url", "--force", "--bulk", "-f, --file=FILE", "--market=CC"} {
		if !strings.Contains(got.stdout, flag) {
			t.Errorf("enqueue --help: got %q, want it to list %s", got.stdout, flag)
		}
	}
	got = run(t, nil, "", "reprocess", "--help")
	for _, flag := range []string{"--queue-url", "--bulk-queue-url", "--store-url", "--stale-after=DURATION", "--dry-run", "--resume=FILE"} {
		if !strings.Contains(got.stdout, flag) {
			t.Errorf("reprocess --help: got %q, want it to list %s", got.stdout, flag)
		}
	}
}

func TestUsageErrors(t *testing.T) {
	tests := []struct {
		name string
		env  map[string]string
		args []string
		// want is the one line of stderr.
		want string
	}{
		{name: "no command", args: nil, want: `producer: expected one of "enqueue", "reprocess", "export", "status", "dlq", ... (see 'producer --help')`},
		{name: "unknown command", args: []string{"frobnicate"}, want: `producer: unexpected argument frobnicate (see 'producer --help')`},
		{name: "bad flag", args: []string{"enqueue", pitbull, "--nope"}, want: `producer: unknown flag --nope (see 'producer enqueue --help')`},
		{name: "bad reprocess flag", args: []string{"reprocess", "--stale-after"}, want: `producer: --stale-after: needs a value (see 'producer reprocess --help')`},
		{name: "no artists", args: []string{"enqueue"}, want: `producer: no artists: name them as arguments or give -f FILE (see 'producer enqueue --help')`},
		{name: "-f missing", args: []string{"enqueue", "-f", "/nonexistent/artists.txt"}, want: `producer: -f: open /nonexistent/artists.txt: no such file or directory`},
		{
			name: "bad QUEUE_URL", env: map[string]string{"QUEUE_URL": "ftp://x"},
			args: []string{"enqueue", pitbull}, want: `producer: QUEUE_URL (--queue-url): "ftp://x" is neither an SQS queue URL (https://…) nor sqlite:PATH`,
		},
		{
			name: "bad --queue-url", args: []string{"enqueue", pitbull, "--queue-url", "ftp://x"},
			want: `producer: QUEUE_URL (--queue-url): "ftp://x" is neither an SQS queue URL (https://…) nor sqlite:PATH`,
		},
		{
			name: "empty QUEUE_URL", env: map[string]string{"QUEUE_URL": ""},
			args: []string{"enqueue", pitbull}, want: `producer: QUEUE_URL (--queue-url): is empty`,
		},
		{
			name: "bad BULK_QUEUE_URL", env: map[string]string{"BULK_QUEUE_URL": "sqlite:q.db?lane=bulk"},
			args: []string{"enqueue", "--bulk", pitbull}, want: `producer: BULK_QUEUE_URL (--bulk-queue-url): `,
		},
		{
			name: "bad --market", args: []string{"enqueue", "--market", "USA", pitbull},
			want: `producer: --market: "USA" is not an ISO 3166-1 alpha-2 code such as US`,
		},
		{
			name: "bad STORE_URL", env: map[string]string{"STORE_URL": "postgres://db/x"},
			args: []string{"reprocess"}, want: `producer: STORE_URL (--store-url): "postgres://db/x" is neither dynamodb:TABLE nor sqlite:PATH`,
		},
		{
			name: "STORE_URL that does not exist", env: map[string]string{"STORE_URL": "sqlite:/nonexistent/typo.db"},
			args: []string{"reprocess"}, want: `producer: STORE_URL (--store-url): /nonexistent/typo.db does not exist (the worker creates it on its first run)`,
		},
		{name: "bad --stale-after", args: []string{"reprocess", "--stale-after", "soon"}, want: `producer: --stale-after: expected duration but got "soon": time: invalid duration "soon" (see 'producer reprocess --help')`},
		{name: "reprocess takes no arguments", args: []string{"reprocess", pitbull}, want: `producer: unexpected argument ` + pitbull + ` (see 'producer reprocess --help')`},
		{name: "a flag with no value", args: []string{"enqueue", pitbull, "--bulk-queue-url"}, want: `producer: --bulk-queue-url: needs a value (see 'producer enqueue --help')`},
		{name: "--wait-timeout without --wait", args: []string{"enqueue", pitbull, "--wait-timeout", "5s"}, want: `producer: --wait-timeout: only with --wait`},
		{name: "--json without --wait", args: []string{"enqueue", pitbull, "--json"}, want: `producer: --json: only with --wait`},
		{name: "--wait on the bulk lane", args: []string{"enqueue", pitbull, "--wait", "--bulk"}, want: `producer: --bulk: --wait asks on the chatbot's lane (QUEUE_URL); leave --bulk out`},
		{name: "a zero --wait-timeout", args: []string{"enqueue", pitbull, "--wait", "--wait-timeout", "0s"}, want: `producer: --wait-timeout: 0s is not a positive duration (examples: 10s, 2m)`},
		{name: "a bad --wait-timeout", args: []string{"enqueue", pitbull, "--wait", "--wait-timeout", "soon"}, want: `producer: --wait-timeout: expected duration but got "soon": time: invalid duration "soon" (see 'producer enqueue --help')`},
		{name: "a negative FRESH_FOR", env: map[string]string{"FRESH_FOR": "-1h"}, args: []string{"enqueue", pitbull, "--wait"}, want: `producer: FRESH_FOR (--fresh-for): -1h0m0s is negative`},
		{
			name: "--wait on a STORE_URL that does not exist", env: map[string]string{"STORE_URL": "sqlite:/nonexistent/typo.db"},
			args: []string{"enqueue", "--wait", pitbull}, want: `producer: STORE_URL (--store-url): /nonexistent/typo.db does not exist (the worker creates it on its first run)`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			env := map[string]string{
				"QUEUE_URL": "sqlite:" + filepath.Join(dir, "q.db"),
				"STORE_URL": "sqlite:" + filepath.Join(dir, "q.db"),
			}
			for k, v := range tt.env {
				env[k] = v
			}
			got := run(t, env, "", tt.args...)
			if got.code != 2 {
				t.Errorf("exit code: got %d, want 2\nstderr: %s", got.code, got.stderr)
			}
			// One line, exactly; a prefix where the rest is another package's.
			if !strings.HasPrefix(got.stderr, tt.want) || strings.Count(got.stderr, "\n") != 1 ||
				(!strings.HasSuffix(tt.want, ": ") && got.stderr != tt.want+"\n") {
				t.Errorf("stderr: got %q, want the one line %q", got.stderr, tt.want)
			}
			if got.stdout != "" {
				t.Errorf("stdout: got %q, want nothing", got.stdout)
			}
			if _, err := os.Stat(filepath.Join(dir, "q.db")); err == nil {
				t.Errorf("q.db exists: a usage error opened the queue or the store")
			}
		})
	}
}

// savedStore saves results in a new SQLite file and returns its path, the
// store closed again.
func savedStore(t *testing.T, results ...store.Result) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "sixpotify.db")
	st, err := sqlitestore.Open(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range results {
		if err := st.Save(t.Context(), r); err != nil {
			st.Close()
			t.Fatalf("save %s: %v", r.ArtistID, err)
		}
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}
