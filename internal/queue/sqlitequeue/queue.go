package sqlitequeue

import (
	"cmp"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/sixpotify/top-tracks/internal/queue"
	"github.com/sixpotify/top-tracks/internal/sqlitedb"
)

// Limits, as SQS has them.
const (
	maxWait       = 20 * time.Second
	maxVisibility = 12 * time.Hour
	maxDelay      = 15 * time.Minute
	maxBodyBytes  = 1 << 20
)

// Defaults of Options.
const (
	DefaultVisibilityTimeout = 30 * time.Second
	DefaultMaxReceiveCount   = 5
	DefaultPollInterval      = 100 * time.Millisecond
)

// ErrClosed is returned by calls on a closed Queue.
var ErrClosed = errors.New("sqlitequeue: queue is closed")

// Options tune a Queue. The zero value gives the defaults.
type Options struct {
	// VisibilityTimeout is how long a received message stays invisible
	// (default 30s, at most 12h).
	VisibilityTimeout time.Duration
	// MaxReceiveCount is how many times a message is delivered before the
	// next attempt moves it to the dead-letter table instead (default 5).
	// A negative value disables the dead-letter table: messages are
	// delivered again forever.
	MaxReceiveCount int
	// PollInterval is how often a long-polling Receive looks again for
	// messages sent by other handles or processes (default 100ms). Messages
	// sent through the same handle wake it at once.
	PollInterval time.Duration
	// Clock tells the time visibility timeouts and delays are measured
	// against (default time.Now). Long polls wait in real time.
	Clock func() time.Time
}

// Validate reports every problem of o at once.
func (o Options) Validate() error {
	var errs []error
	if o.VisibilityTimeout < 0 || o.VisibilityTimeout > maxVisibility {
		errs = append(errs, fmt.Errorf("VisibilityTimeout %v: want 0 (default) to %v", o.VisibilityTimeout, maxVisibility))
	}
	if o.PollInterval < 0 {
		errs = append(errs, fmt.Errorf("PollInterval %v: want 0 (default) or more", o.PollInterval))
	}
	return errors.Join(errs...)
}

func (o Options) withDefaults() Options {
	if o.VisibilityTimeout == 0 {
		o.VisibilityTimeout = DefaultVisibilityTimeout
	}
	if o.MaxReceiveCount == 0 {
		o.MaxReceiveCount = DefaultMaxReceiveCount
	}
	if o.MaxReceiveCount < 0 {
		o.MaxReceiveCount = 0
	}
	if o.PollInterval == 0 {
		o.PollInterval = DefaultPollInterval
	}
	if o.Clock == nil {
		o.Clock = time.Now
	}
	return o
}

var _ queue.Queue = (*Queue)(nil)

// Queue is one named queue in an SQLite file. It is safe for concurrent use,
// and other handles and processes may use the same file at the same time.
type Queue struct {
	db   *sql.DB
	path string
	name string
	opts Options

	// wsem serializes this handle's write transactions, so that they queue
	// here (watching ctx) instead of spinning in SQLite's busy handler.
	wsem chan struct{}
	// sent wakes long polls when this handle sends or releases a message.
	sent signal

	closeOnce sync.Once
	closed    chan struct{}
	closeErr  error
}

const schema = `
CREATE TABLE IF NOT EXISTS queue_messages (
	seq           INTEGER PRIMARY KEY,
	queue         TEXT    NOT NULL,
	id            TEXT    NOT NULL,
	body          BLOB    NOT NULL,
	sent_at       INTEGER NOT NULL, -- Unix milliseconds
	visible_at    INTEGER NOT NULL, -- Unix milliseconds
	receive_count INTEGER NOT NULL DEFAULT 0,
	receipt       TEXT,             -- of the latest delivery
	attrs         TEXT              -- the message attributes, a JSON object; NULL: none
);
CREATE INDEX IF NOT EXISTS queue_messages_ready ON queue_messages (queue, visible_at, seq);
CREATE INDEX IF NOT EXISTS queue_messages_received ON queue_messages (queue, receive_count, visible_at);
CREATE INDEX IF NOT EXISTS queue_messages_receipt ON queue_messages (receipt) WHERE receipt IS NOT NULL;
CREATE TABLE IF NOT EXISTS queue_dead_letters (
	seq           INTEGER PRIMARY KEY,
	queue         TEXT    NOT NULL,
	id            TEXT    NOT NULL,
	body          BLOB    NOT NULL,
	sent_at       INTEGER NOT NULL,
	receive_count INTEGER NOT NULL,
	dead_at       INTEGER NOT NULL,
	attrs         TEXT
);
CREATE INDEX IF NOT EXISTS queue_dead_letters_queue ON queue_dead_letters (queue, seq);
`

