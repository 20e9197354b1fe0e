package workercmd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/sixpotify/top-tracks/internal/artistid"
	"github.com/sixpotify/top-tracks/internal/backend/queues"
	"github.com/sixpotify/top-tracks/internal/backend/stores"
	"github.com/sixpotify/top-tracks/internal/cli"
	"github.com/sixpotify/top-tracks/internal/clip"
	"github.com/sixpotify/top-tracks/internal/queue"
	"github.com/sixpotify/top-tracks/internal/spotify"
	"github.com/sixpotify/top-tracks/internal/store/dynamostore"
)

// DefaultCheckArtist is the artist `worker check` asks for when none is
// given: Pitbull, the contract's example, whom every market knows.
const DefaultCheckArtist = "0TnOYISbd1XYRBk9myaseg"

// checkTimeout bounds each of check's questions.
const checkTimeout = 15 * time.Second

// checkCmd is `worker check [ARTIST]`.
type checkCmd struct {
	Artist string `arg:"" optional:"" help:"Spotify artist ID to fetch (default ${default_check_artist})."`
}

// Check results, the first word of each line.
const (
	checkOK   = "ok"
	checkFail = "FAIL"
	checkSkip = "skip"
)

// checker prints one line per check and remembers whether all passed.
type checker struct {
	out    io.Writer
	failed bool
}

func (c *checker) line(status, what, format string, args ...any) {
	if status == checkFail {
		c.failed = true
	}
	fmt.Fprintf(c.out, "%-4s  %s: %s\n", status, what, fmt.Sprintf(format, args...))
}

// check runs `worker check`: the Spotify credentials, one artist's top
// tracks, the queues and the store, one line each on out. It returns 0 when
// every check passed, else 1.
func check(ctx context.Context, cfg Config, artist string, out io.Writer) int {
	c := &checker{out: out}
	if artist == "" {
		artist = DefaultCheckArtist
	}
	if id, err := artistid.Parse(artist); err == nil {
		artist = id // spotify:artist:ID and open.spotify.com links too
	}
	c.spotify(ctx, cfg, artist)
	c.queue(ctx, "queue", cfg.QueueURL, cfg)
	if cfg.BulkQueueURL != "" {
		c.queue(ctx, "bulk queue", cfg.BulkQueueURL, cfg)
	}
	c.store(ctx, cfg)
	if c.failed {
		return 1
	}
	return 0
}

// spotify checks the credentials (a token), then top-tracks of artist.
func (c *checker) spotify(ctx context.Context, cfg Config, artist string) {
	client, err := spotify.New(spotify.Config{APIURL: cfg.APIURL, TokenURL: cfg.TokenURL,
		ClientID: cfg.ClientID, ClientSecret: cfg.ClientSecret})
	if err != nil {
		c.line(checkFail, "spotify credentials", "%v", err)
		return
	}
	tctx, cancel := context.WithTimeout(ctx, checkTimeout)
	err = client.Warm(tctx)
	cancel()
	var rl *spotify.RateLimitError
	switch {
	case err == nil:
		c.line(checkOK, "spotify credentials", "a token for client ID %s from %s", cfg.ClientID, redactURL(cfg.TokenURL))
	case errors.Is(err, spotify.ErrUnauthorized):
		answer := strings.TrimPrefix(strings.TrimSuffix(err.Error(), ": "+spotify.ErrUnauthorized.Error()), "spotify: fetching a token: ")
		c.line(checkFail, "spotify credentials", "rejected (%s): set SPOTIFY_CLIENT_ID and SPOTIFY_CLIENT_SECRET "+
			"to the Client ID and secret of the app in https://developer.spotify.com/dashboard", answer)
	case errors.As(err, &rl):
		c.quota("spotify credentials", rl, time.Now())
	default:
		c.line(checkFail, "spotify credentials", "Spotify not reachable (%v): check SPOTIFY_TOKEN_URL %s and the network "+
			"(DNS, proxy, egress rules)", err, redactURL(cfg.TokenURL))
	}
	if err != nil {
		c.line(checkSkip, "spotify top-tracks", "no token")
		return
	}
	c.topTracks(ctx, cfg, client, artist)
}

// topTracks checks that the app may call top-tracks, with artist.
func (c *checker) topTracks(ctx context.Context, cfg Config, client *spotify.Client, artist string) {
	tctx, cancel := context.WithTimeout(ctx, checkTimeout)
	tracks, err := client.TopTracks(tctx, artist, cfg.Market)
	cancel()
	const what = "spotify top-tracks"
	var (
		refused *spotify.RefusedError
		rl      *spotify.RateLimitError
	)
	switch {
	case err == nil:
		c.line(checkOK, what, "%d tracks of %s in %s%s", len(tracks), artist, cfg.Market, absentFields(tracks))
	case errors.Is(err, spotify.ErrNotFound):
		c.line(checkOK, what, "this app may call it (Spotify does not know the artist %s)", artist)
	case errors.As(err, &refused) && refused.Kind == spotify.RefusalDevelopmentMode:
		c.line(checkFail, what, "this app may not call top-tracks (HTTP 403 %q): Spotify removed it for Development Mode apps "+
			"(new apps since 11 February 2026, existing ones since 9 March 2026); the worker needs an app in "+
			"Extended Quota Mode, see %s", refused.Message, spotify.MigrationGuideURL)
	case errors.As(err, &refused) && refused.Kind == spotify.RefusalPremiumLapsed:
		c.line(checkFail, what, "the Spotify Premium subscription of the app's owner has lapsed (HTTP 403 %q): "+
			"a Development Mode app works again once its owner resubscribes", refused.Message)
	case errors.As(err, &refused):
		c.line(checkFail, what, "Spotify refuses this app (HTTP 403 %q): see the app in https://developer.spotify.com/dashboard", refused.Message)
	case errors.As(err, &rl):
		c.quota("spotify quota", rl, time.Now())
	case errors.Is(err, spotify.ErrUnauthorized):
		c.line(checkFail, what, "a fresh token was refused (HTTP 401): check SPOTIFY_CLIENT_ID and SPOTIFY_CLIENT_SECRET")
	case errors.Is(err, spotify.ErrInvalidArtist):
		c.line(checkFail, what, "%q is not a Spotify artist ID (22 characters of [0-9A-Za-z]), spotify:artist:ID or an open.spotify.com link", clip.String(artist, 60))
	case spotify.Temporary(err) || errors.Is(err, context.DeadlineExceeded):
		c.line(checkFail, what, "Spotify not reachable (%v): check SPOTIFY_API_URL %s and the network", err, redactURL(cfg.APIURL))
	default:
		c.line(checkFail, what, "%v", err)
	}
}

