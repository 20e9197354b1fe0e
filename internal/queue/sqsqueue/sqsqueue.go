// Package sqsqueue is the Amazon SQS backend of the queue: it receives,
// deletes, releases and sends messages of one standard SQS queue through
// aws-sdk-go-v2, with the semantics the conformance suite in queuetest checks.
//
// It never retries: a batch call reports one error per entry, and the caller
// (the worker, the producer) decides what to try again.
package sqsqueue

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/aws/smithy-go"

	"github.com/sixpotify/top-tracks/internal/queue"
)

// API is the part of *sqs.Client the queue calls. Tests wrap a real client in
// it to inject faults.
type API interface {
	ReceiveMessage(ctx context.Context, in *sqs.ReceiveMessageInput, optFns ...func(*sqs.Options)) (*sqs.ReceiveMessageOutput, error)
	DeleteMessageBatch(ctx context.Context, in *sqs.DeleteMessageBatchInput, optFns ...func(*sqs.Options)) (*sqs.DeleteMessageBatchOutput, error)
	ChangeMessageVisibility(ctx context.Context, in *sqs.ChangeMessageVisibilityInput, optFns ...func(*sqs.Options)) (*sqs.ChangeMessageVisibilityOutput, error)
	SendMessageBatch(ctx context.Context, in *sqs.SendMessageBatchInput, optFns ...func(*sqs.Options)) (*sqs.SendMessageBatchOutput, error)
	GetQueueAttributes(ctx context.Context, in *sqs.GetQueueAttributesInput, optFns ...func(*sqs.Options)) (*sqs.GetQueueAttributesOutput, error)
}

// Options tune a Queue. The zero value uses the queue's own configuration.
type Options struct {
	// VisibilityTimeout, when positive, is asked for on every Receive instead
	// of the queue's default (rounded to whole seconds), and Attributes reports
	// it as the VisibilityTimeout, so that heartbeats follow what Receive does.
	VisibilityTimeout time.Duration
}

// Limits of SQS, in seconds.
const (
	maxWaitSeconds       = 20
	maxVisibilitySeconds = 12 * 60 * 60
	maxDelaySeconds      = 15 * 60
)

var _ queue.Queue = (*Queue)(nil)

// Queue is one SQS queue. It is safe for concurrent use.
type Queue struct {
	client API
	url    string
	opts   Options
}

// New returns the queue at queueURL, reached through client (usually an
// *sqs.Client).
func New(client API, queueURL string, opts Options) *Queue {
	return &Queue{client: client, url: queueURL, opts: opts}
}

// EntryError is the failure of one entry of a batch call, as SQS reported it.
// It wraps queue.ErrInvalidReceipt when the entry's receipt handle is invalid.
type EntryError struct {
	// Code is SQS's error code, e.g. "ReceiptHandleIsInvalid" or "InternalError".
	Code    string
	Message string
	// SenderFault is true when the entry itself is at fault: sending it again
	// unchanged fails again.
	SenderFault bool
}

func (e *EntryError) Error() string {
	fault := "server fault"
	if e.SenderFault {
		fault = "sender fault"
	}
	if e.Message == "" {
		return fmt.Sprintf("sqs entry failed: %s (%s)", e.Code, fault)
	}
	return fmt.Sprintf("sqs entry failed: %s (%s): %s", e.Code, fault, e.Message)
}

// Unwrap returns queue.ErrInvalidReceipt for a receipt-handle failure, and
// queue.ErrRejected when SQS blamed the entry itself: such an entry must not
// be retried unchanged.
func (e *EntryError) Unwrap() []error {
	var errs []error
	if isReceiptCode(e.Code, e.Message) {
		errs = append(errs, queue.ErrInvalidReceipt)
	}
	if e.SenderFault {
		errs = append(errs, queue.ErrRejected)
	}
	return errs
}

// errNoResult marks an entry the answer of a batch call mentions neither as
// successful nor as failed. It is not a sender fault: retrying is safe.
var errNoResult = errors.New("sqs: the batch answer does not mention this entry")

