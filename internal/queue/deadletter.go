package queue

import (
	"context"
	"errors"
	"time"
)

// Counts are a queue's messages by state, as SQS's approximate attributes
// tell them: visible (ready to be received), in flight (received, not yet
// deleted or given back) and delayed (sent with a delay not yet over).
type Counts struct {
	Visible  int `json:"visible"`
	InFlight int `json:"in_flight"`
	Delayed  int `json:"delayed"`
}

// Total is every message the counts hold.
func (c Counts) Total() int { return c.Visible + c.InFlight + c.Delayed }

// Counter is the optional capability of a queue that counts its messages
// (for `producer status`). SQS's counts are approximate.
type Counter interface {
	Counts(ctx context.Context) (Counts, error)
}

// ErrNoDeadLetterQueue is returned by a DeadLetterer's methods when the
// queue has no dead-letter queue: no redrive policy, or one disabled.
var ErrNoDeadLetterQueue = errors.New("the queue has no dead-letter queue (no redrive policy)")

// DeadLetterer is the optional capability of a queue that looks into its
// dead-letter queue and sends its messages back (for `producer dlq`). Each
// method returns an error wrapping ErrNoDeadLetterQueue when the queue has
// none.
type DeadLetterer interface {
	// DeadLetterCounts counts the dead-letter queue's messages.
	DeadLetterCounts(ctx context.Context) (Counts, error)
	// PeekDeadLetters returns up to limit of the dead-letter queue's
	// messages, oldest first where the queue can tell, and leaves them there. The deliveries carry no receipt;
	// ReceiveCount is how often the message was received before the peek.
	PeekDeadLetters(ctx context.Context, limit int) ([]Delivery, error)
	// Redrive moves the dead-letter queue's messages back to the queue,
	// each once, reporting its progress, until none is left or ctx ends
	// (then it stops the move and returns ctx's error with what was
	// moved). Running it again after an interruption moves the rest.
	Redrive(ctx context.Context, opts RedriveOptions) (RedriveProgress, error)
}

// RedriveOptions tune a Redrive.
type RedriveOptions struct {
	// MaxPerSecond is the most messages moved a second; 0 leaves it to
	// the queue (SQS: 500 a second).
	MaxPerSecond int
	// Poll is how often the progress of a move the service runs is read
	// (default 1s).
	Poll time.Duration
	// Progress, when set, is called with the progress as it changes.
	Progress func(RedriveProgress)
}

// RedriveProgress is how far a Redrive has come.
type RedriveProgress struct {
	// Moved is how many messages went back to the queue.
	Moved int
	// ToMove is how many the move set out to move (SQS's estimate).
	ToMove int
	// Status is the move's state: RUNNING, COMPLETED, CANCELLED or FAILED
	// (SQS's message-move task states).
	Status string
	// Note says more: SQS's FailureReason, or that the move continued a
	// task already running.
	Note string
}

// States of a RedriveProgress.
const (
	RedriveRunning   = "RUNNING"
	RedriveCompleted = "COMPLETED"
	RedriveCancelled = "CANCELLED"
	RedriveFailed    = "FAILED"
)
