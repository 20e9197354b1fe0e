package worker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/sethvargo/go-retry"

	"github.com/sixpotify/top-tracks/internal/message"
	"github.com/sixpotify/top-tracks/internal/metrics"
	"github.com/sixpotify/top-tracks/internal/queue"
	"github.com/sixpotify/top-tracks/internal/spotify"
	"github.com/sixpotify/top-tracks/internal/store"
	"github.com/sixpotify/top-tracks/internal/throttle"
)

// maxThrottled bounds how many 429s one delivery waits out before it gives
// its message back; the waiting itself happens in the shared limiter.
const maxThrottled = 10

// forbiddenPause is how long the worker stops receiving after Spotify answers
// 403 to top-tracks, before it tries one more artist; credentialsPause after
// Spotify rejects the app's credentials, which a token-service blip can also
// cause, so the worker looks again sooner.
const (
	forbiddenPause   = 5 * time.Minute
	credentialsPause = 15 * time.Second
)

// errRefused: the worker did not call Spotify, which refused the app's calls
// moments ago (a 403 or rejected credentials) and is paused.
var errRefused = errors.New("not calling Spotify, which refuses this app's calls")

// handle processes one delivery and decides its fate: deleted after its
// writes are durable, given back to be tried again, or sent towards the
// dead-letter queue.
func (l *lane) handle(ctx context.Context, m Message) {
	w := l.w
	start := w.opts.Clock()
	w.metrics.InFlight.WithLabelValues(l.name).Inc()
	defer w.metrics.InFlight.WithLabelValues(l.name).Dec()
	defer func() { w.metrics.ProcessSeconds.WithLabelValues(l.name).Observe(w.opts.Clock().Sub(start).Seconds()) }()
	log := l.log.With("message_id", m.ID, "attempt", m.ReceiveCount)

	msg, err := message.Decode(m.Body)
	if err != nil {
		l.poison(m, err, log)
		return
	}
	log = log.With("artist_id", msg.ArtistID)
	if l.name == LaneBulk {
		ctx = throttle.WithBulk(ctx) // yields to the chatbot's lane at the limiter
	}

	stopHeartbeat := l.heartbeat(m, log)
	outcome, err := w.process(ctx, l.name, msg, log)
	stopHeartbeat()

	var rl *spotify.RateLimitError
	switch {
	case err == nil:
		l.delete(m)
		w.metrics.Processed.WithLabelValues(l.name, outcome).Inc()
		log.Debug("artist done", "outcome", outcome)
	case ctx.Err() != nil && w.limiter.CooldownLeft() > 0:
		// Stopping during a cooldown: a plain release would count one more
		// delivery towards the dead-letter queue for a wait that is Spotify's.
		l.postpone(m, w.limiter.CooldownLeft(), log)
	case ctx.Err() != nil:
		log.Info("stopping: the message goes back to the queue")
		l.release(m, 0, log)
	case errors.As(err, &rl):
		l.postpone(m, max(w.limiter.CooldownLeft(), rl.RetryAfter), log)
	case errors.Is(err, errRefused):
		// Another delivery met the refusal: wait as long as it decided.
		l.postpone(m, w.forbiddenLeft(), log)
	case errors.Is(err, spotify.ErrForbidden), errors.Is(err, spotify.ErrUnauthorized):
		// Every message would fail the same way: pause rather than burn
		// their deliveries (a 403 for the endpoint, or rejected credentials).
		pause := forbiddenPause
		if errors.Is(err, spotify.ErrUnauthorized) {
			pause = credentialsPause
		}
		w.refuse(err, pause)
		l.postpone(m, pause, log)
	case errors.Is(err, spotify.ErrBadRequest), errors.Is(err, spotify.ErrInvalidArtist):
		l.poison(m, err, log)
	default:
		l.retryLater(m, err, log)
	}
}

// process fetches and stores one artist. Deliveries on one lane for the same
// artist, market and force in flight at once share one fetch.
func (w *Worker) process(ctx context.Context, lane string, msg message.Message, log *slog.Logger) (string, error) {
	market := msg.Market
	if market == "" {
		market = w.opts.Market
	}
	// A forced message never shares a fetch that may skip the artist as
	// fresh, and a chatbot message never waits on a bulk fetch, which yields
	// to the chatbot's lane at the limiter.
	key := fmt.Sprintf("%s/%s/%s/%t", lane, msg.ArtistID, market, msg.Force)
	v, err, _ := w.flights.Do(key, func() (any, error) {
		return w.fetchAndSave(ctx, msg.ArtistID, market, msg.Force, log)
	})
	if err != nil {
		return "", err
	}
	return v.(string), nil
}

