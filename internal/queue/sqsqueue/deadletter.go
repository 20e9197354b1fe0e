package sqsqueue

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/arn"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/sixpotify/top-tracks/internal/queue"
)

var (
	_ queue.Counter      = (*Queue)(nil)
	_ queue.DeadLetterer = (*Queue)(nil)
)

// OpsAPI is the part of *sqs.Client the operator's calls (Counts and the
// queue.DeadLetterer methods) use beyond API. A Queue whose client lacks it
// answers them with an error.
type OpsAPI interface {
	GetQueueUrl(ctx context.Context, in *sqs.GetQueueUrlInput, optFns ...func(*sqs.Options)) (*sqs.GetQueueUrlOutput, error)
	ChangeMessageVisibilityBatch(ctx context.Context, in *sqs.ChangeMessageVisibilityBatchInput, optFns ...func(*sqs.Options)) (*sqs.ChangeMessageVisibilityBatchOutput, error)
	StartMessageMoveTask(ctx context.Context, in *sqs.StartMessageMoveTaskInput, optFns ...func(*sqs.Options)) (*sqs.StartMessageMoveTaskOutput, error)
	ListMessageMoveTasks(ctx context.Context, in *sqs.ListMessageMoveTasksInput, optFns ...func(*sqs.Options)) (*sqs.ListMessageMoveTasksOutput, error)
	CancelMessageMoveTask(ctx context.Context, in *sqs.CancelMessageMoveTaskInput, optFns ...func(*sqs.Options)) (*sqs.CancelMessageMoveTaskOutput, error)
}

var _ OpsAPI = (*sqs.Client)(nil)

// PeekVisibility is how long PeekDeadLetters keeps the messages it reads
// invisible at most: it gives each back (visibility 0) as soon as the
// listing is read, and SQS gives back those it could not after this long.
const PeekVisibility = 30 * time.Second

// giveBackTimeout bounds giving peeked messages back, even after ctx ended.
const giveBackTimeout = 10 * time.Second

func (q *Queue) ops() (OpsAPI, error) {
	o, ok := q.client.(OpsAPI)
	if !ok {
		return nil, fmt.Errorf("sqsqueue: the SQS client %T cannot look into a dead-letter queue", q.client)
	}
	return o, nil
}

// Counts reads ApproximateNumberOfMessages, ApproximateNumberOfMessagesNotVisible
// and ApproximateNumberOfMessagesDelayed: SQS's estimates.
func (q *Queue) Counts(ctx context.Context) (queue.Counts, error) {
	return q.counts(ctx, q.url)
}

func (q *Queue) counts(ctx context.Context, url string) (queue.Counts, error) {
	out, err := q.client.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{
		QueueUrl: aws.String(url),
		AttributeNames: []types.QueueAttributeName{
			types.QueueAttributeNameApproximateNumberOfMessages,
			types.QueueAttributeNameApproximateNumberOfMessagesNotVisible,
			types.QueueAttributeNameApproximateNumberOfMessagesDelayed,
		},
	})
	if err != nil {
		return queue.Counts{}, fmt.Errorf("sqsqueue: count the messages of %s: %w", url, err)
	}
	var c queue.Counts
	for _, f := range []struct {
		name types.QueueAttributeName
		n    *int
	}{
		{types.QueueAttributeNameApproximateNumberOfMessages, &c.Visible},
		{types.QueueAttributeNameApproximateNumberOfMessagesNotVisible, &c.InFlight},
		{types.QueueAttributeNameApproximateNumberOfMessagesDelayed, &c.Delayed},
	} {
		v := out.Attributes[string(f.name)]
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return queue.Counts{}, fmt.Errorf("sqsqueue: count the messages of %s: %s %q is not a count", url, f.name, v)
		}
		*f.n = n
	}
	return c, nil
}

// deadLetterQueue is where the queue's redrive policy sends messages.
type deadLetterQueue struct {
	url, arn string
	laneARN  string // the queue's own ARN
}

