package worker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/sethvargo/go-retry"
	"golang.org/x/sync/singleflight"

	"github.com/sixpotify/top-tracks/internal/gate"
	"github.com/sixpotify/top-tracks/internal/message"
	"github.com/sixpotify/top-tracks/internal/metrics"
	"github.com/sixpotify/top-tracks/internal/spotify"
	"github.com/sixpotify/top-tracks/internal/store"
)

// maxThrottled bounds how many 429s one delivery waits out before it gives
// its message back; the waiting itself happens in the gate.
const maxThrottled = 10

// fetching turns one message into a stored result: it skips an artist that
// is still fresh, asks Spotify through the gate with retries, and saves the
// answer, telling the gate how the store calls went (for its outage breaker).
type fetching struct {
	opts    *Options // the worker's, read-only
	store   Store
	fetcher Fetcher
	gate    *gate.Gate
	metrics *metrics.Metrics
	flights singleflight.Group
}

// process is the fetching room's door: it fetches and stores one artist and
// returns the outcome. Deliveries on one lane for the same artist, market
// and force in flight at once share one fetch, except the breaker's probe.
func (f *fetching) process(ctx context.Context, lane string, msg message.Message, log *slog.Logger) (string, error) {
	market := msg.Market
	if market == "" {
		market = f.opts.Market
	}
	// A forced message never shares a fetch that may skip the artist as
	// fresh, and a chatbot message never waits on a bulk fetch, which yields
	// to the chatbot's lane at the limiter.
	// The outage breaker's probe does its own fetch: one it joined would
	// report its outcomes under the other message's ctx, and leave the probe
	// unjudged (and the next one due after the same backoff, not double).
	if gate.IsProbe(ctx) {
		return f.fetchAndSave(ctx, msg.ArtistID, market, msg.Force, log)
	}
	key := fmt.Sprintf("%s/%s/%s/%t", lane, msg.ArtistID, market, msg.Force)
	v, err, _ := f.flights.Do(key, func() (any, error) {
		return f.fetchAndSave(ctx, msg.ArtistID, market, msg.Force, log)
	})
	if err != nil {
		return "", err
	}
	return v.(string), nil
}

// fetchAndSave fetches and stores one artist. An error carries the pause
// that its work's latest call met (see gate.Verdict): then the delivery is
// given back without spending a delivery, decided from the error alone.
func (f *fetching) fetchAndSave(ctx context.Context, id, market string, force bool, log *slog.Logger) (string, error) {
	ctx, verdict := gate.WithVerdict(ctx)
	outcome, err := f.work(ctx, id, market, force, log)
	if err == nil {
		return outcome, nil
	}
	pe := verdict.Pause()
	if pe == nil {
		return "", err
	}
	if _, ok := gate.IsPaused(err); ok {
		return "", err
	}
	if pe.Reason == gate.ReasonOutage && gate.IsProbe(ctx) && spotifyFailed(err) && f.spotifyAnswersOthers(ctx, id, log) {
		// The probe's artist got no usable answer while Spotify answers
		// another: the failure is the artist's own (and a Spotify outage's
		// breaker has closed). A store failure never asks: Spotify's
		// answering says nothing of the store.
		return "", err
	}
	return "", fmt.Errorf("%w: %w", pe, err)
}

// spotifyFailed reports whether err is Spotify's giving no usable answer
// (a 5xx, a transport error, a broken answer), as opposed to the store's
// failure or a pause.
func spotifyFailed(err error) bool {
	return spotify.Temporary(err) && !errors.As(err, new(*spotify.RateLimitError))
}

// spotifyAnswersOthers asks Spotify, once, for the top tracks of the artist
// it answered most lately (the gate's canary): the breaker's probe failed on
// its own artist, and this tells an outage from that artist's broken
// answers. Its success closes the breaker and blames the artists whose
// failures opened it (see internal/gate/fault.go).
func (f *fetching) spotifyAnswersOthers(ctx context.Context, id string, log *slog.Logger) bool {
	key, ok := f.gate.Canary()
	if !ok || key == id {
		return false
	}
	_, err := f.fetcher.TopTracks(ctx, key, f.opts.Market)
	up := err == nil || errors.Is(err, spotify.ErrNotFound)
	log.Info("the outage probe failed; asked Spotify for an artist it answered lately", "canary", key, "spotify_answers", up)
	return up
}

