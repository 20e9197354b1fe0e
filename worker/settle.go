package worker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"strconv"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/sixpotify/top-tracks/internal/clip"
	"github.com/sixpotify/top-tracks/internal/gate"
	"github.com/sixpotify/top-tracks/internal/message"
	"github.com/sixpotify/top-tracks/internal/metrics"
	"github.com/sixpotify/top-tracks/internal/queue"
	"github.com/sixpotify/top-tracks/internal/spotify"
	"github.com/sixpotify/top-tracks/internal/store"
	"github.com/sixpotify/top-tracks/internal/tracing"
)

// Delays a settled delivery is given back with.
const (
	firstRetryDelay = 5 * time.Second  // after a delivery's first transient failure, doubling
	maxRetryDelay   = 5 * time.Minute  // the most a failing delivery waits
	maxPostpone     = 15 * time.Minute // SQS's longest delay
)

// handle is the settling room's door: it settles one delivery and counts
// its outcome, once. settle decides the fate; nothing else counts one.
// The delivery's span, from receive to settle, continues the trace its
// message carries (a message without one starts a new trace); the Spotify
// and store calls below it are its children.
func (l *lane) handle(ctx context.Context, d Delivery) {
	start := l.opts.Clock()
	l.metrics.InFlight.WithLabelValues(l.name).Inc()
	defer l.metrics.InFlight.WithLabelValues(l.name).Dec()
	ctx, span := tracer.Start(tracing.Extract(ctx, d.Attributes), "sixpotify.delivery",
		trace.WithSpanKind(trace.SpanKindConsumer),
		trace.WithAttributes(attribute.String("sixpotify.lane", l.name), attribute.String("messaging.message.id", d.ID),
			attribute.Int("messaging.message.delivery_count", d.ReceiveCount)))
	outcome := l.settle(ctx, d)
	span.SetAttributes(attribute.String("sixpotify.outcome", outcome))
	span.End()
	l.metrics.Processed.WithLabelValues(l.name, outcome).Inc()
	l.metrics.ProcessSeconds.WithLabelValues(l.name).Observe(l.opts.Clock().Sub(start).Seconds())
}

// tracer names the worker's spans; it is OpenTelemetry's global one, a no-op
// until the program installs an SDK.
var tracer = otel.Tracer("github.com/sixpotify/top-tracks/worker")

// settle processes one delivery and decides its fate, returning its
// outcome: deleted after its writes are durable, postponed when a pause
// that is not the message's own meets it (a cooldown, a refusal, an outage:
// sent again with a delay, so that the wait spends none of its deliveries),
// given back to be tried again, or sent towards the dead-letter queue.
func (l *lane) settle(ctx context.Context, d Delivery) (outcome string) {
	log := l.log.With("message_id", d.ID, "attempt", d.ReceiveCount)
	msg, err := message.Decode(d.Body)
	if err != nil {
		return l.poison(d, err, log)
	}
	log = log.With("artist_id", msg.ArtistID)
	trace.SpanFromContext(ctx).SetAttributes(attribute.String("sixpotify.artist_id", msg.ArtistID))
	ctx = gate.WithPriority(ctx, l.priority()) // the bulk lane yields to the chatbot's at the gate

	stopHeartbeat := l.heartbeat(d, log)
	outcome, err = l.fetch.process(ctx, l.name, msg, log)
	stopHeartbeat()

	var pe *gate.PausedError
	var rl *spotify.RateLimitError
	switch {
	case err == nil:
		l.delete(d)
		log.Debug("artist done", "outcome", outcome)
		return outcome
	case errors.As(err, &pe):
		// A pause that is not the message's (a cooldown, a penalty, a
		// refusal, an outage), met by its calls or by a stop during one.
		return l.postpone(d, pe.Until.Sub(l.opts.Clock()), pe.Reason, err, log)
	case ctx.Err() != nil:
		log.Info("stopping: the message goes back to the queue")
		return l.release(d, 0, log)
	case errors.As(err, &rl):
		// Throttled again and again within one delivery.
		return l.postpone(d, rl.RetryAfter, gate.ReasonCooldown, err, log)
	case errors.Is(err, spotify.ErrBadRequest), errors.Is(err, spotify.ErrInvalidArtist),
		errors.Is(err, store.ErrRejected): // the store refuses this artist's result
		return l.poison(d, err, log)
	default:
		return l.retryLater(d, err, log)
	}
}