func (w *Worker) fetchAndSave(ctx context.Context, id, market string, force bool, log *slog.Logger) (string, error) {
	first := false // known to have no artists row yet
	if !force && w.opts.FreshFor > 0 {
		a, ok, err := w.store.Artist(ctx, id)
		if err != nil {
			return "", fmt.Errorf("read artist %s: %w", id, err)
		}
		if ok && a.Market == market && w.opts.Clock().Sub(a.FetchedAt) < w.opts.FreshFor {
			return metrics.OutcomeFresh, nil
		}
		first = !ok
	}
	tracks, asked, err := w.fetch(ctx, id, market, log)
	status, outcome := store.StatusOK, metrics.OutcomeOK
	if errors.Is(err, spotify.ErrNotFound) {
		status, outcome, err = store.StatusNotFound, metrics.OutcomeNotFound, nil
	}
	if err != nil {
		return "", err
	}
	if asked.IsZero() { // a fetcher that tells no send time with a 404
		asked = w.opts.Clock()
	}
	res := Result{ArtistID: id, Market: market, Status: status, FetchedAt: asked.UTC(), Tracks: tracks, FirstFetch: first}
	start := w.opts.Clock()
	err = w.store.Save(ctx, res)
	w.metrics.StoreSaveSeconds.Observe(w.opts.Clock().Sub(start).Seconds())
	if errors.Is(err, store.ErrStale) {
		return metrics.OutcomeStale, nil
	}
	if err != nil {
		return "", fmt.Errorf("save artist %s: %w", id, err)
	}
	return outcome, nil
}

// fetch asks Spotify, retrying transient failures with capped, jittered
// exponential backoff. A 429 starts the process-wide cooldown; attempts that
// were throttled do not count against MaxRetries, since the limiter, not this
// loop, waits them out.
func (w *Worker) fetch(ctx context.Context, id, market string, log *slog.Logger) (tracks []Track, asked time.Time, err error) {
	inner := retry.WithMaxRetries(uint64(w.opts.MaxRetries),
		retry.WithCappedDuration(w.opts.RetryCap,
			retry.WithJitterPercent(20, retry.NewExponential(w.opts.RetryBase))))
	throttled, long, throttles := false, false, 0
	backoff := retry.BackoffFunc(func() (time.Duration, bool) {
		if throttled {
			throttled = false
			throttles++
			// The shared limiter usually waits the cooldown out; waiting here
			// too costs nothing then, and keeps a fetcher with a limiter of its
			// own from retrying into the 429 at once.
			return w.limiter.CooldownLeft(), long || throttles > maxThrottled
		}
		return inner.Next()
	})
	tracks, err = retry.DoValue(ctx, backoff, func(ctx context.Context) ([]Track, error) {
		if w.forbiddenLeft() > 0 {
			return nil, errRefused
		}
		var tracks []Track
		var err error
		if tf, ok := w.fetcher.(timedFetcher); ok {
			tracks, asked, err = tf.TopTracksAt(ctx, id, market)
		} else {
			// Without the send time, the start of the call is the safe side:
			// never later than when Spotify was asked.
			asked = w.opts.Clock()
			tracks, err = w.fetcher.TopTracks(ctx, id, market)
		}
		if err == nil {
			return tracks, nil
		}
		var rl *spotify.RateLimitError
		switch {
		case errors.As(err, &rl):
			throttled, long = true, rl.RetryAfter > w.opts.LongCooldown
			w.cooldown(rl, log)
			w.metrics.Retries.WithLabelValues("rate_limited").Inc()
			return nil, retry.RetryableError(err)
		case ctx.Err() != nil:
			return nil, err
		case spotify.Temporary(err):
			cause := "transport"
			if errors.Is(err, spotify.ErrServer) {
				cause = "server"
			}
			w.metrics.Retries.WithLabelValues(cause).Inc()
			log.Debug("transient Spotify failure; retrying", "err", err)
			return nil, retry.RetryableError(err)
		}
		return nil, err
	})
	return tracks, asked, err
}

