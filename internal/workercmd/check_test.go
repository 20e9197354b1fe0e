package workercmd_test

import (
	"context"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sixpotify/top-tracks/internal/fakespotify"
	"github.com/sixpotify/top-tracks/internal/store/dynamostore"
	"github.com/sixpotify/top-tracks/internal/testenv"
)

// checkLines runs `worker check` and returns its exit code and lines, each
// "STATUS  CHECK: ...", failing the test when a line is not of that form.
func checkLines(t *testing.T, env map[string]string, args ...string) (int, []string) {
	t.Helper()
	got := run(t, t.Context(), 60*time.Second, env, append([]string{"check"}, args...)...)
	if strings.Contains(got.stdout+got.stderr, secret) {
		t.Errorf("the client secret was printed:\n%s%s", got.stdout, got.stderr)
	}
	t.Logf("worker check %s: exit %d\n%s", strings.Join(args, " "), got.code, got.stdout)
	lines := strings.Split(strings.TrimSuffix(got.stdout, "\n"), "\n")
	for _, l := range lines {
		status, _, _ := strings.Cut(l, " ")
		if status != "ok" && status != "FAIL" && status != "skip" {
			t.Errorf("line %q does not start with ok, FAIL or skip", l)
		}
	}
	return got.code, lines
}

// standIn serves fc and returns the environment of a check against it, with
// the embedded queue and store in a fresh file.
func standIn(t *testing.T, fc fakespotify.Config) map[string]string {
	t.Helper()
	fc.ClientID, fc.ClientSecret = "test-client", secret
	srv := httptest.NewServer(fakespotify.New(fc))
	t.Cleanup(srv.Close)
	path := filepath.Join(t.TempDir(), "sixpotify.db")
	return withCredentials(map[string]string{
		"QUEUE_URL": "sqlite:" + path, "STORE_URL": "sqlite:" + path,
		"SPOTIFY_API_URL": srv.URL + "/v1", "SPOTIFY_TOKEN_URL": srv.URL + "/api/token",
	})
}

