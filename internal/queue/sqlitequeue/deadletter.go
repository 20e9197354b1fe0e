package sqlitequeue

import (
	"context"
	"database/sql"
	"fmt"
	"math"
	"time"

	"golang.org/x/time/rate"

	"github.com/sixpotify/top-tracks/internal/queue"
)

var (
	_ queue.Counter      = (*Queue)(nil)
	_ queue.DeadLetterer = (*Queue)(nil)
)

// redriveBatch is the most dead letters one Redrive transaction moves.
const redriveBatch = 100

// Counts counts this queue's messages exactly: visible (and not out of
// receives), in flight (received, invisible) and delayed (sent with a delay,
// never received yet). A visible message out of receives is a dead letter
// (DeadLetterCounts): the next receive moves it there.
func (q *Queue) Counts(ctx context.Context) (queue.Counts, error) {
	var c queue.Counts
	err := q.db.QueryRowContext(ctx, `
		SELECT
			(SELECT count(*) FROM queue_messages WHERE queue = ?1 AND visible_at <= ?2 AND receive_count < ?3),
			(SELECT count(*) FROM queue_messages WHERE queue = ?1 AND visible_at > ?2 AND receive_count > 0),
			(SELECT count(*) FROM queue_messages WHERE queue = ?1 AND visible_at > ?2 AND receive_count = 0)`,
		q.name, q.now(), q.receiveLimit()).Scan(&c.Visible, &c.InFlight, &c.Delayed)
	if err != nil {
		return queue.Counts{}, q.errorf("count", err)
	}
	return c, nil
}

// receiveLimit is the receive count at which a message is a dead letter.
func (q *Queue) receiveLimit() int64 {
	if q.opts.MaxReceiveCount > 0 {
		return int64(q.opts.MaxReceiveCount)
	}
	return math.MaxInt64
}

func (q *Queue) checkDeadLetters() error {
	if q.opts.MaxReceiveCount <= 0 {
		return fmt.Errorf("sqlitequeue: %s in %s: %w", q.name, q.path, queue.ErrNoDeadLetterQueue)
	}
	return nil
}

// DeadLetterCounts counts the queue's dead letters, as Visible: the rows of
// its dead-letter table and the visible messages out of receives.
func (q *Queue) DeadLetterCounts(ctx context.Context) (queue.Counts, error) {
	if err := q.checkDeadLetters(); err != nil {
		return queue.Counts{}, err
	}
	var c queue.Counts
	err := q.db.QueryRowContext(ctx, `
		SELECT (SELECT count(*) FROM queue_dead_letters WHERE queue = ?1)
			+ (SELECT count(*) FROM queue_messages WHERE queue = ?1 AND visible_at <= ?2 AND receive_count >= ?3)`,
		q.name, q.now(), q.receiveLimit()).Scan(&c.Visible)
	if err != nil {
		return queue.Counts{}, q.errorf("count dead letters", err)
	}
	return c, nil
}

// PeekDeadLetters returns up to limit of the dead-letter table's messages,
// oldest first, after moving there those out of receives; it reads the rows
// and changes none of them. It leaves their attributes out, as the SQS
// queue's peek does.
func (q *Queue) PeekDeadLetters(ctx context.Context, limit int) ([]queue.Delivery, error) {
	if err := q.checkDeadLetters(); err != nil {
		return nil, err
	}
	msgs, err := q.readDeadLetters(ctx, limit)
	if err != nil {
		return nil, q.errorf("peek at dead letters", err)
	}
	for i := range msgs {
		msgs[i].Attributes = nil
	}
	return msgs, nil
}

// DeadLetters returns the messages of this queue's dead-letter table, oldest
// first, after moving there the messages that have run out of receives. The
// messages carry no receipt: they are not deliveries.
func (q *Queue) DeadLetters(ctx context.Context) ([]queue.Delivery, error) {
	msgs, err := q.readDeadLetters(ctx, -1)
	if err != nil {
		return nil, q.errorf("dead letters", err)
	}
	return msgs, nil
}