// Receive returns at most min(maxMessages, 10) messages, waiting up to wait (rounded
// to whole seconds, at most 20) for the first one. It asks for
// ApproximateReceiveCount and SentTimestamp.
//
// When ctx ends, Receive returns ctx's error promptly. Messages SQS handed out
// on a call that was abandoned that way are not lost: they stay invisible for
// the visibility timeout and are then delivered again.
func (q *Queue) Receive(ctx context.Context, maxMessages int, wait time.Duration) ([]queue.Delivery, error) {
	if maxMessages < 1 {
		return nil, fmt.Errorf("sqsqueue: receive: maxMessages must be positive, got %d", maxMessages)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("sqsqueue: receive: %w", err)
	}
	in := receiveInput(q.url, maxMessages, seconds(wait, maxWaitSeconds))
	in.MessageAttributeNames = []string{"All"}
	if q.opts.VisibilityTimeout > 0 {
		in.VisibilityTimeout = max(1, seconds(q.opts.VisibilityTimeout, maxVisibilitySeconds))
	}
	out, err := q.client.ReceiveMessage(ctx, in)
	if err != nil {
		if ctxErr := ctx.Err(); ctxErr != nil {
			return nil, fmt.Errorf("sqsqueue: receive: %w", ctxErr)
		}
		return nil, fmt.Errorf("sqsqueue: receive: %w", err)
	}
	msgs := make([]queue.Delivery, 0, len(out.Messages))
	for _, m := range out.Messages {
		msgs = append(msgs, toMessage(m))
	}
	return msgs, nil
}

// receiveInput asks url for at most min(maxMessages, 10) messages, waiting
// up to wait seconds, with the system attributes toMessage reads.
func receiveInput(url string, maxMessages int, wait int32) *sqs.ReceiveMessageInput {
	return &sqs.ReceiveMessageInput{
		QueueUrl:            aws.String(url),
		MaxNumberOfMessages: int32(min(maxMessages, queue.MaxBatch)),
		WaitTimeSeconds:     wait,
		MessageSystemAttributeNames: []types.MessageSystemAttributeName{
			types.MessageSystemAttributeNameApproximateReceiveCount,
			types.MessageSystemAttributeNameSentTimestamp,
		},
		// The same names through the deprecated field as well.
		//lint:ignore SA1019 local-aws-sqs reads only AttributeNames, ignoring MessageSystemAttributeNames; SQS accepts both.
		AttributeNames: []types.QueueAttributeName{
			types.QueueAttributeName(types.MessageSystemAttributeNameApproximateReceiveCount),
			types.QueueAttributeName(types.MessageSystemAttributeNameSentTimestamp),
		},
	}
}

func toMessage(m types.Message) queue.Delivery {
	msg := queue.Delivery{
		ID:      aws.ToString(m.MessageId),
		Receipt: aws.ToString(m.ReceiptHandle),
		Body:    []byte(aws.ToString(m.Body)),
		// At least this delivery, should SQS leave the count out.
		ReceiveCount: 1,
	}
	if n, err := strconv.Atoi(m.Attributes[string(types.MessageSystemAttributeNameApproximateReceiveCount)]); err == nil && n > 0 {
		msg.ReceiveCount = n
	}
	if ms, err := strconv.ParseInt(m.Attributes[string(types.MessageSystemAttributeNameSentTimestamp)], 10, 64); err == nil {
		msg.SentAt = time.UnixMilli(ms)
	}
	for name, v := range m.MessageAttributes {
		if v.StringValue == nil {
			continue // only String attributes are ours
		}
		if msg.Attributes == nil {
			msg.Attributes = make(map[string]string, len(m.MessageAttributes))
		}
		msg.Attributes[name] = *v.StringValue
	}
	return msg
}

// messageAttributes turns an entry's attributes into SQS String attributes.
func messageAttributes(attrs map[string]string) map[string]types.MessageAttributeValue {
	if len(attrs) == 0 {
		return nil
	}
	out := make(map[string]types.MessageAttributeValue, len(attrs))
	for name, v := range attrs {
		out[name] = types.MessageAttributeValue{DataType: aws.String("String"), StringValue: aws.String(v)}
	}
	return out
}

