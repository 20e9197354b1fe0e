package e2e

import (
	"context"
	"fmt"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sixpotify/top-tracks/internal/fakespotify"
	"github.com/sixpotify/top-tracks/internal/testenv"
)

// newFake starts the Spotify stand-in in this process, for tests that read
// its counters.
func newFake(t *testing.T, latency time.Duration) (*fakespotify.Server, string) {
	fake := fakespotify.New(fakespotify.Config{
		ClientID: clientID, ClientSecret: clientSecret, Latency: latency, Seed: 1,
	})
	srv := httptest.NewServer(fake)
	t.Cleanup(srv.Close) // registered first: runs after the processes are killed
	return fake, srv.URL
}

// TestThreeHundredArtists is the acceptance test of the first milestone:
// 300 artists through the producer, the queue and one worker into DynamoDB,
// with exactly one Spotify call per artist.
func TestThreeHundredArtists(t *testing.T) {
	const n = 300
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	s := newScene(ctx, t, sceneOptions{queue: "300", visibility: 30, maxReceives: 5, seed: 300, n: n, tables: "tracks300"})
	fake, spotifyURL, queueURL, ids, table := s.fake, s.spotifyURL, s.queueURL, s.ids, s.table
	w := runUntilEmpty(t, 2*time.Minute, workerEnv(t, spotifyURL, queueURL, table), "worker", true)
	wall := w.elapsed()

	s.checkAllStored(ctx, t)

	stats := fake.Stats()
	calls, wrong := 0, 0
	for _, id := range ids {
		c := stats.PerArtist[id]
		calls += c
		if c != 1 {
			if wrong++; wrong <= 5 {
				t.Errorf("artist %s: %d successful Spotify calls, want 1", id, c)
			}
		}
	}
	if stats.Requests != n || len(stats.PerArtist) != n {
		t.Errorf("Spotify saw %d API calls for %d artists (%d OK, %d 429, %d 5xx, %d 401), want %d for %d",
			stats.Requests, len(stats.PerArtist), stats.OK, stats.TooMany, stats.ServerErrors, stats.Unauthorized, n, n)
	}
	if stats.TokenRequests != 1 {
		t.Errorf("Spotify saw %d token requests, want 1", stats.TokenRequests)
	}
	t.Logf("worker: %d artists in %s (process start to exit, table creation and the final empty receive included): %.1f artists/s",
		n, wall.Round(time.Millisecond), float64(n)/wall.Seconds())
	if from, to := logTime(w.stderr.String(), "worker started"), logTime(w.stderr.String(), "worker stopped"); !from.IsZero() && !to.IsZero() {
		t.Logf("worker: %s from \"worker started\" to \"worker stopped\" in its log (the final 1s empty receive included): %.1f artists/s",
			to.Sub(from).Round(time.Millisecond), float64(n)/to.Sub(from).Seconds())
	}
	t.Logf("Spotify: %.2f API calls per artist (%d calls, %d OK), %d token requests",
		float64(stats.Requests)/n, stats.Requests, calls, stats.TokenRequests)
}