// deadLetterQueue reads the queue's RedrivePolicy and finds its
// deadLetterTargetArn's URL (GetQueueUrl, by name and owner).
func (q *Queue) deadLetterQueue(ctx context.Context) (deadLetterQueue, error) {
	out, err := q.client.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{
		QueueUrl:       aws.String(q.url),
		AttributeNames: []types.QueueAttributeName{types.QueueAttributeNameRedrivePolicy, types.QueueAttributeNameQueueArn},
	})
	if err != nil {
		return deadLetterQueue{}, fmt.Errorf("sqsqueue: read the redrive policy of %s: %w", q.url, err)
	}
	policy := out.Attributes[string(types.QueueAttributeNameRedrivePolicy)]
	if policy == "" {
		return deadLetterQueue{}, fmt.Errorf("sqsqueue: %s: %w", q.url, queue.ErrNoDeadLetterQueue)
	}
	target, err := deadLetterTarget(policy)
	if err != nil {
		return deadLetterQueue{}, fmt.Errorf("sqsqueue: %s: RedrivePolicy: %w", q.url, err)
	}
	o, err := q.ops()
	if err != nil {
		return deadLetterQueue{}, err
	}
	in := &sqs.GetQueueUrlInput{QueueName: aws.String(target.Resource)}
	if target.AccountID != "" {
		in.QueueOwnerAWSAccountId = aws.String(target.AccountID)
	}
	u, err := o.GetQueueUrl(ctx, in)
	if err != nil {
		return deadLetterQueue{}, fmt.Errorf("sqsqueue: find the dead-letter queue %s of %s: %w", target, q.url, err)
	}
	return deadLetterQueue{
		url:     aws.ToString(u.QueueUrl),
		arn:     target.String(),
		laneARN: out.Attributes[string(types.QueueAttributeNameQueueArn)],
	}, nil
}

// deadLetterTarget reads the deadLetterTargetArn of a RedrivePolicy.
func deadLetterTarget(policy string) (arn.ARN, error) {
	var p struct {
		Target string `json:"deadLetterTargetArn"`
	}
	if err := json.Unmarshal([]byte(policy), &p); err != nil {
		return arn.ARN{}, fmt.Errorf("not a JSON object: %w", err)
	}
	if p.Target == "" {
		return arn.ARN{}, errors.New("no deadLetterTargetArn")
	}
	a, err := arn.Parse(p.Target)
	if err != nil || a.Service != "sqs" || a.Resource == "" {
		return arn.ARN{}, fmt.Errorf("deadLetterTargetArn %q is not an SQS queue's ARN", p.Target)
	}
	return a, nil
}

// DeadLetterQueueURL returns the URL of the queue's dead-letter queue, or an
// error wrapping queue.ErrNoDeadLetterQueue.
func (q *Queue) DeadLetterQueueURL(ctx context.Context) (string, error) {
	d, err := q.deadLetterQueue(ctx)
	return d.url, err
}

// DeadLetterCounts counts the dead-letter queue's messages (SQS's estimates).
func (q *Queue) DeadLetterCounts(ctx context.Context) (queue.Counts, error) {
	d, err := q.deadLetterQueue(ctx)
	if err != nil {
		return queue.Counts{}, err
	}
	return q.counts(ctx, d.url)
}