// Open opens the queue name in the SQLite file at path, creating the file
// and its tables when missing.
func Open(ctx context.Context, path, name string, opts Options) (*Queue, error) {
	errs := []error{opts.Validate()}
	if err := validName(name); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("sqlitequeue: open %s: %w", path, err)
	}
	db, err := sqlitedb.Open(ctx, path, schema)
	if err != nil {
		return nil, fmt.Errorf("sqlitequeue: open %s: %w", path, err)
	}
	// A file written before messages carried attributes.
	for _, table := range []string{"queue_messages", "queue_dead_letters"} {
		if err := sqlitedb.AddColumn(ctx, db, table, "attrs", "TEXT"); err != nil {
			db.Close()
			return nil, fmt.Errorf("sqlitequeue: open %s: %w", path, err)
		}
	}
	return &Queue{
		db:     db,
		path:   path,
		name:   name,
		opts:   opts.withDefaults(),
		wsem:   make(chan struct{}, 1),
		closed: make(chan struct{}),
	}, nil
}

// Close closes the handle. A long-polling Receive returns ErrClosed. Calling
// Close again returns the first call's result.
func (q *Queue) Close() error {
	q.closeOnce.Do(func() {
		close(q.closed)
		q.closeErr = q.db.Close()
	})
	return q.closeErr
}

// Name is the queue's name in its file.
func (q *Queue) Name() string { return q.name }

func (q *Queue) now() int64 { return q.opts.Clock().UnixMilli() }

// Receive returns up to min(maxMessages, 10) visible messages, hiding each for
// the visibility timeout and counting the receive. When none is visible it
// waits up to wait (at most 20s) for one, and returns as soon as any is
// there; it returns no messages and no error when the wait ends empty.
//
// A message already received MaxReceiveCount times moves to the dead-letter
// table instead of being delivered. When ctx ends, Receive returns its error;
// messages whose delivery was abandoned that way stay invisible for the
// visibility timeout and are then delivered again.
func (q *Queue) Receive(ctx context.Context, maxMessages int, wait time.Duration) ([]queue.Delivery, error) {
	if maxMessages < 1 {
		return nil, fmt.Errorf("sqlitequeue: receive: maxMessages must be positive, got %d", maxMessages)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("sqlitequeue: receive: %w", err)
	}
	n := min(maxMessages, queue.MaxBatch)
	wait = min(max(wait, 0), maxWait)
	var deadline <-chan time.Time
	if wait > 0 {
		t := time.NewTimer(wait)
		defer t.Stop()
		deadline = t.C
	}
	poll := time.NewTimer(q.opts.PollInterval)
	defer poll.Stop()
	for last := wait == 0; ; {
		// Take the signal before looking, so that a send between the
		// look and the wait still wakes this poll.
		sent := q.sent.wait()
		msgs, err := q.receiveOnce(ctx, n)
		if err != nil || len(msgs) > 0 || last {
			return msgs, err
		}
		poll.Reset(q.opts.PollInterval)
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("sqlitequeue: receive: %w", ctx.Err())
		case <-q.closed:
			return nil, ErrClosed
		case <-deadline:
			last = true
		case <-sent:
		case <-poll.C:
		}
	}
}