// readDeadLetters moves the messages out of receives to the dead-letter
// table, then reads up to limit of its messages (all for -1), oldest first.
func (q *Queue) readDeadLetters(ctx context.Context, limit int) ([]queue.Delivery, error) {
	var msgs []queue.Delivery
	err := q.write(ctx, func(tx *sql.Tx) error {
		if err := q.reap(ctx, tx, q.now()); err != nil {
			return err
		}
		rows, err := tx.QueryContext(ctx, `
			SELECT id, body, receive_count, sent_at, attrs FROM queue_dead_letters
			WHERE queue = ? ORDER BY seq LIMIT ?`, q.name, limit)
		if err != nil {
			return err
		}
		defer rows.Close()
		msgs = nil
		for rows.Next() {
			var m queue.Delivery
			var sentAt int64
			var attrs sql.NullString
			if err := rows.Scan(&m.ID, &m.Body, &m.ReceiveCount, &sentAt, &attrs); err != nil {
				return err
			}
			m.SentAt = time.UnixMilli(sentAt).UTC()
			if m.Attributes, err = decodeAttrs(attrs); err != nil {
				return err
			}
			msgs = append(msgs, m)
		}
		return rows.Err()
	})
	return msgs, err
}

// Redrive moves the dead letters back to the queue, oldest first, in
// transactions of up to 100 (or opts.MaxPerSecond, paced to that rate):
// each moves its rows out of the dead-letter table and into the queue at
// once, visible at once with no receive counted, keeping their ID and first
// send time. An interrupted Redrive leaves every message in exactly one of
// the two tables, and running it again moves the rest.
func (q *Queue) Redrive(ctx context.Context, opts queue.RedriveOptions) (queue.RedriveProgress, error) {
	if err := q.checkDeadLetters(); err != nil {
		return queue.RedriveProgress{}, err
	}
	c, err := q.DeadLetterCounts(ctx)
	if err != nil {
		return queue.RedriveProgress{}, err
	}
	p := queue.RedriveProgress{ToMove: c.Visible, Status: queue.RedriveRunning}
	batch := redriveBatch
	var limiter *rate.Limiter
	if opts.MaxPerSecond > 0 {
		batch = min(batch, opts.MaxPerSecond)
		limiter = rate.NewLimiter(rate.Limit(opts.MaxPerSecond), batch)
	}
	report := func() {
		if opts.Progress != nil {
			opts.Progress(p)
		}
	}
	report()
	for {
		if limiter != nil {
			if err := limiter.WaitN(ctx, batch); err != nil {
				p.Status = queue.RedriveCancelled
				report()
				return p, fmt.Errorf("sqlitequeue: redrive %s: %w", q.name, context.Cause(ctx))
			}
		}
		if err := ctx.Err(); err != nil {
			p.Status = queue.RedriveCancelled
			report()
			return p, fmt.Errorf("sqlitequeue: redrive %s: %w", q.name, err)
		}
		n, err := q.redriveOnce(ctx, batch)
		if err != nil {
			p.Status = queue.RedriveFailed
			if ctx.Err() != nil {
				p.Status = queue.RedriveCancelled
			}
			report()
			return p, err
		}
		if n == 0 {
			p.Status = queue.RedriveCompleted
			report()
			return p, nil
		}
		p.Moved += n
		p.ToMove = max(p.ToMove, p.Moved)
		report()
	}
}

// redriveOnce moves up to n dead letters back in one transaction.
func (q *Queue) redriveOnce(ctx context.Context, n int) (int, error) {
	var moved int64
	err := q.write(ctx, func(tx *sql.Tx) error {
		now := q.now()
		if err := q.reap(ctx, tx, now); err != nil {
			return err
		}
		var last sql.NullInt64
		if err := tx.QueryRowContext(ctx, `
			SELECT max(seq) FROM (SELECT seq FROM queue_dead_letters WHERE queue = ? ORDER BY seq LIMIT ?)`,
			q.name, n).Scan(&last); err != nil {
			return err
		}
		if !last.Valid {
			moved = 0
			return nil
		}
		res, err := tx.ExecContext(ctx, `
			INSERT INTO queue_messages (queue, id, body, sent_at, visible_at)
			SELECT queue, id, body, sent_at, ? FROM queue_dead_letters
			WHERE queue = ? AND seq <= ? ORDER BY seq`, now, q.name, last.Int64)
		if err != nil {
			return err
		}
		if moved, err = res.RowsAffected(); err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `DELETE FROM queue_dead_letters WHERE queue = ? AND seq <= ?`, q.name, last.Int64)
		return err
	})
	if err != nil {
		return 0, q.errorf("redrive", err)
	}
	if moved > 0 {
		q.sent.broadcast()
	}
	return int(moved), nil
}