func (f *fetching) work(ctx context.Context, id, market string, force bool, log *slog.Logger) (string, error) {
	first := false // known to have no artists row yet
	if !force && f.opts.FreshFor > 0 {
		// The breaker hears of the artist's store work once: the read's
		// failure, or its success when no save follows. A read's success
		// before a save that fails would end the save failures' streak, and
		// a store whose writes alone are down would never open it.
		a, ok, err := f.store.Artist(ctx, id)
		if err != nil {
			f.reportStore(ctx, id, err)
			return "", fmt.Errorf("read artist %s: %w", id, err)
		}
		if ok && a.Market == market && f.opts.Clock().Sub(a.FetchedAt) < f.opts.FreshFor {
			f.reportStore(ctx, id, nil)
			return metrics.OutcomeFresh, nil
		}
		first = !ok
	}
	tracks, asked, err := f.fetch(ctx, id, market, log)
	status, outcome := store.StatusOK, metrics.OutcomeOK
	if errors.Is(err, spotify.ErrNotFound) {
		status, outcome, err = store.StatusNotFound, metrics.OutcomeNotFound, nil
	}
	if err != nil {
		return "", err
	}
	if asked.IsZero() { // a fetcher that tells no send time with a 404
		asked = f.opts.Clock()
	}
	res := Result{ArtistID: id, Market: market, Status: status, FetchedAt: asked.UTC(), Tracks: tracks, FirstFetch: first}
	start := f.opts.Clock()
	err = f.store.Save(ctx, res)
	f.metrics.StoreSaveSeconds.Observe(f.opts.Clock().Sub(start).Seconds())
	f.reportStore(ctx, id, err)
	if errors.Is(err, store.ErrStale) {
		return metrics.OutcomeStale, nil
	}
	if err != nil {
		return "", fmt.Errorf("save artist %s: %w", id, err)
	}
	return outcome, nil
}

// reportStore tells the breaker how the artist's store work went. A newer
// row (ErrStale) and a refusal of this result (ErrRejected, its own fault)
// are the store answering, as a success is; work a stop cut short tells
// nothing.
func (f *fetching) reportStore(ctx context.Context, id string, err error) {
	if ctx.Err() != nil {
		return
	}
	if errors.Is(err, store.ErrStale) || errors.Is(err, store.ErrRejected) {
		err = nil
	}
	f.gate.Report(ctx, gate.CauseStore, id, err)
}

// fetch asks Spotify, retrying transient failures with capped, jittered
// exponential backoff. The gate waits out a 429's cooldown before the next
// attempt, so throttled attempts do not count against MaxRetries; a pause
// the gate will not wait through (a long cooldown, a refusal, an open
// breaker) ends the attempts at once with a *gate.PausedError.
func (f *fetching) fetch(ctx context.Context, id, market string, log *slog.Logger) (tracks []Track, asked time.Time, err error) {
	inner := retry.WithMaxRetries(uint64(f.opts.MaxRetries),
		retry.WithCappedDuration(f.opts.RetryCap,
			retry.WithJitterPercent(20, retry.NewExponential(f.opts.RetryBase))))
	throttled, throttles := false, 0
	backoff := retry.BackoffFunc(func() (time.Duration, bool) {
		if throttled {
			throttled = false
			throttles++
			// The gate sleeps the cooldown out in its Wait.
			return 0, throttles > maxThrottled
		}
		return inner.Next()
	})
	tracks, err = retry.DoValue(ctx, backoff, func(ctx context.Context) ([]Track, error) {
		var tracks []Track
		var err error
		answered := false // Spotify answered (a send time came back)
		if tf, ok := f.fetcher.(timedFetcher); ok {
			tracks, asked, err = tf.TopTracksAt(ctx, id, market)
			answered = !asked.IsZero()
		} else {
			// Without the send time, the start of the call is the safe side:
			// never later than when Spotify was asked.
			asked = f.opts.Clock()
			tracks, err = f.fetcher.TopTracks(ctx, id, market)
		}
		if err == nil {
			return tracks, nil
		}
		var rl *spotify.RateLimitError
		switch {
		case ctx.Err() != nil:
			return nil, err
		case errors.As(err, new(*gate.PausedError)):
			return nil, err
		case errors.As(err, &rl):
			throttled = true
			f.metrics.Retries.WithLabelValues("rate_limited").Inc()
			log.Debug("throttled by Spotify", "retry_after", rl.RetryAfter, "reason", rl.Reason)
			return nil, retry.RetryableError(err)
		case answered && errors.Is(err, spotify.ErrBadResponse):
			// Spotify answered, and the answer is broken: most often the
			// artist's own, which retrying at once only repeats. The queue
			// tries it again, once a delivery, and its redrive policy ends it.
			return nil, err
		case spotify.Temporary(err):
			cause := "transport"
			if errors.Is(err, spotify.ErrServer) {
				cause = "server"
			}
			f.metrics.Retries.WithLabelValues(cause).Inc()
			log.Debug("transient Spotify failure; retrying", "err", err)
			return nil, retry.RetryableError(err)
		}
		return nil, err
	})
	return tracks, asked, err
}