func (q *Queue) receiveOnce(ctx context.Context, n int) ([]queue.Delivery, error) {
	// Look without the write lock first: most polls of an idle queue find
	// nothing, and must not keep busy workers from writing.
	var ready bool
	if err := q.db.QueryRowContext(ctx, `
		SELECT EXISTS (SELECT 1 FROM queue_messages INDEXED BY queue_messages_ready
			WHERE queue = ? AND visible_at <= ?)`, q.name, q.now()).Scan(&ready); err != nil {
		return nil, q.errorf("receive", err)
	}
	if !ready {
		return nil, nil
	}
	var msgs []queue.Delivery
	err := q.write(ctx, func(tx *sql.Tx) error {
		now := q.now()
		if err := q.reap(ctx, tx, now); err != nil {
			return err
		}
		msgs = nil
		rows, err := tx.QueryContext(ctx, `
			UPDATE queue_messages
			SET receive_count = receive_count + 1,
			    visible_at = ?,
			    receipt = lower(hex(randomblob(16)))
			WHERE seq IN (
				SELECT seq FROM queue_messages INDEXED BY queue_messages_ready
				WHERE queue = ? AND visible_at <= ?
				ORDER BY visible_at, seq
				LIMIT ?)
			RETURNING seq, id, receipt, body, receive_count, sent_at, attrs`,
			now+q.opts.VisibilityTimeout.Milliseconds(), q.name, now, n)
		if err != nil {
			return err
		}
		defer rows.Close()
		type delivery struct {
			seq int64
			msg queue.Delivery
		}
		var ds []delivery
		for rows.Next() {
			var d delivery
			var sentAt int64
			var attrs sql.NullString
			if err := rows.Scan(&d.seq, &d.msg.ID, &d.msg.Receipt, &d.msg.Body, &d.msg.ReceiveCount, &sentAt, &attrs); err != nil {
				return err
			}
			d.msg.SentAt = time.UnixMilli(sentAt).UTC()
			if d.msg.Attributes, err = decodeAttrs(attrs); err != nil {
				return err
			}
			ds = append(ds, d)
		}
		if err := rows.Err(); err != nil {
			return err
		}
		// RETURNING has no order: deliver in send order.
		slices.SortFunc(ds, func(a, b delivery) int { return cmp.Compare(a.seq, b.seq) })
		msgs = make([]queue.Delivery, len(ds))
		for i, d := range ds {
			msgs[i] = d.msg
		}
		return nil
	})
	if err != nil {
		return nil, q.errorf("receive", err)
	}
	return msgs, nil
}

// reap moves the visible messages that were received MaxReceiveCount times
// to the dead-letter table.
func (q *Queue) reap(ctx context.Context, tx *sql.Tx, now int64) error {
	if q.opts.MaxReceiveCount <= 0 {
		return nil
	}
	const where = `FROM queue_messages INDEXED BY queue_messages_received
		WHERE queue = ? AND receive_count >= ? AND visible_at <= ?`
	res, err := tx.ExecContext(ctx, `
		INSERT INTO queue_dead_letters (queue, id, body, sent_at, receive_count, dead_at, attrs)
		SELECT queue, id, body, sent_at, receive_count, ?, attrs `+where+` ORDER BY seq`,
		now, q.name, q.opts.MaxReceiveCount, now)
	if err != nil {
		return fmt.Errorf("move to the dead-letter table: %w", err)
	}
	if moved, err := res.RowsAffected(); err != nil || moved == 0 {
		return err
	}
	if _, err := tx.ExecContext(ctx, `DELETE `+where, q.name, q.opts.MaxReceiveCount, now); err != nil {
		return fmt.Errorf("move to the dead-letter table: %w", err)
	}
	return nil
}

// DeleteBatch deletes the deliveries named by receipts, all in one
// transaction. errs has one element per receipt: nil when it was deleted, an
// error wrapping queue.ErrInvalidReceipt when the receipt is malformed or no
// longer names the latest delivery of a message in this queue (the message
// was deleted, or delivered again since). err reports a failure of the whole
// call, in which case nothing was deleted and every errs[i] carries it.
func (q *Queue) DeleteBatch(ctx context.Context, receipts []string) (errs []error, err error) {
	errs = make([]error, len(receipts))
	err = q.write(ctx, func(tx *sql.Tx) error {
		clear(errs)
		for i, r := range receipts {
			if !wellFormed(r) {
				errs[i] = fmt.Errorf("sqlitequeue: delete %q: %w", r, queue.ErrInvalidReceipt)
				continue
			}
			res, err := tx.ExecContext(ctx, `DELETE FROM queue_messages WHERE receipt = ? AND queue = ?`, r, q.name)
			if err != nil {
				return err
			}
			if n, err := res.RowsAffected(); err != nil {
				return err
			} else if n == 0 {
				errs[i] = fmt.Errorf("sqlitequeue: delete %s: %w", r, queue.ErrInvalidReceipt)
			}
		}
		return nil
	})
	if err != nil {
		err = q.errorf("delete", err)
		for i := range errs {
			errs[i] = err
		}
		return errs, err
	}
	return errs, nil
}