// DeleteBatch deletes the deliveries named by receipts, ten per
// DeleteMessageBatch call. errs has one element per receipt: nil when it was
// deleted, an *EntryError when SQS refused it (wrapping
// queue.ErrInvalidReceipt for a bad receipt).
//
// When a call fails as a whole, DeleteBatch stops and returns that error as
// err; the entries of that call and of the later ones carry it too, so errs[i]
// is nil only for a receipt that was deleted.
func (q *Queue) DeleteBatch(ctx context.Context, receipts []string) (errs []error, err error) {
	errs = make([]error, len(receipts))
	for start := 0; start < len(receipts); start += queue.MaxBatch {
		end := min(start+queue.MaxBatch, len(receipts))
		entries := make([]types.DeleteMessageBatchRequestEntry, 0, end-start)
		for i, r := range receipts[start:end] {
			entries = append(entries, types.DeleteMessageBatchRequestEntry{
				Id:            aws.String(strconv.Itoa(i)),
				ReceiptHandle: aws.String(r),
			})
		}
		out, err := q.client.DeleteMessageBatch(ctx, &sqs.DeleteMessageBatchInput{
			QueueUrl: aws.String(q.url),
			Entries:  entries,
		})
		if err != nil {
			err = fmt.Errorf("sqsqueue: delete message batch (entries %d to %d of %d): %w", start, end-1, len(receipts), err)
			for i := start; i < len(receipts); i++ {
				errs[i] = err
			}
			return errs, err
		}
		ok := make([]string, 0, len(out.Successful))
		for _, s := range out.Successful {
			ok = append(ok, aws.ToString(s.Id))
		}
		settle(errs[start:end], ok, out.Failed)
	}
	return errs, nil
}

// settle fills the errors of one batch call's entries (named "0".."9") from
// its answer. An entry the answer leaves out gets errNoResult.
func settle(errs []error, successful []string, failed []types.BatchResultErrorEntry) {
	for i := range errs {
		errs[i] = errNoResult
	}
	index := func(id string) (int, bool) {
		i, err := strconv.Atoi(id)
		return i, err == nil && i >= 0 && i < len(errs) && strconv.Itoa(i) == id
	}
	for _, id := range successful {
		if i, ok := index(id); ok {
			errs[i] = nil
		}
	}
	// A failure wins over a success for an entry the answer names twice.
	for _, f := range failed {
		if i, ok := index(aws.ToString(f.Id)); ok {
			errs[i] = &EntryError{Code: aws.ToString(f.Code), Message: aws.ToString(f.Message), SenderFault: f.SenderFault}
		}
	}
}

// ChangeVisibility makes the delivery named by receipt invisible for timeout
// (rounded to whole seconds) from now; zero makes it visible at once. A
// receipt that is malformed or no longer names an in-flight delivery gives an
// error wrapping queue.ErrInvalidReceipt.
func (q *Queue) ChangeVisibility(ctx context.Context, receipt string, timeout time.Duration) error {
	_, err := q.client.ChangeMessageVisibility(ctx, &sqs.ChangeMessageVisibilityInput{
		QueueUrl:          aws.String(q.url),
		ReceiptHandle:     aws.String(receipt),
		VisibilityTimeout: seconds(timeout, maxVisibilitySeconds),
	})
	if err == nil {
		return nil
	}
	var apiErr smithy.APIError
	if errors.As(err, &apiErr) && isReceiptCode(apiErr.ErrorCode(), apiErr.ErrorMessage()) {
		return fmt.Errorf("sqsqueue: change visibility: %w: %w", queue.ErrInvalidReceipt, err)
	}
	return fmt.Errorf("sqsqueue: change visibility: %w", err)
}

// isReceiptCode reports whether an SQS error code (and message) says a
// receipt handle is malformed or names no in-flight delivery.
func isReceiptCode(code, message string) bool {
	switch code {
	case "ReceiptHandleIsInvalid", "MessageNotInflight":
		return true
	case "InvalidParameterValue":
		// "Value … for parameter ReceiptHandle is invalid. Reason: Message
		// does not exist or is not available for visibility timeout change."
		return strings.Contains(message, "ReceiptHandle")
	}
	return false
}