// poison settles a message that can never succeed: with a dead-letter queue
// it is released at once so that the redrive policy moves it there after
// maxReceiveCount deliveries; without one it is deleted and logged.
func (l *lane) poison(d Delivery, err error, log *slog.Logger) string {
	l.recordReason(d, err, log)
	if l.redriveCount > 0 {
		log.Warn("poison message; the redrive policy will move it to the dead-letter queue", "err", err, "max_receive_count", l.redriveCount)
		l.release(d, 0, log)
		return metrics.OutcomePoison
	}
	log.Error("poison message deleted (the queue has no dead-letter queue)", "err", err, "body", clip.String(string(d.Body), 200))
	l.delete(d)
	return metrics.OutcomePoison
}

// PostponedAttribute is the message attribute that counts how often a
// message was postponed. The body's shape is the contract's; this travels
// beside it.
const PostponedAttribute = "sixpotify-postponed"

// postponeStep is how much longer each postponement waits at least than the
// one before, up to SQS's longest delay: a message that meets pause after
// pause comes back less and less often.
const postponeStep = 10 * time.Second

// postponements returns how often d's message was postponed.
func postponements(d Delivery) int {
	n, err := strconv.Atoi(d.Attributes[PostponedAttribute])
	if err != nil || n < 0 {
		return 0
	}
	return n
}

// postpone gives d back for a wait that is not its fault (a Spotify
// cooldown, a refused endpoint, an outage): it sends the body again with a
// delay (at most SQS's 15 minutes) and one more postponement counted, and
// deletes this delivery, so that the wait does not count towards the
// redrive policy's maxReceiveCount. Past Options.MaxPostpones the message
// spends its deliveries as any failure does, so that none circulates
// forever. A queue that cannot send gets a plain release.
func (l *lane) postpone(d Delivery, delay time.Duration, reason string, cause error, log *slog.Logger) string {
	n := postponements(d) + 1
	if n > l.opts.MaxPostpones {
		log.Warn("the message was postponed too often; it now spends its deliveries", "postponed", n-1, "reason", reason, "err", cause)
		return l.spend(d, min(max(delay, time.Second), maxPostpone), cause, log)
	}
	s, ok := l.q.(queue.Sender)
	if !ok {
		return l.release(d, delay, log)
	}
	delay = min(max(delay, time.Duration(n-1)*postponeStep, time.Second), maxPostpone)
	attrs := make(map[string]string, len(d.Attributes)+1)
	maps.Copy(attrs, d.Attributes)
	attrs[PostponedAttribute] = strconv.Itoa(n)
	ctx, cancel := context.WithTimeout(context.Background(), giveBackTimeout)
	defer cancel()
	errs, err := s.SendBatch(ctx, []queue.Entry{{Body: d.Body, Delay: delay, Attributes: attrs}})
	switch {
	case err != nil:
	case len(errs) != 1:
		err = fmt.Errorf("the queue answered %d results for one message", len(errs))
	default:
		err = errs[0]
	}
	if err != nil {
		log.Warn("could not postpone the message; releasing it instead", "err", err)
		return l.release(d, delay, log)
	}
	l.metrics.Postponed.WithLabelValues(l.name, reason).Inc()
	log.Info("message postponed", "delay", delay, "reason", reason, "postponed", n)
	l.delete(d)
	return metrics.OutcomeReleased
}

// retryLater gives a message whose processing failed for a transient reason
// back to the queue, later each time.
func (l *lane) retryLater(d Delivery, err error, log *slog.Logger) string {
	delay := retryDelay(d.ReceiveCount)
	log.Warn("artist failed; the message goes back to the queue", "err", err, "retry_in", delay)
	return l.spend(d, delay, err, log)
}

// spend gives d back after delay, spending one of its deliveries: with a
// dead-letter queue the redrive policy moves it there after maxReceiveCount;
// without one it is deleted and logged after MaxReceives.
func (l *lane) spend(d Delivery, delay time.Duration, err error, log *slog.Logger) string {
	l.recordReason(d, err, log)
	if l.redriveCount == 0 && d.ReceiveCount >= l.opts.MaxReceives {
		log.Error("giving up on the message after repeated failures (the queue has no dead-letter queue)", "err", err, "deliveries", d.ReceiveCount, "body", clip.String(string(d.Body), 200))
		l.delete(d)
		return metrics.OutcomePoison
	}
	return l.release(d, delay, log)
}