// cooldown pauses every Spotify call of the process for the 429's
// Retry-After (at least a second). The Spotify client has usually started
// the cooldown already, the moment the 429 arrived; this covers fetchers
// that do not. The limiter's OnCooldown hook logs and counts it once.
func (w *Worker) cooldown(rl *spotify.RateLimitError, log *slog.Logger) {
	if w.limiter.CooldownLeft() == 0 { // else the client started it: count the 429 once
		w.limiter.Cooldown(max(rl.RetryAfter, spotify.MinCooldown))
	}
	log.Debug("throttled by Spotify", "retry_after", rl.RetryAfter, "reason", rl.Reason)
}

// refuse stops receiving for pause: Spotify refuses the endpoint for this
// app (403), or its credentials (401, invalid_client), and every message
// would fail the same way.
func (w *Worker) refuse(err error, pause time.Duration) {
	until := w.opts.Clock().Add(pause)
	if old := w.forbiddenUntil.Swap(until.UnixNano()); old < w.opts.Clock().UnixNano() {
		w.log.Error("Spotify refuses this app's calls: receiving is paused", "err", err, "paused_until", until.UTC().Format(time.RFC3339))
	}
}

// poison handles a message that can never succeed: with a dead-letter queue
// it is released at once so that the redrive policy moves it there after
// maxReceiveCount deliveries; without one it is deleted and logged.
func (l *lane) poison(m Message, err error, log *slog.Logger) {
	l.w.metrics.Processed.WithLabelValues(l.name, metrics.OutcomePoison).Inc()
	if l.maxReceives > 0 {
		log.Warn("poison message; the redrive policy will move it to the dead-letter queue", "err", err, "max_receive_count", l.maxReceives)
		l.release(m, 0, log)
		return
	}
	log.Error("poison message deleted (the queue has no dead-letter queue)", "err", err, "body", clip(m.Body))
	l.delete(m)
}

// postpone gives m back for a wait that is not its fault (a Spotify
// cooldown, a refused endpoint): it sends the body again with a delay (at
// most SQS's 15 minutes) and deletes this delivery, so that the wait does
// not count towards the redrive policy's maxReceiveCount. A queue that
// cannot send gets a plain release.
func (l *lane) postpone(m Message, delay time.Duration, log *slog.Logger) {
	s, ok := l.q.(sender)
	if !ok {
		l.release(m, delay, log)
		return
	}
	delay = min(max(delay, time.Second), 15*time.Minute)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	errs, err := s.SendBatch(ctx, []queue.Entry{{Body: m.Body, Delay: delay}})
	switch {
	case err != nil:
	case len(errs) != 1:
		err = fmt.Errorf("the queue answered %d results for one message", len(errs))
	default:
		err = errs[0]
	}
	if err != nil {
		log.Warn("could not postpone the message; releasing it instead", "err", err)
		l.release(m, delay, log)
		return
	}
	l.w.metrics.Processed.WithLabelValues(l.name, metrics.OutcomeReleased).Inc()
	log.Info("message postponed", "delay", delay)
	l.delete(m)
}

// retryLater gives a message whose processing failed for a transient reason
// back to the queue, later each time; on a queue with no dead-letter queue it
// gives up after MaxReceives deliveries.
func (l *lane) retryLater(m Message, err error, log *slog.Logger) {
	if l.maxReceives == 0 && m.ReceiveCount >= l.w.opts.MaxReceives {
		l.w.metrics.Processed.WithLabelValues(l.name, metrics.OutcomePoison).Inc()
		log.Error("giving up on the message after repeated failures (the queue has no dead-letter queue)", "err", err, "deliveries", m.ReceiveCount, "body", clip(m.Body))
		l.delete(m)
		return
	}
	delay := retryDelay(m.ReceiveCount)
	log.Warn("artist failed; the message goes back to the queue", "err", err, "retry_in", delay)
	l.release(m, delay, log)
}

// retryDelay is 5s, 10s, 20s, … capped at 5 minutes, by delivery.
func retryDelay(receiveCount int) time.Duration {
	d := 5 * time.Second
	for i := 1; i < receiveCount && d < 5*time.Minute; i++ {
		d *= 2
	}
	return min(d, 5*time.Minute)
}

func clip(b []byte) string {
	const max = 200
	if len(b) > max {
		return string(b[:max]) + "…"
	}
	return string(b)
}