// PeekDeadLetters receives up to limit messages of the dead-letter queue with
// a visibility of PeekVisibility, so that none is read twice, and then gives
// every one back at once (ChangeMessageVisibility 0), even when ctx has
// ended. SQS has no read that leaves a message untouched: each peek counts
// one receive (ApproximateReceiveCount), and while the listing runs the
// messages are invisible to anyone else. The ReceiveCount returned leaves
// the peek's own receive out.
func (q *Queue) PeekDeadLetters(ctx context.Context, limit int) (msgs []queue.Delivery, err error) {
	d, err := q.deadLetterQueue(ctx)
	if err != nil {
		return nil, err
	}
	o, err := q.ops()
	if err != nil {
		return nil, err
	}
	var receipts []string
	defer func() {
		gctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), giveBackTimeout)
		defer cancel()
		if gerr := giveBack(gctx, o, d.url, receipts); gerr != nil && err == nil {
			err = gerr
		}
	}()
	seen := map[string]bool{}
	for len(msgs) < limit {
		// A short poll may miss messages; a wait of one second asks every server.
		in := receiveInput(d.url, limit-len(msgs), 1)
		in.VisibilityTimeout = int32(PeekVisibility / time.Second)
		out, err := q.client.ReceiveMessage(ctx, in)
		if err != nil {
			return msgs, fmt.Errorf("sqsqueue: peek at the dead-letter queue %s: %w", d.url, err)
		}
		if len(out.Messages) == 0 {
			break
		}
		for _, m := range out.Messages {
			receipts = append(receipts, aws.ToString(m.ReceiptHandle))
			dm := toMessage(m)
			if seen[dm.ID] {
				continue
			}
			seen[dm.ID] = true
			dm.Receipt = ""
			dm.ReceiveCount = max(0, dm.ReceiveCount-1)
			msgs = append(msgs, dm)
		}
	}
	return msgs, nil
}

// giveBack makes the deliveries named by receipts visible again at once.
func giveBack(ctx context.Context, o OpsAPI, url string, receipts []string) error {
	var errs []error
	for start := 0; start < len(receipts); start += queue.MaxBatch {
		chunk := receipts[start:min(start+queue.MaxBatch, len(receipts))]
		entries := make([]types.ChangeMessageVisibilityBatchRequestEntry, len(chunk))
		for i, r := range chunk {
			entries[i] = types.ChangeMessageVisibilityBatchRequestEntry{
				Id: aws.String(strconv.Itoa(i)), ReceiptHandle: aws.String(r), VisibilityTimeout: 0,
			}
		}
		out, err := o.ChangeMessageVisibilityBatch(ctx, &sqs.ChangeMessageVisibilityBatchInput{QueueUrl: aws.String(url), Entries: entries})
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for _, f := range out.Failed {
			errs = append(errs, &EntryError{Code: aws.ToString(f.Code), Message: aws.ToString(f.Message), SenderFault: f.SenderFault})
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("sqsqueue: give peeked messages back to %s (they return within %v): %w", url, PeekVisibility, err)
	}
	return nil
}

// cancelTimeout bounds cancelling a move task once ctx has ended, and
// waiting for it to stop.
const cancelTimeout = 15 * time.Second

// Redrive moves the dead-letter queue's messages back to this queue with
// SQS's own message-move task (StartMessageMoveTask from the dead-letter
// queue's ARN to this queue's, at opts.MaxPerSecond), reading its progress
// with ListMessageMoveTasks every opts.Poll until it ends. When a task of
// this dead-letter queue is already running (one interrupted whose cancel
// was lost), it follows that one. When ctx ends it cancels the task
// (CancelMessageMoveTask) and waits for it to stop: the messages not moved
// stay in the dead-letter queue, and running Redrive again moves them.
func (q *Queue) Redrive(ctx context.Context, opts queue.RedriveOptions) (queue.RedriveProgress, error) {
	if opts.Poll <= 0 {
		opts.Poll = time.Second
	}
	d, err := q.deadLetterQueue(ctx)
	if err != nil {
		return queue.RedriveProgress{}, err
	}
	o, err := q.ops()
	if err != nil {
		return queue.RedriveProgress{}, err
	}
	in := &sqs.StartMessageMoveTaskInput{SourceArn: aws.String(d.arn), DestinationArn: aws.String(d.laneARN)}
	if opts.MaxPerSecond > 0 {
		in.MaxNumberOfMessagesPerSecond = aws.Int32(int32(min(opts.MaxPerSecond, 500)))
	}
	note := ""
	var handle string
	started, startErr := o.StartMessageMoveTask(ctx, in)
	if startErr == nil {
		handle = aws.ToString(started.TaskHandle)
	} else {
		// A task of this source already running is the only one SQS
		// allows: follow it.
		cur, err := latestTask(ctx, o, d.arn)
		if err != nil || cur == nil || aws.ToString(cur.Status) != queue.RedriveRunning {
			return queue.RedriveProgress{}, fmt.Errorf("sqsqueue: start moving %s back to %s: %w", d.url, q.url, startErr)
		}
		handle, note = aws.ToString(cur.TaskHandle), "continued the move task already running"
	}
	var last queue.RedriveProgress
	report := func(e *types.ListMessageMoveTasksResultEntry) {
		p := progressOf(e)
		if p.Note == "" {
			p.Note = note
		}
		if p != last && opts.Progress != nil {
			opts.Progress(p)
		}
		last = p
	}
	t := time.NewTicker(opts.Poll)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return q.cancelMove(ctx, o, d.arn, handle, report, &last)
		case <-t.C:
		}
		e, err := latestTask(ctx, o, d.arn)
		if err != nil {
			if ctx.Err() != nil {
				return q.cancelMove(ctx, o, d.arn, handle, report, &last)
			}
			return last, fmt.Errorf("sqsqueue: read the progress of the move from %s: %w", d.url, err)
		}
		if e == nil {
			continue
		}
		report(e)
		switch last.Status {
		case queue.RedriveCompleted:
			return last, nil
		case queue.RedriveFailed, queue.RedriveCancelled:
			return last, fmt.Errorf("sqsqueue: the move from %s ended %s %s", d.url, last.Status, last.Note)
		}
	}
}