// ChangeVisibility hides the message of the delivery named by receipt for
// timeout from now (clamped to [0, 12h]); zero makes it visible at once. A
// receipt that is malformed, no longer names the latest delivery, or names a
// message whose visibility timeout has already run out gives an error
// wrapping queue.ErrInvalidReceipt, as SQS's MessageNotInflight.
func (q *Queue) ChangeVisibility(ctx context.Context, receipt string, timeout time.Duration) error {
	timeout = min(max(timeout, 0), maxVisibility)
	if !wellFormed(receipt) {
		return fmt.Errorf("sqlitequeue: change visibility %q: %w", receipt, queue.ErrInvalidReceipt)
	}
	var changed int64
	err := q.write(ctx, func(tx *sql.Tx) error {
		now := q.now()
		res, err := tx.ExecContext(ctx, `
			UPDATE queue_messages SET visible_at = ?
			WHERE receipt = ? AND queue = ? AND visible_at > ?`,
			now+timeout.Milliseconds(), receipt, q.name, now)
		if err != nil {
			return err
		}
		changed, err = res.RowsAffected()
		return err
	})
	if err != nil {
		return q.errorf("change visibility", err)
	}
	if changed == 0 {
		return fmt.Errorf("sqlitequeue: change visibility %s: no message in flight has this receipt: %w", receipt, queue.ErrInvalidReceipt)
	}
	if timeout == 0 {
		q.sent.broadcast()
	}
	return nil
}

// SendBatch sends entries in one transaction, each hidden for its Delay
// (clamped to [0, 15m]). errs has one element per entry: nil when it was
// sent, an error wrapping queue.ErrRejected when the entry was refused (an
// empty body, one over 1 MiB, or one holding characters SQS does not carry). err reports a failure of the
// whole call, in which case nothing was sent and every errs[i] carries it.
func (q *Queue) SendBatch(ctx context.Context, entries []queue.Entry) (errs []error, err error) {
	errs = make([]error, len(entries))
	sent := 0
	err = q.write(ctx, func(tx *sql.Tx) error {
		clear(errs)
		sent = 0
		now := q.now()
		for i, e := range entries {
			if err := errors.Join(checkBody(e.Body), queue.CheckAttributes(e.Attributes)); err != nil {
				errs[i] = fmt.Errorf("sqlitequeue: send entry %d: %w: %w", i, queue.ErrRejected, err)
				continue
			}
			attrs, err := encodeAttrs(e.Attributes)
			if err != nil {
				return err
			}
			delay := min(max(e.Delay, 0), maxDelay)
			if _, err := tx.ExecContext(ctx, `
				INSERT INTO queue_messages (queue, id, body, sent_at, visible_at, attrs)
				VALUES (?, ?, ?, ?, ?, ?)`,
				q.name, newID(), e.Body, now, now+delay.Milliseconds(), attrs); err != nil {
				return err
			}
			sent++
		}
		return nil
	})
	if err != nil {
		err = q.errorf("send", err)
		for i := range errs {
			errs[i] = err
		}
		return errs, err
	}
	if sent > 0 {
		q.sent.broadcast()
	}
	return errs, nil
}

// Attributes returns the handle's visibility timeout and MaxReceiveCount
// (zero when the dead-letter table is disabled).
func (q *Queue) Attributes(ctx context.Context) (queue.Attributes, error) {
	if err := ctx.Err(); err != nil {
		return queue.Attributes{}, fmt.Errorf("sqlitequeue: attributes: %w", err)
	}
	return queue.Attributes{
		VisibilityTimeout: q.opts.VisibilityTimeout,
		MaxReceiveCount:   q.opts.MaxReceiveCount,
	}, nil
}

