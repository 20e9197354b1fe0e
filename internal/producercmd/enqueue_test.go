package producercmd_test

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	gocmp "github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/sixpotify/top-tracks/internal/message"
)

func TestEnqueue(t *testing.T) {
	const file = "# catalogue\n" + pitbull + "\n\nspotify:artist:" + taylor + "\n# " + drake + "\nnope\n"
	tests := []struct {
		name  string
		env   map[string]string // {dir} is the test's directory
		args  []string
		stdin string
		// wantQueues: queue name → messages in it (missing names are empty).
		wantQueues map[string][]message.Message
		wantCode   int
		wantStdout *regexp.Regexp
		wantStderr []string // substrings, each on a line of its own
	}{
		{
			name: "an ID, a URI and a URL",
			args: []string{"enqueue", pitbull, "spotify:artist:" + taylor, "https://open.spotify.com/artist/" + drake + "?si=0a1b2c"},
			wantQueues: map[string][]message.Message{
				"default": {{ArtistID: taylor}, {ArtistID: pitbull}, {ArtistID: drake}},
			},
			wantStdout: summaryLine(3, 0, 0, 0, "sqlite:{dir}/sixpotify.db"),
		},
		{
			name:       "duplicates are dropped",
			args:       []string{"enqueue", pitbull, "spotify:artist:" + pitbull},
			wantQueues: map[string][]message.Message{"default": {{ArtistID: pitbull}}},
			wantStdout: summaryLine(1, 1, 0, 0, "sqlite:{dir}/sixpotify.db"),
		},
		{
			name:       "a bad artist is named and the good ones still go",
			args:       []string{"enqueue", pitbull, "not-an-artist", taylor},
			wantQueues: map[string][]message.Message{"default": {{ArtistID: taylor}, {ArtistID: pitbull}}},
			wantCode:   1,
			wantStdout: summaryLine(2, 0, 1, 0, "sqlite:{dir}/sixpotify.db"),
			wantStderr: []string{`producer: rejected "not-an-artist" (argument 2): invalid artist`},
		},
		{
			name:       "-f FILE",
			args:       []string{"enqueue", "-f", "{dir}/artists.txt"},
			wantQueues: map[string][]message.Message{"default": {{ArtistID: taylor}, {ArtistID: pitbull}}},
			wantCode:   1,
			wantStdout: summaryLine(2, 0, 1, 0, "sqlite:{dir}/sixpotify.db"),
			wantStderr: []string{`producer: rejected "nope" ({dir}/artists.txt line 6): invalid artist`},
		},
		{
			name:       "-f - reads standard input",
			args:       []string{"enqueue", "-f", "-"},
			stdin:      "\n" + weeknd + "\r\nhttps://open.spotify.com/artist/" + drake + "\n",
			wantQueues: map[string][]message.Message{"default": {{ArtistID: weeknd}, {ArtistID: drake}}},
			wantStdout: summaryLine(2, 0, 0, 0, "sqlite:{dir}/sixpotify.db"),
		},
		{
			name:       "arguments and -f together",
			args:       []string{"enqueue", "-f", "{dir}/artists.txt", weeknd, pitbull},
			wantQueues: map[string][]message.Message{"default": {{ArtistID: taylor}, {ArtistID: pitbull}, {ArtistID: weeknd}}},
			wantCode:   1,
			wantStdout: summaryLine(3, 1, 1, 0, "sqlite:{dir}/sixpotify.db"),
			wantStderr: []string{`producer: rejected "nope" ({dir}/artists.txt line 6): invalid artist`},
		},
		{
			name:       "-f that cannot be read",
			args:       []string{"enqueue", "-f", "{dir}", pitbull},
			wantQueues: map[string][]message.Message{"default": {{ArtistID: pitbull}}},
			wantCode:   1,
			wantStdout: summaryLine(1, 0, 0, 0, "sqlite:{dir}/sixpotify.db"),
			wantStderr: []string{"producer: -f: read artists: "},
		},
		{
			name:       "--force",
			args:       []string{"enqueue", "--force", pitbull},
			wantQueues: map[string][]message.Message{"default": {{ArtistID: pitbull, Force: true}}},
			wantStdout: summaryLine(1, 0, 0, 0, "sqlite:{dir}/sixpotify.db"),
		},
		{
			name:       "--market",
			args:       []string{"enqueue", "--market", "se", pitbull},
			wantQueues: map[string][]message.Message{"default": {{ArtistID: pitbull, Market: "SE"}}},
			wantStdout: summaryLine(1, 0, 0, 0, "sqlite:{dir}/sixpotify.db"),
		},
		{
			name:       "--bulk goes to BULK_QUEUE_URL",
			env:        map[string]string{"BULK_QUEUE_URL": "sqlite:{dir}/sixpotify.db?queue=bulk"},
			args:       []string{"enqueue", "--bulk", pitbull, taylor},
			wantQueues: map[string][]message.Message{"bulk": {{ArtistID: taylor}, {ArtistID: pitbull}}},
			wantStdout: summaryLine(2, 0, 0, 0, "sqlite:{dir}/sixpotify.db?queue=bulk"),
		},
		{
			name:       "without --bulk BULK_QUEUE_URL is not used",
			env:        map[string]string{"BULK_QUEUE_URL": "sqlite:{dir}/sixpotify.db?queue=bulk"},
			args:       []string{"enqueue", pitbull},
			wantQueues: map[string][]message.Message{"default": {{ArtistID: pitbull}}},
			wantStdout: summaryLine(1, 0, 0, 0, "sqlite:{dir}/sixpotify.db"),
		},
		{
			name:       "--bulk with one lane is refused",
			args:       []string{"enqueue", pitbull, "--bulk"},
			wantCode:   2,
			wantStdout: regexp.MustCompile(`^$`),
			wantStderr: []string{"producer: BULK_QUEUE_URL (--bulk-queue-url): is required by --bulk: set it to the bulk lane's queue URL"},
		},
		{
			name:       "flags after the artists",
			args:       []string{"enqueue", pitbull, "--force", taylor, "--market", "se"},
			wantQueues: map[string][]message.Message{"default": {{ArtistID: taylor, Market: "SE", Force: true}, {ArtistID: pitbull, Market: "SE", Force: true}}},
			wantStdout: summaryLine(2, 0, 0, 0, "sqlite:{dir}/sixpotify.db"),
		},
		{
			name:       "-f twice reads both files",
			args:       []string{"enqueue", "-f", "{dir}/artists.txt", "-f", "-"},
			stdin:      weeknd + "\nbad\n",
			wantQueues: map[string][]message.Message{"default": {{ArtistID: taylor}, {ArtistID: pitbull}, {ArtistID: weeknd}}},
			wantCode:   1,
			wantStdout: summaryLine(3, 0, 2, 0, "sqlite:{dir}/sixpotify.db"),
			wantStderr: []string{`producer: rejected "nope" ({dir}/artists.txt line 6): invalid artist`, `producer: rejected "bad" (stdin line 2): invalid artist`},
		},
		{
			name:       "--queue-url overrides QUEUE_URL",
			env:        map[string]string{"QUEUE_URL": "sqlite:{dir}/elsewhere.db"},
			args:       []string{"enqueue", "--queue-url", "sqlite:{dir}/sixpotify.db?queue=chat", pitbull},
			wantQueues: map[string][]message.Message{"chat": {{ArtistID: pitbull}}},
			wantStdout: summaryLine(1, 0, 0, 0, "sqlite:{dir}/sixpotify.db?queue=chat"),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			expand := func(s string) string { return strings.ReplaceAll(s, "{dir}", dir) }
			if err := os.WriteFile(filepath.Join(dir, "artists.txt"), []byte(file), 0o644); err != nil {
				t.Fatal(err)
			}
			env := map[string]string{"QUEUE_URL": "sqlite:{dir}/sixpotify.db"}
			for k, v := range tt.env {
				env[k] = v
			}
			for k, v := range env {
				env[k] = expand(v)
			}
			var args []string
			for _, a := range tt.args {
				args = append(args, expand(a))
			}
			got := run(t, env, tt.stdin, args...)
			if got.code != tt.wantCode {
				t.Errorf("exit code: got %d, want %d\nstdout: %s\nstderr: %s", got.code, tt.wantCode, got.stdout, got.stderr)
			}
			if want := regexp.MustCompile(strings.ReplaceAll(tt.wantStdout.String(), regexp.QuoteMeta("{dir}"), regexp.QuoteMeta(dir))); !want.MatchString(got.stdout) {
				t.Errorf("stdout: got %q, want a match of %q", got.stdout, want)
			}
			if tt.wantStderr == nil && got.stderr != "" {
				t.Errorf("stderr: got %q, want nothing", got.stderr)
			}
			gotLines := lines(got.stderr)
			if len(gotLines) != len(tt.wantStderr) {
				t.Errorf("stderr: got %d lines, want %d:\n%s", len(gotLines), len(tt.wantStderr), got.stderr)
			}
			for _, want := range tt.wantStderr {
				want = strings.ReplaceAll(want, "{dir}", dir)
				if !slices.ContainsFunc(gotLines, func(l string) bool { return strings.Contains(l, want) }) {
					t.Errorf("stderr: got %q, want a line containing %q", got.stderr, want)
				}
			}
			// The elsewhere.db of QUEUE_URL is never touched when the flag wins.
			if _, err := os.Stat(filepath.Join(dir, "elsewhere.db")); err == nil {
				t.Errorf("elsewhere.db exists: the QUEUE_URL the flag overrides was opened")
			}
			for _, name := range []string{"default", "bulk", "chat"} {
				gotMsgs := messages(t, filepath.Join(dir, "sixpotify.db"), name)
				if diff := gocmp.Diff(gotMsgs, tt.wantQueues[name], cmpopts.EquateEmpty()); diff != "" {
					t.Errorf("queue %s (-got +want):\n%s", name, diff)
				}
			}
		})
	}
}