// cancelMove cancels the task after ctx ended and waits for it to stop,
// returning ctx's error and the last progress.
func (q *Queue) cancelMove(ctx context.Context, o OpsAPI, source, handle string,
	report func(*types.ListMessageMoveTasksResultEntry), last *queue.RedriveProgress) (queue.RedriveProgress, error) {
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cancelTimeout)
	defer cancel()
	if _, err := o.CancelMessageMoveTask(cctx, &sqs.CancelMessageMoveTaskInput{TaskHandle: aws.String(handle)}); err != nil {
		return *last, fmt.Errorf("%w; and cancelling the move task failed (it may still be running: `producer dlq redrive` again follows it): %w", ctx.Err(), err)
	}
	for {
		e, err := latestTask(cctx, o, source)
		if err != nil {
			return *last, fmt.Errorf("%w; the move task was cancelled, its end not seen: %w", ctx.Err(), err)
		}
		if e != nil {
			report(e)
			if s := last.Status; s != queue.RedriveRunning && s != "CANCELLING" {
				return *last, ctx.Err()
			}
		}
		select {
		case <-cctx.Done():
			return *last, fmt.Errorf("%w; the move task was cancelled, its end not seen", ctx.Err())
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// latestTask returns the most recent move task of source, or nil.
func latestTask(ctx context.Context, o OpsAPI, source string) (*types.ListMessageMoveTasksResultEntry, error) {
	out, err := o.ListMessageMoveTasks(ctx, &sqs.ListMessageMoveTasksInput{SourceArn: aws.String(source), MaxResults: aws.Int32(1)})
	if err != nil {
		return nil, err
	}
	if len(out.Results) == 0 {
		return nil, nil
	}
	return &out.Results[0], nil
}

func progressOf(e *types.ListMessageMoveTasksResultEntry) queue.RedriveProgress {
	return queue.RedriveProgress{
		Moved:  int(e.ApproximateNumberOfMessagesMoved),
		ToMove: int(aws.ToInt64(e.ApproximateNumberOfMessagesToMove)),
		Status: aws.ToString(e.Status),
		Note:   aws.ToString(e.FailureReason),
	}
}