// SendBatch sends entries, ten per SendMessageBatch call, each with its Delay
// (rounded to whole seconds, at most 15 minutes). errs has one element per
// entry: nil when it was sent, an *EntryError when SQS refused it (wrapping
// queue.ErrRejected when the entry itself is at fault). An empty body or one
// that is not valid UTF-8 is refused here with a sender fault and never sent:
// SQS would reject the one and could not carry the other byte for byte.
//
// When a call fails as a whole, SendBatch stops and returns that error as err;
// the entries of that call and of the later ones carry it too, so errs[i] is
// nil only for an entry that was sent. Nothing is retried here.
func (q *Queue) SendBatch(ctx context.Context, entries []queue.Entry) (errs []error, err error) {
	errs = make([]error, len(entries))
	// Entries refused before sending are left out of the calls; pending
	// indexes the rest.
	pending := make([]int, 0, len(entries))
	for i, e := range entries {
		switch {
		case len(e.Body) == 0:
			errs[i] = &EntryError{Code: "MissingParameter", Message: "the message body is empty", SenderFault: true}
		case !utf8.Valid(e.Body):
			errs[i] = &EntryError{Code: "InvalidMessageContents", Message: "the message body is not valid UTF-8", SenderFault: true}
		case queue.CheckAttributes(e.Attributes) != nil:
			errs[i] = &EntryError{Code: "InvalidParameterValue", Message: queue.CheckAttributes(e.Attributes).Error(), SenderFault: true}
		default:
			pending = append(pending, i)
		}
	}
	for start := 0; start < len(pending); start += queue.MaxBatch {
		chunk := pending[start:min(start+queue.MaxBatch, len(pending))]
		batch := make([]types.SendMessageBatchRequestEntry, 0, len(chunk))
		for id, i := range chunk {
			batch = append(batch, types.SendMessageBatchRequestEntry{
				Id:                aws.String(strconv.Itoa(id)),
				MessageBody:       aws.String(string(entries[i].Body)),
				DelaySeconds:      seconds(entries[i].Delay, maxDelaySeconds),
				MessageAttributes: messageAttributes(entries[i].Attributes),
			})
		}
		out, err := q.client.SendMessageBatch(ctx, &sqs.SendMessageBatchInput{
			QueueUrl: aws.String(q.url),
			Entries:  batch,
		})
		if err != nil {
			err = fmt.Errorf("sqsqueue: send message batch (after %d of %d entries): %w", start, len(pending), err)
			for _, i := range pending[start:] {
				errs[i] = err
			}
			return errs, err
		}
		ok := make([]string, 0, len(out.Successful))
		for _, s := range out.Successful {
			ok = append(ok, aws.ToString(s.Id))
		}
		chunkErrs := make([]error, len(chunk))
		settle(chunkErrs, ok, out.Failed)
		for id, i := range chunk {
			errs[i] = chunkErrs[id]
		}
	}
	return errs, nil
}

// Attributes returns the queue's visibility timeout (or Options'
// VisibilityTimeout when set) and its redrive policy's maxReceiveCount (zero
// without a redrive policy).
func (q *Queue) Attributes(ctx context.Context) (queue.Attributes, error) {
	out, err := q.client.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{
		QueueUrl: aws.String(q.url),
		AttributeNames: []types.QueueAttributeName{
			types.QueueAttributeNameVisibilityTimeout,
			types.QueueAttributeNameRedrivePolicy,
		},
	})
	if err != nil {
		return queue.Attributes{}, fmt.Errorf("sqsqueue: get queue attributes: %w", err)
	}
	var attrs queue.Attributes
	if q.opts.VisibilityTimeout > 0 {
		attrs.VisibilityTimeout = time.Duration(max(1, seconds(q.opts.VisibilityTimeout, maxVisibilitySeconds))) * time.Second
	} else {
		v := out.Attributes[string(types.QueueAttributeNameVisibilityTimeout)]
		s, err := strconv.Atoi(v)
		if err != nil || s < 0 {
			return queue.Attributes{}, fmt.Errorf("sqsqueue: get queue attributes: VisibilityTimeout %q is not a number of seconds", v)
		}
		attrs.VisibilityTimeout = time.Duration(s) * time.Second
	}
	if p := out.Attributes[string(types.QueueAttributeNameRedrivePolicy)]; p != "" {
		n, err := maxReceiveCount(p)
		if err != nil {
			return queue.Attributes{}, fmt.Errorf("sqsqueue: get queue attributes: RedrivePolicy: %w", err)
		}
		attrs.MaxReceiveCount = n
	}
	return attrs, nil
}

// maxReceiveCount reads maxReceiveCount from a RedrivePolicy, where it may be
// a JSON number or a string holding one (both are accepted when a queue is
// configured, and SQS echoes what it was given).
func maxReceiveCount(policy string) (int, error) {
	var p struct {
		MaxReceiveCount json.RawMessage `json:"maxReceiveCount"`
	}
	if err := json.Unmarshal([]byte(policy), &p); err != nil {
		return 0, fmt.Errorf("not a JSON object: %w", err)
	}
	raw := strings.Trim(string(p.MaxReceiveCount), `"`)
	n, err := strconv.Atoi(raw)
	if err != nil || n < 1 {
		return 0, fmt.Errorf("maxReceiveCount %s is not a positive integer", p.MaxReceiveCount)
	}
	return n, nil
}

// seconds rounds d to whole seconds within [0, limit].
func seconds(d time.Duration, limit int32) int32 {
	s := (d + time.Second/2) / time.Second
	return int32(min(max(s, 0), time.Duration(limit)))
}