// TestSIGTERMDuringHeavyWork stops a worker that holds 32 slow artists and
// checks that it exits 0 within the contract's 25 s, and that a second worker
// then finishes every artist: nothing is lost by the stop.
func TestSIGTERMDuringHeavyWork(t *testing.T) {
	const n = 200
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	s := newScene(ctx, t, sceneOptions{latency: 500 * time.Millisecond, queue: "sigterm", visibility: 5, seed: 200, n: n, tables: "tracksterm"})
	fake, spotifyURL, queueURL, ids, table, st := s.fake, s.spotifyURL, s.queueURL, s.ids, s.table, s.st
	env := workerEnv(t, spotifyURL, queueURL, table)
	w := start(t, 2*time.Minute, env, "worker")
	base := "http://" + env["HTTP_ADDR"]

	busy := waitFor(60*time.Second, func() bool {
		if _, exited := w.wait(0); exited {
			return true // reported below
		}
		if httpStatus(base+"/readyz") != 200 {
			return false
		}
		// Heavy: half the slots or more hold an artist, or a full set of
		// slow Spotify calls has started, or artists are being stored.
		if inFlight(base) >= 16 || fake.Stats().Requests >= 32 {
			return true
		}
		stored, err := scanCount(ctx, st)
		return err == nil && stored > 0
	})
	if code, exited := w.wait(0); exited {
		t.Fatalf("the worker exited %d before it was signalled", code)
	}
	if !busy {
		t.Fatal("the worker was not ready and busy within 60s")
	}
	before, held := fake.Stats(), inFlight(base)
	stop := stopWorker(t, w)
	checkWorkerLog(t, w.stderr.String(), false)
	storedFirst, _ := countArtists(ctx, st, ids)
	after := fake.Stats()
	t.Logf("SIGTERM with %d artists in flight (%d Spotify calls started): the worker exited %s after the signal; %d calls in all, %d/%d artists stored by it",
		held, before.Requests, stop.Round(time.Millisecond), after.Requests, storedFirst, n)

	// A second worker (again and again: messages the first one held may stay
	// invisible for up to the queue's 5 s visibility timeout) finishes the rest.
	env = workerEnv(t, spotifyURL, queueURL, table)
	deadline := time.Now().Add(60 * time.Second)
	runs, stored := 0, storedFirst
	for stored < n {
		if time.Now().After(deadline) {
			t.Fatalf("after %d more worker runs, %d of %d artists are stored", runs, stored, n)
		}
		runs++
		runUntilEmpty(t, 90*time.Second, env, fmt.Sprintf("worker run %d", runs), false)
		var err error
		if stored, err = countArtists(ctx, st, ids); err != nil {
			t.Fatal(err)
		}
		if stored < n {
			time.Sleep(time.Second)
		}
	}
	t.Logf("%d more worker runs stored the other %d artists", runs, n-storedFirst)
	checkArtists(ctx, t, st, ids)
	if got, err := scanCount(ctx, st); err != nil {
		t.Fatalf("scan artists: %v", err)
	} else if got != n {
		t.Errorf("the artists table holds %d rows, want %d", got, n)
	}
}

// TestBadConfigExitsAtOnce checks the contract's fast failures.
func TestBadConfigExitsAtOnce(t *testing.T) {
	t.Run("worker without SPOTIFY_CLIENT_ID", func(t *testing.T) {
		env := baseEnv(t)
		env["QUEUE_URL"] = "http://127.0.0.1:1/000000000000/none"
		env["STORE_URL"] = "dynamodb:none_tracks"
		env["SPOTIFY_CLIENT_SECRET"] = clientSecret
		env["HTTP_ADDR"] = "127.0.0.1:" + strconv.Itoa(freePort(t))
		env["LOG_FORMAT"] = "json"
		code, stdout, stderr := run(t, 20*time.Second, env, "worker")
		if code == 0 {
			t.Fatalf("worker exited 0 without SPOTIFY_CLIENT_ID\nstdout: %s\nstderr: %s", stdout, stderr)
		}
		lines := strings.Split(strings.TrimSpace(stderr), "\n")
		if len(lines) != 1 || !strings.Contains(lines[0], "SPOTIFY_CLIENT_ID") {
			t.Errorf("worker exited %d; stderr = %q, want one line naming SPOTIFY_CLIENT_ID", code, stderr)
		}
		if strings.Contains(stdout+stderr, clientSecret) {
			t.Errorf("the output shows SPOTIFY_CLIENT_SECRET")
		}
	})

	t.Run("healthcheck with nothing listening", func(t *testing.T) {
		env := baseEnv(t)
		env["HTTP_ADDR"] = "127.0.0.1:" + strconv.Itoa(freePort(t))
		code, stdout, stderr := run(t, 20*time.Second, env, "worker", "healthcheck")
		if code == 0 {
			t.Fatalf("worker healthcheck exited 0 with nothing on %s\nstdout: %s\nstderr: %s", env["HTTP_ADDR"], stdout, stderr)
		}
	})

	t.Run("producer with an invalid artist", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		sq := testenv.SQSClient(t)
		queueURL, _ := createQueue(ctx, t, sq, uniqueName("badid"), 30, 0)
		env := awsEnv(t)
		env["QUEUE_URL"] = queueURL
		code, stdout, stderr := run(t, 30*time.Second, env, "producer", "enqueue", "not-an-id")
		if code == 0 {
			t.Fatalf("producer enqueue not-an-id exited 0\nstdout: %s\nstderr: %s", stdout, stderr)
		}
		if !strings.Contains(stdout+stderr, "not-an-id") {
			t.Errorf("producer exited %d without naming the input\nstdout: %s\nstderr: %s", code, stdout, stderr)
		}
		checkQueueEmpty(ctx, t, sq, queueURL, "queue")
	})
}

