package worker

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/sixpotify/top-tracks/internal/message"
	"github.com/sixpotify/top-tracks/internal/store"
)

// recordTimeout bounds one recording of why a message failed.
const recordTimeout = 3 * time.Second

// recordReason records on the artist's row why d failed for its own reason
// (err) and when, so that `producer dlq list` can tell, when the store can
// (store.FailureRecorder). It never changes d's fate: a failure to record is
// logged and forgotten. A body that is not a valid message names no artist,
// and nothing is recorded for it.
func (l *lane) recordReason(d Delivery, err error, log *slog.Logger) {
	rec, ok := l.fetch.store.(store.FailureRecorder)
	if !ok || err == nil {
		return
	}
	msg, derr := message.Decode(d.Body)
	if derr != nil {
		return
	}
	reason := fmt.Sprintf("%v (lane %s, delivery %d)", err, l.name, d.ReceiveCount)
	ctx, cancel := context.WithTimeout(context.Background(), recordTimeout)
	defer cancel()
	if rerr := rec.RecordFailure(ctx, msg.ArtistID, reason, l.opts.Clock()); rerr != nil {
		log.Warn("could not record why the message failed; its fate is unchanged", "err", rerr)
	}
}