// TestCheckSpotify: check against the stand-in in each of its modes, on the
// embedded queue and store: one line per check, the Spotify line saying
// what is wrong and what to do, exit 0 only when all pass.
func TestCheckSpotify(t *testing.T) {
	tests := []struct {
		name     string
		fc       fakespotify.Config
		secret   string // the secret the worker sends, when not the right one
		args     []string
		wantCode int
		// want are the first two lines' starts and a part of each.
		want [2][2]string
	}{
		{name: "Extended Quota Mode app", wantCode: 0,
			want: [2][2]string{{"ok    spotify credentials:", "a token"}, {"ok    spotify top-tracks:", "10 tracks of 0TnOYISbd1XYRBk9myaseg in US"}}},
		{name: "an artist given as a link", args: []string{"https://open.spotify.com/artist/06HL4z0CvFAxyc27GXpf02?si=x"}, wantCode: 0,
			want: [2][2]string{{"ok    spotify credentials:", ""}, {"ok    spotify top-tracks:", "10 tracks of 06HL4z0CvFAxyc27GXpf02"}}},
		{name: "credentials rejected", secret: "not-the-secret", wantCode: 1,
			want: [2][2]string{{"FAIL  spotify credentials:", "rejected (HTTP 400 invalid_client): set SPOTIFY_CLIENT_ID and SPOTIFY_CLIENT_SECRET"},
				{"skip  spotify top-tracks:", "no token"}}},
		{name: "Development Mode app", fc: fakespotify.Config{DevelopmentMode: true}, wantCode: 1,
			want: [2][2]string{{"ok    spotify credentials:", ""}, {"FAIL  spotify top-tracks:", "this app may not call top-tracks (HTTP 403 \"Forbidden\")"}}},
		{name: "Premium lapsed", fc: fakespotify.Config{PremiumLapsed: true}, wantCode: 1,
			want: [2][2]string{{"ok    spotify credentials:", ""}, {"FAIL  spotify top-tracks:", "Premium subscription of the app's owner has lapsed"}}},
		{name: "fields removed", fc: fakespotify.Config{FieldsRemoved: true}, wantCode: 0,
			want: [2][2]string{{"ok    spotify credentials:", ""}, {"ok    spotify top-tracks:", "without popularity"}}},
		{name: "quota spent", fc: fakespotify.Config{QuotaExceeded: 22 * time.Hour}, wantCode: 1,
			want: [2][2]string{{"ok    spotify credentials:", ""}, {"FAIL  spotify quota:", "Retry-After 22h0m0s, QUOTA_EXCEEDED"}}},
		{name: "429 without Retry-After", fc: fakespotify.Config{Throttled: true}, wantCode: 1,
			want: [2][2]string{{"ok    spotify credentials:", ""}, {"FAIL  spotify quota:", "with no Retry-After"}}},
		{name: "not an artist ID", args: []string{"not-an-id"}, wantCode: 1,
			want: [2][2]string{{"ok    spotify credentials:", ""}, {"FAIL  spotify top-tracks:", "is not a Spotify artist ID"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := standIn(t, tt.fc)
			if tt.secret != "" {
				env["SPOTIFY_CLIENT_SECRET"] = tt.secret
			}
			code, lines := checkLines(t, env, tt.args...)
			if code != tt.wantCode {
				t.Errorf("exit code %d, want %d\n%s", code, tt.wantCode, strings.Join(lines, "\n"))
			}
			if len(lines) != 4 {
				t.Fatalf("%d lines, want 4 (credentials, top-tracks, queue, store):\n%s", len(lines), strings.Join(lines, "\n"))
			}
			for i, w := range tt.want {
				if !strings.HasPrefix(lines[i], w[0]) || !strings.Contains(lines[i], w[1]) {
					t.Errorf("line %d = %q; want it to start %q and say %q", i+1, lines[i], w[0], w[1])
				}
			}
			for _, l := range lines[2:] {
				if !strings.HasPrefix(l, "ok    queue sqlite:") && !strings.HasPrefix(l, "ok    store sqlite:") {
					t.Errorf("line %q: want the embedded queue and store to pass", l)
				}
			}
		})
	}
}

// TestCheckSpotifyUnreachable: nothing listens where Spotify should be.
func TestCheckSpotifyUnreachable(t *testing.T) {
	env := standIn(t, fakespotify.Config{})
	port, err := testenv.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	env["SPOTIFY_TOKEN_URL"] = "http://127.0.0.1:" + strconv.Itoa(port) + "/api/token"
	code, lines := checkLines(t, env)
	if code != 1 || len(lines) != 4 || !strings.HasPrefix(lines[0], "FAIL  spotify credentials: Spotify not reachable") {
		t.Errorf("exit %d, lines:\n%s\nwant 1 and Spotify not reachable", code, strings.Join(lines, "\n"))
	}
}

// TestCheckBadConfig: a bad RETAIN_FOR is a usage error naming it, before
// any check.
func TestCheckBadConfig(t *testing.T) {
	env := standIn(t, fakespotify.Config{})
	env["RETAIN_FOR"] = "30 days"
	got := run(t, t.Context(), 10*time.Second, env, "check")
	if got.code != 2 || got.stdout != "" || strings.Count(got.stderr, "\n") != 1 || !strings.Contains(got.stderr, "RETAIN_FOR") {
		t.Errorf("exit %d, stdout %q, stderr %q; want 2 and one line naming RETAIN_FOR", got.code, got.stdout, got.stderr)
	}
}

// TestCheckEmulators: check against SQS and DynamoDB (the emulators): both
// pass with the tables the contract names; a missing table, a table with
// other keys and an unreachable DynamoDB each fail their line.
func TestCheckEmulators(t *testing.T) {
	ctx := testenv.Context(t)
	testenv.SetAWSEnv(t, testenv.SQS, testenv.DynamoDB)
	sq := testenv.SQSClient(t)
	db := testenv.DynamoDBClient(t)
	suffix := strconv.FormatInt(time.Now().UnixNano(), 36)
	queueURL := testenv.CreateQueue(ctx, t, sq, "check-"+suffix, nil)
	tracks, artists := "check-tracks-"+suffix, "check-artists-"+suffix
	if err := dynamostore.New(db, tracks, artists).CreateTables(ctx); err != nil {
		t.Fatal(err)
	}

	base := standIn(t, fakespotify.Config{})
	env := func(kv ...string) map[string]string {
		e := map[string]string{}
		for k, v := range base {
			e[k] = v
		}
		e["QUEUE_URL"], e["STORE_URL"], e["ARTISTS_TABLE"] = queueURL, "dynamodb:"+tracks, artists
		for i := 0; i+1 < len(kv); i += 2 {
			e[kv[i]] = kv[i+1]
		}
		return e
	}
	t.Run("all pass", func(t *testing.T) {
		code, lines := checkLines(t, env())
		if code != 0 || len(lines) != 4 || !strings.HasPrefix(lines[2], "ok    queue http") ||
			!strings.HasPrefix(lines[3], "ok    store dynamodb:"+tracks+": tracks (artist_id, id) and "+artists) {
			t.Errorf("exit %d, lines:\n%s", code, strings.Join(lines, "\n"))
		}
	})
	t.Run("missing table", func(t *testing.T) {
		code, lines := checkLines(t, env("ARTISTS_TABLE", "no-such-table-"+suffix))
		if code != 1 || len(lines) != 4 || !strings.Contains(lines[3], "the table does not exist: deploy/template.yaml creates") {
			t.Errorf("exit %d, lines:\n%s", code, strings.Join(lines, "\n"))
		}
	})
	t.Run("tables swapped", func(t *testing.T) {
		code, lines := checkLines(t, env("STORE_URL", "dynamodb:"+artists, "ARTISTS_TABLE", tracks))
		if code != 1 || len(lines) != 4 || !strings.Contains(lines[3], "keys are not the contract's") {
			t.Errorf("exit %d, lines:\n%s", code, strings.Join(lines, "\n"))
		}
	})
	t.Run("bulk queue missing", func(t *testing.T) {
		missing := strings.TrimSuffix(queueURL, "check-"+suffix) + "no-such-queue-" + suffix
		code, lines := checkLines(t, env("BULK_QUEUE_URL", missing))
		if code != 1 || len(lines) != 5 || !strings.HasPrefix(lines[3], "FAIL  bulk queue ") {
			t.Errorf("exit %d, lines:\n%s", code, strings.Join(lines, "\n"))
		}
	})
	t.Run("DynamoDB not reachable", func(t *testing.T) {
		port, err := testenv.FreePort()
		if err != nil {
			t.Fatal(err)
		}
		t.Setenv("AWS_ENDPOINT_URL_DYNAMODB", "http://127.0.0.1:"+strconv.Itoa(port))
		ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
		defer cancel()
		got := run(t, ctx, 90*time.Second, env(), "check")
		t.Logf("worker check: exit %d\n%s", got.code, got.stdout)
		lines := strings.Split(strings.TrimSuffix(got.stdout, "\n"), "\n")
		if got.code != 1 || len(lines) != 4 || !strings.HasPrefix(lines[3], "FAIL  store dynamodb:") ||
			!strings.Contains(lines[3], "AWS not reachable") {
			t.Errorf("exit %d, lines:\n%s", got.code, got.stdout)
		}
	})
}

// TestCheckEmbeddedDefault: with QUEUE_URL and STORE_URL unset, check
// opens the embedded default in the working directory, as the worker does.
func TestCheckEmbeddedDefault(t *testing.T) {
	env := standIn(t, fakespotify.Config{})
	delete(env, "QUEUE_URL")
	delete(env, "STORE_URL")
	t.Chdir(t.TempDir())
	code, lines := checkLines(t, env)
	if code != 0 || len(lines) != 4 || !strings.HasPrefix(lines[2], "ok    queue sqlite:sixpotify.db: ") ||
		!strings.HasPrefix(lines[3], "ok    store sqlite:sixpotify.db: ") {
		t.Errorf("exit %d, lines:\n%s\nwant 0 and the embedded queue and store", code, strings.Join(lines, "\n"))
	}
}