// TestFakeSpotifyBinary runs a worker against bin/fakespotify, with artists
// given to the producer in each form the contract names.
func TestFakeSpotifyBinary(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	fs := start(t, 2*time.Minute, baseEnv(t), "fakespotify",
		"--addr", "127.0.0.1:"+strconv.Itoa(freePort(t)), "--client-id", clientID, "--client-secret", clientSecret)
	listening := regexp.MustCompile(`listening on (http://\S+)`)
	var base string
	if !waitFor(30*time.Second, func() bool {
		if m := listening.FindStringSubmatch(fs.stdout.String()); m != nil {
			base = m[1]
			return true
		}
		_, exited := fs.wait(0)
		return exited
	}) || base == "" {
		t.Fatalf("fakespotify printed no \"listening on\" line\nstdout: %s\nstderr: %s", fs.stdout.String(), fs.stderr.String())
	}

	sq := testenv.SQSClient(t)
	queueURL, dlqURL := createQueue(ctx, t, sq, uniqueName("bin"), 30, 5)
	ids := artistIDs(7, 3)
	env := awsEnv(t)
	env["QUEUE_URL"] = queueURL
	code, stdout, stderr := run(t, 60*time.Second, env, "producer", "enqueue",
		ids[0], "spotify:artist:"+ids[1], "https://open.spotify.com/artist/"+ids[2]+"?si=abc123")
	if code != 0 || !strings.Contains(stdout, "enqueued 3 artists") {
		t.Fatalf("producer exited %d\nstdout: %s\nstderr: %s", code, stdout, stderr)
	}

	table, st := trackTables(t, "tracksbin")
	runUntilEmpty(t, 90*time.Second, workerEnv(t, base, queueURL, table), "worker", true)
	checkArtists(ctx, t, st, ids)
	checkQueueEmpty(ctx, t, sq, queueURL, "queue")
	checkQueueEmpty(ctx, t, sq, dlqURL, "dead-letter queue")

	if err := fs.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := fs.mustExit(t, 20*time.Second); code != 0 {
		t.Errorf("fakespotify exited %d on SIGTERM, want 0", code)
	}
}

// TestSIGTERMReleasesStuckWork stops a worker whose Spotify calls never
// answer: it must give its messages back and still exit 0 within 25 s (its
// default DRAIN_TIMEOUT is 15 s), and a second worker must then store every
// artist.
func TestSIGTERMReleasesStuckWork(t *testing.T) {
	const n = 40
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	s := newScene(ctx, t, sceneOptions{latency: time.Hour, queue: "stuck", visibility: 30, seed: 40, n: n, tables: "tracksstuck"})
	fake, spotifyURL, sq, queueURL, ids, table, st := s.fake, s.spotifyURL, s.sq, s.queueURL, s.ids, s.table, s.st
	env := workerEnv(t, spotifyURL, queueURL, table)
	w := start(t, 2*time.Minute, env, "worker")
	base := "http://" + env["HTTP_ADDR"]
	if !waitFor(60*time.Second, func() bool {
		_, exited := w.wait(0)
		return exited || httpStatus(base+"/readyz") == 200 && inFlight(base) >= 32
	}) {
		t.Fatalf("the worker did not hold 32 artists within 60s (in flight: %d)", inFlight(base))
	}
	if code, exited := w.wait(0); exited {
		t.Fatalf("the worker exited %d before it was signalled", code)
	}
	stop := stopWorker(t, w)
	checkWorkerLog(t, w.stderr.String(), false)
	t.Logf("SIGTERM with 32 artists stuck in Spotify calls: the worker exited %s after the signal", stop.Round(time.Millisecond))

	fake.SetLatency(0)
	runUntilEmpty(t, 90*time.Second, workerEnv(t, spotifyURL, queueURL, table), "second worker", true)
	checkArtists(ctx, t, st, ids)
	checkQueueEmpty(ctx, t, sq, queueURL, "queue")
}