// retryDelay is 5s, 10s, 20s, … capped at 5 minutes, by delivery.
func retryDelay(receiveCount int) time.Duration {
	d := firstRetryDelay
	for i := 1; i < receiveCount && d < maxRetryDelay; i++ {
		d *= 2
	}
	return min(d, maxRetryDelay)
}

// release gives d back to the queue, visible again after delay, and returns
// the outcome of a release.
func (l *lane) release(d Delivery, delay time.Duration, log *slog.Logger) string {
	ctx, cancel := context.WithTimeout(context.Background(), giveBackTimeout)
	defer cancel()
	if err := l.q.ChangeVisibility(ctx, d.Receipt, delay); err != nil && !errors.Is(err, queue.ErrInvalidReceipt) {
		// The message comes back anyway when its visibility timeout ends.
		log.Warn("could not give the message back; it returns when its visibility timeout ends", "err", err)
	}
	return metrics.OutcomeReleased
}

// heartbeat keeps d invisible while its work runs longer than half the
// visibility timeout. The returned func stops it.
func (l *lane) heartbeat(d Delivery, log *slog.Logger) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		every(ctx, l.visibility/2, func() {
			cctx, ccancel := context.WithTimeout(ctx, heartbeatTimeout)
			err := l.q.ChangeVisibility(cctx, d.Receipt, l.visibility)
			ccancel()
			if err != nil && ctx.Err() == nil {
				log.Warn("could not extend the message's visibility", "err", err)
			}
		})
	}()
	return func() { cancel(); <-done }
}

// every calls fn each period until ctx ends, the first time one period from
// now.
func every(ctx context.Context, period time.Duration, fn func()) {
	t := time.NewTicker(period)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			fn()
		}
	}
}

type deleteReq struct {
	receipt string
	msgID   string
}

// delete queues d for the batch deleter.
func (l *lane) delete(d Delivery) {
	l.deletes <- deleteReq{receipt: d.Receipt, msgID: d.ID}
}

// startDeleter starts the goroutine that deletes settled messages in
// batches of up to ten.
func (l *lane) startDeleter() {
	go func() {
		defer close(l.done)
		batch := make([]deleteReq, 0, queue.MaxBatch)
		for {
			req, ok := <-l.deletes
			if !ok {
				return
			}
			batch = append(batch[:0], req)
			// Take whatever else is already waiting, up to a full batch; a
			// lone message is not held back waiting for company.
		fill:
			for len(batch) < queue.MaxBatch {
				select {
				case req, ok := <-l.deletes:
					if !ok {
						break fill
					}
					batch = append(batch, req)
				default:
					break fill
				}
			}
			l.deleteBatch(batch)
		}
	}()
}

// stopDeleter flushes the last deletes and waits for the deleter to end.
func (l *lane) stopDeleter() {
	close(l.deletes)
	<-l.done
}

func (l *lane) deleteBatch(batch []deleteReq) {
	receipts := make([]string, len(batch))
	for i, r := range batch {
		receipts[i] = r.receipt
	}
	// Deletes run on their own deadline: they must still happen during a
	// stop, but not past the stop's deadline.
	deadline := time.Now().Add(deleteTimeout)
	if by := l.stopBy.Load(); by != 0 && time.Unix(0, by).Before(deadline) {
		deadline = time.Unix(0, by)
	}
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	l.metrics.DeleteCalls.WithLabelValues(l.name).Inc()
	errs, err := l.q.DeleteBatch(ctx, receipts)
	if err != nil {
		l.metrics.DeleteFailures.WithLabelValues(l.name).Add(float64(len(batch)))
		l.log.Error("batch delete failed; the messages will be delivered again and found fresh", "err", err, "messages", len(batch))
		return
	}
	failed := 0
	for i, e := range errs {
		if e != nil {
			failed++
			l.log.Warn("delete failed; the message will be delivered again", "message_id", batch[i].msgID, "err", e)
		}
	}
	l.metrics.Deleted.WithLabelValues(l.name).Add(float64(len(batch) - failed))
	l.metrics.DeleteFailures.WithLabelValues(l.name).Add(float64(failed))
}