// Len counts this queue's messages: visible ones (ready to be received),
// invisible ones (in flight, or delayed), and dead ones (in the dead-letter
// table, or visible but out of receives: the next receive moves them there).
func (q *Queue) Len(ctx context.Context) (visible, inflight, dead int, err error) {
	now := q.now()
	limit := int64(math.MaxInt64) // no message is out of receives
	if q.opts.MaxReceiveCount > 0 {
		limit = int64(q.opts.MaxReceiveCount)
	}
	err = q.db.QueryRowContext(ctx, `
		SELECT
			(SELECT count(*) FROM queue_messages WHERE queue = ?1 AND visible_at <= ?2 AND receive_count < ?3),
			(SELECT count(*) FROM queue_messages WHERE queue = ?1 AND visible_at > ?2),
			(SELECT count(*) FROM queue_messages WHERE queue = ?1 AND visible_at <= ?2 AND receive_count >= ?3)
			+ (SELECT count(*) FROM queue_dead_letters WHERE queue = ?1)`,
		q.name, now, limit).Scan(&visible, &inflight, &dead)
	if err != nil {
		return 0, 0, 0, q.errorf("count", err)
	}
	return visible, inflight, dead, nil
}

// write runs fn in one BEGIN IMMEDIATE transaction, after this handle's
// earlier writes.
func (q *Queue) write(ctx context.Context, fn func(*sql.Tx) error) error {
	if q.isClosed() {
		return ErrClosed
	}
	select {
	case q.wsem <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	case <-q.closed:
		return ErrClosed
	}
	defer func() { <-q.wsem }()
	return sqlitedb.InTx(ctx, q.db, fn)
}

func (q *Queue) isClosed() bool {
	select {
	case <-q.closed:
		return true
	default:
		return false
	}
}

func (q *Queue) errorf(op string, err error) error {
	if errors.Is(err, ErrClosed) || q.isClosed() {
		return ErrClosed
	}
	return fmt.Errorf("sqlitequeue: %s %s in %s: %w", op, q.name, q.path, err)
}

// wellFormed reports whether r looks like a receipt: 32 lower-case hex digits.
func wellFormed(r string) bool {
	if len(r) != 32 {
		return false
	}
	return strings.Trim(r, "0123456789abcdef") == ""
}

// checkBody refuses what SQS refuses: an empty body, one over its size limit,
// and characters outside #x9 | #xA | #xD | #x20-#xD7FF | #xE000-#xFFFD |
// #x10000-#x10FFFF.
func checkBody(b []byte) error {
	switch {
	case len(b) == 0:
		return errors.New("the message body is empty")
	case len(b) > maxBodyBytes:
		return fmt.Errorf("the message body is %d bytes, over %d", len(b), maxBodyBytes)
	case !utf8.Valid(b):
		return errors.New("the message body is not valid UTF-8")
	}
	for i, r := range string(b) {
		if !(r == 0x9 || r == 0xA || r == 0xD || r >= 0x20 && r <= 0xD7FF || r >= 0xE000 && r <= 0xFFFD || r >= 0x10000) {
			return fmt.Errorf("the message body holds %U at byte %d, which SQS does not carry", r, i)
		}
	}
	return nil
}

// newID returns a random (version 4) UUID, the shape of SQS message IDs.
func newID() string {
	var b [16]byte
	rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// signal wakes every waiter at once, any number of times.
type signal struct {
	mu sync.Mutex
	ch chan struct{}
}

// wait returns a channel closed by the next broadcast.
func (s *signal) wait() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ch == nil {
		s.ch = make(chan struct{})
	}
	return s.ch
}

func (s *signal) broadcast() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ch != nil {
		close(s.ch)
		s.ch = nil
	}
}

// encodeAttrs is the attrs column of a message's attributes: NULL for none.
func encodeAttrs(attrs map[string]string) (sql.NullString, error) {
	if len(attrs) == 0 {
		return sql.NullString{}, nil
	}
	b, err := json.Marshal(attrs)
	if err != nil {
		return sql.NullString{}, fmt.Errorf("encode message attributes: %w", err)
	}
	return sql.NullString{String: string(b), Valid: true}, nil
}

// decodeAttrs reads an attrs column back.
func decodeAttrs(s sql.NullString) (map[string]string, error) {
	if !s.Valid || s.String == "" {
		return nil, nil
	}
	var attrs map[string]string
	if err := json.Unmarshal([]byte(s.String), &attrs); err != nil {
		return nil, fmt.Errorf("decode message attributes: %w", err)
	}
	return attrs, nil
}
