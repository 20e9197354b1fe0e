// Package queue is the queue port: the method set every queue backend
// (sqsqueue, sqlitequeue) provides, declared once here as small interfaces,
// and the types they speak. The worker drains a Consumer, the producer sends
// through a Sender, and the backend opener and the conformance suite in
// queuetest speak the whole Queue.
package queue

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Consumer is what drains a queue: receive deliveries, delete them in
// batches once their work is durable, and change their visibility (0 gives
// one back at once).
type Consumer interface {
	Receive(ctx context.Context, max int, wait time.Duration) ([]Delivery, error)
	DeleteBatch(ctx context.Context, receipts []string) ([]error, error)
	ChangeVisibility(ctx context.Context, receipt string, timeout time.Duration) error
}

// Sender sends a batch of at most MaxBatch messages, returning one error per
// entry (nil when sent; wrapping ErrRejected when the queue refuses the
// entry itself) and an error for the call as a whole.
type Sender interface {
	SendBatch(ctx context.Context, entries []Entry) ([]error, error)
}

// Attributer tells a queue's visibility timeout and redrive policy.
type Attributer interface {
	Attributes(ctx context.Context) (Attributes, error)
}

// Queue is the whole method set of every backend.
type Queue interface {
	Consumer
	Sender
	Attributer
}

// MaxBatch is the most entries one SendBatch or DeleteBatch call takes, and the
// most messages one Receive returns (SQS's limit).
const MaxBatch = 10

// Delivery is one delivery of a queued message: what a Receive returns,
// with the receipt that settles it and the message's receive count.
type Delivery struct {
	// ID identifies the message across deliveries.
	ID string
	// Receipt identifies this delivery; Delete and ChangeVisibility take it.
	Receipt string
	Body    []byte
	// ReceiveCount is how many times the message has been received, this
	// delivery included (SQS's ApproximateReceiveCount).
	ReceiveCount int
	// SentAt is when the message was first sent.
	SentAt time.Time
	// Attributes are the message's attributes (SQS message attributes of
	// type String): what travels with a message beside its body, such as a
	// trace context or how often it was postponed. Nil when it has none.
	Attributes map[string]string
}

// Entry is one message to send.
type Entry struct {
	Body []byte
	// Delay keeps the message invisible for this long after it is sent.
	Delay time.Duration
	// Attributes travel with the message (see Delivery.Attributes); at most
	// MaxAttributes, each name and value non-empty.
	Attributes map[string]string
}

// MaxAttributes is the most attributes a message carries (SQS's limit).
const MaxAttributes = 10

// Attributes describe a queue's configuration.
type Attributes struct {
	// VisibilityTimeout is the queue's default visibility timeout.
	VisibilityTimeout time.Duration
	// MaxReceiveCount is the redrive policy's maxReceiveCount: after that many
	// receives an unfinished message moves to the dead-letter queue. Zero means
	// the queue has no dead-letter queue.
	MaxReceiveCount int
}

// ErrInvalidReceipt is returned (per entry, or alone) for a receipt handle that
// is malformed, or no longer names a delivery the queue knows.
var ErrInvalidReceipt = errors.New("invalid receipt handle")

// ErrRejected is wrapped by the per-entry error of a batch call when the
// queue refuses the entry itself (an empty body, one too large, characters
// SQS does not carry): sending it again unchanged fails again. Every backend
// wraps it, so that a sender tells its own fault without knowing the backend.
var ErrRejected = errors.New("the queue refused the entry")

// FirstError joins the per-entry errors of a batch call (nil when all succeeded).
func FirstError(errs []error) error {
	return errors.Join(errs...)
}

// CheckAttributes reports what is wrong with a message's attributes, for a
// backend to refuse the entry (wrapping ErrRejected) before sending: more
// than MaxAttributes, or an empty name or value (SQS refuses both).
func CheckAttributes(attrs map[string]string) error {
	if len(attrs) > MaxAttributes {
		return fmt.Errorf("%d message attributes, more than %d", len(attrs), MaxAttributes)
	}
	for name, v := range attrs {
		if name == "" || v == "" {
			return fmt.Errorf("message attribute %q: empty name or value", name)
		}
	}
	return nil
}