// longPause is the Retry-After past which a 429 is a spent quota, not the
// rolling window's.
const longPause = time.Minute

// quota prints a 429: a spent quota until a time, or a short or unknown wait.
func (c *checker) quota(what string, rl *spotify.RateLimitError, now time.Time) {
	reason := ""
	if rl.Reason != "" {
		reason = ", " + rl.Reason
	}
	switch {
	case rl.RetryAfter == 0:
		c.line(checkFail, what, "rate limited (HTTP 429%s) with no Retry-After: another process may be spending "+
			"the app's budget; the worker pauses (at least %s) and asks again", reason, spotify.MinCooldown)
	case rl.Reason == "QUOTA_EXCEEDED" || rl.RetryAfter > longPause:
		c.line(checkFail, what, "quota spent until %s (HTTP 429, Retry-After %s%s): Spotify answers no call "+
			"before then; a Development Mode app's quota is small, Extended Quota Mode raises it: %s",
			now.Add(rl.RetryAfter).UTC().Format(time.RFC3339), rl.RetryAfter, reason, spotify.MigrationGuideURL)
	default:
		c.line(checkFail, what, "rate limited for %s (HTTP 429%s): another process is spending the app's budget; "+
			"run check again then", rl.RetryAfter, reason)
	}
}

// absentFields says which stored fields Spotify left out of every track.
func absentFields(tracks []spotify.Track) string {
	if len(tracks) == 0 {
		return ""
	}
	noPopularity, noISRC := true, true
	for _, t := range tracks {
		noPopularity = noPopularity && t.Popularity == nil
		noISRC = noISRC && t.ISRC == nil
	}
	switch {
	case noPopularity && noISRC:
		return " (without popularity and isrc: stored as absent)"
	case noPopularity:
		return " (without popularity, as Spotify answers Development Mode apps: stored as absent)"
	case noISRC:
		return " (without isrc: stored as absent)"
	}
	return ""
}

// queue checks that the queue u answers.
func (c *checker) queue(ctx context.Context, what, u string, cfg Config) {
	what += " " + redactURL(u)
	ctx, cancel := context.WithTimeout(ctx, checkTimeout)
	defer cancel()
	q, closeQ, err := queues.Open(ctx, u, queues.Options{VisibilityTimeout: cfg.VisibilityTimeout})
	if err != nil {
		c.line(checkFail, what, "cannot open it (%v)", err)
		return
	}
	defer closeQ()
	attrs, err := q.Attributes(ctx)
	if err != nil {
		c.line(checkFail, what, "AWS not reachable or the queue is missing (%v): check the URL, AWS_REGION, "+
			"the credentials and AWS_ENDPOINT_URL_SQS", err)
		return
	}
	c.line(checkOK, what, "answers (visibility timeout %s, %s)", attrs.VisibilityTimeout, deadLetters(attrs))
}

func deadLetters(a queue.Attributes) string {
	if a.MaxReceiveCount == 0 {
		return "no dead-letter queue"
	}
	return fmt.Sprintf("dead-letter queue after %d receives", a.MaxReceiveCount)
}

// store checks that both tables answer with the contract's keys.
func (c *checker) store(ctx context.Context, cfg Config) {
	what := "store " + cfg.StoreURL
	ctx, cancel := context.WithTimeout(ctx, checkTimeout)
	defer cancel()
	st, closeS, err := stores.OpenRetaining(ctx, cfg.StoreURL, cfg.ArtistsTable, cfg.RetainFor)
	if err != nil {
		c.line(checkFail, what, "cannot open it (%v)", err)
		return
	}
	defer closeS()
	checker, ok := st.(interface{ Check(context.Context) error })
	if !ok {
		c.line(checkSkip, what, "this store has no check")
		return
	}
	err = checker.Check(ctx)
	switch {
	case err == nil:
		c.line(checkOK, what, "tracks (artist_id, id) and %s (artist_id) answer; rows kept %s after each fetch (RETAIN_FOR)",
			cfg.ArtistsTable, cli.Duration(cfg.RetainFor))
	case errors.Is(err, dynamostore.ErrTableMissing):
		c.line(checkFail, what, "%v: deploy/template.yaml creates the tables (or CREATE_TABLES=true, for development)", err)
	case errors.Is(err, dynamostore.ErrTableKeys):
		c.line(checkFail, what, "%v: STORE_URL names the tracks table, ARTISTS_TABLE the artists table", err)
	default:
		c.line(checkFail, what, "AWS not reachable, or access denied (%v): check AWS_REGION, the credentials "+
			"and AWS_ENDPOINT_URL_DYNAMODB", err)
	}
}
