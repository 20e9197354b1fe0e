// Package queue holds the types shared by the queue backends (sqsqueue,
// sqlitequeue) and their users (the worker, the producer). The interfaces
// themselves are declared where they are used; every backend provides:
//
//	Receive(ctx, max int, wait time.Duration) ([]Message, error)
//	DeleteBatch(ctx, receipts []string) ([]error, error)
//	ChangeVisibility(ctx, receipt string, timeout time.Duration) error
//	SendBatch(ctx, entries []Entry) ([]error, error)
//	Attributes(ctx) (Attributes, error)
//
// The conformance suite in queuetest checks each backend against these semantics.
package queue

import (
	"errors"
	"time"
)

// MaxBatch is the most entries one SendBatch or DeleteBatch call takes, and the
// most messages one Receive returns (SQS's limit).
const MaxBatch = 10

// Message is one delivery of a queued message.
type Message struct {
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
}

// Entry is one message to send.
type Entry struct {
	Body []byte
	// Delay keeps the message invisible for this long after it is sent.
	Delay time.Duration
}

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

// FirstError joins the per-entry errors of a batch call (nil when all succeeded).
func FirstError(errs []error) error {
	return errors.Join(errs...)
}
