package worker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/sethvargo/go-retry"

	"github.com/sixpotify/top-tracks/internal/gate"
	"github.com/sixpotify/top-tracks/internal/message"
	"github.com/sixpotify/top-tracks/internal/metrics"
	"github.com/sixpotify/top-tracks/internal/queue"
	"github.com/sixpotify/top-tracks/internal/spotify"
	"github.com/sixpotify/top-tracks/internal/store"
)

// maxThrottled bounds how many 429s one delivery waits out before it gives
// its message back; the waiting itself happens in the gate.
const maxThrottled = 10

// handle processes one delivery and counts its outcome, once: settle
// decides the fate, and nothing else counts one.
func (l *lane) handle(ctx context.Context, m Message) {
	w := l.w
	start := w.opts.Clock()
	w.metrics.InFlight.WithLabelValues(l.name).Inc()
	defer w.metrics.InFlight.WithLabelValues(l.name).Dec()
	outcome := l.settle(ctx, m)
	w.metrics.Processed.WithLabelValues(l.name, outcome).Inc()
	w.metrics.ProcessSeconds.WithLabelValues(l.name).Observe(w.opts.Clock().Sub(start).Seconds())
}

// settle processes one delivery and decides its fate, returning its
// outcome: deleted after its writes are durable, postponed when a pause
// that is not the message's own meets it (a cooldown, a refusal, an outage:
// sent again with a delay, so that the wait spends none of its deliveries),
// given back to be tried again, or sent towards the dead-letter queue.
func (l *lane) settle(ctx context.Context, m Message) (outcome string) {
	w := l.w
	log := l.log.With("message_id", m.ID, "attempt", m.ReceiveCount)

	msg, err := message.Decode(m.Body)
	if err != nil {
		return l.poison(m, err, log)
	}
	log = log.With("artist_id", msg.ArtistID)
	ctx = gate.WithPriority(ctx, l.priority) // the bulk lane yields to the chatbot's at the gate

	stopHeartbeat := l.heartbeat(m, log)
	outcome, err = w.process(ctx, l.name, msg, log)
	stopHeartbeat()

	var pe *gate.PausedError
	var rl *spotify.RateLimitError
	switch {
	case err == nil:
		l.delete(m)
		log.Debug("artist done", "outcome", outcome)
		return outcome
	case ctx.Err() != nil:
		// Stopping. During a pause a plain release would count one more
		// delivery towards the dead-letter queue for a wait that is not the
		// message's.
		if left, reason := w.gate.Paused(); left > 0 {
			return l.postpone(m, left, reason, log)
		}
		log.Info("stopping: the message goes back to the queue")
		return l.release(m, 0, log)
	case errors.As(err, &pe):
		return l.postpone(m, pe.Until.Sub(w.opts.Clock()), pe.Reason, log)
	case errors.As(err, &rl):
		return l.postpone(m, max(w.gate.CooldownLeft(), rl.RetryAfter), gate.ReasonCooldown, log)
	case errors.Is(err, spotify.ErrForbidden), errors.Is(err, spotify.ErrUnauthorized):
		// The gate paused every call: every message would fail the same way.
		left, _ := w.gate.Paused()
		return l.postpone(m, left, gate.ReasonRefused, log)
	case errors.Is(err, spotify.ErrBadRequest), errors.Is(err, spotify.ErrInvalidArtist):
		return l.poison(m, err, log)
	case w.gate.BreakerOpen():
		// An outage, not this artist's fault: the breaker opened on it, or
		// on other artists' failures like it.
		left, _ := w.gate.Paused()
		return l.postpone(m, left, gate.ReasonOutage, log)
	default:
		return l.retryLater(m, err, log)
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
		if ctx.Err() == nil {
			w.gate.Report(gate.CauseStore, id, err)
		}
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
	if ctx.Err() == nil {
		if errors.Is(err, store.ErrStale) {
			w.gate.Report(gate.CauseStore, id, nil)
		} else {
			w.gate.Report(gate.CauseStore, id, err)
		}
	}
	if errors.Is(err, store.ErrStale) {
		return metrics.OutcomeStale, nil
	}
	if err != nil {
		return "", fmt.Errorf("save artist %s: %w", id, err)
	}
	return outcome, nil
}

// fetch asks Spotify, retrying transient failures with capped, jittered
// exponential backoff. The gate waits out a 429's cooldown before the next
// attempt, so throttled attempts do not count against MaxRetries; a pause
// the gate will not wait through (a long cooldown, a refusal, an open
// breaker) ends the attempts at once with a *gate.PausedError.
func (w *Worker) fetch(ctx context.Context, id, market string, log *slog.Logger) (tracks []Track, asked time.Time, err error) {
	inner := retry.WithMaxRetries(uint64(w.opts.MaxRetries),
		retry.WithCappedDuration(w.opts.RetryCap,
			retry.WithJitterPercent(20, retry.NewExponential(w.opts.RetryBase))))
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
		case ctx.Err() != nil:
			return nil, err
		case errors.As(err, new(*gate.PausedError)):
			return nil, err
		case errors.As(err, &rl):
			throttled = true
			w.metrics.Retries.WithLabelValues("rate_limited").Inc()
			log.Debug("throttled by Spotify", "retry_after", rl.RetryAfter, "reason", rl.Reason)
			return nil, retry.RetryableError(err)
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

// poison handles a message that can never succeed: with a dead-letter queue
// it is released at once so that the redrive policy moves it there after
// maxReceiveCount deliveries; without one it is deleted and logged.
func (l *lane) poison(m Message, err error, log *slog.Logger) string {
	if l.maxReceives > 0 {
		log.Warn("poison message; the redrive policy will move it to the dead-letter queue", "err", err, "max_receive_count", l.maxReceives)
		l.release(m, 0, log)
		return metrics.OutcomePoison
	}
	log.Error("poison message deleted (the queue has no dead-letter queue)", "err", err, "body", clip(m.Body))
	l.delete(m)
	return metrics.OutcomePoison
}

// postpone gives m back for a wait that is not its fault (a Spotify
// cooldown, a refused endpoint): it sends the body again with a delay (at
// most SQS's 15 minutes) and deletes this delivery, so that the wait does
// not count towards the redrive policy's maxReceiveCount. A queue that
// cannot send gets a plain release.
func (l *lane) postpone(m Message, delay time.Duration, reason string, log *slog.Logger) string {
	s, ok := l.q.(queue.Sender)
	if !ok {
		return l.release(m, delay, log)
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
		return l.release(m, delay, log)
	}
	l.w.metrics.Postponed.WithLabelValues(l.name, reason).Inc()
	log.Info("message postponed", "delay", delay, "reason", reason)
	l.delete(m)
	return metrics.OutcomeReleased
}

// retryLater gives a message whose processing failed for a transient reason
// back to the queue, later each time; on a queue with no dead-letter queue it
// gives up after MaxReceives deliveries.
func (l *lane) retryLater(m Message, err error, log *slog.Logger) string {
	if l.maxReceives == 0 && m.ReceiveCount >= l.w.opts.MaxReceives {
		log.Error("giving up on the message after repeated failures (the queue has no dead-letter queue)", "err", err, "deliveries", m.ReceiveCount, "body", clip(m.Body))
		l.delete(m)
		return metrics.OutcomePoison
	}
	delay := retryDelay(m.ReceiveCount)
	log.Warn("artist failed; the message goes back to the queue", "err", err, "retry_in", delay)
	return l.release(m, delay, log)
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
