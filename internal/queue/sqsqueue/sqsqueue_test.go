package sqsqueue_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/aws/smithy-go"
	"github.com/google/go-cmp/cmp"

	"github.com/sixpotify/top-tracks/internal/queue"
	"github.com/sixpotify/top-tracks/internal/queue/queuetest"
	"github.com/sixpotify/top-tracks/internal/queue/sqsqueue"
	"github.com/sixpotify/top-tracks/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

func TestConformance(t *testing.T) {
	client := testenv.SQSClient(t)
	queuetest.Run(t, func(t *testing.T, opts queuetest.QueueOptions) queuetest.Instance {
		url, dlqURL := createQueue(t, client, opts, strconv.Itoa(opts.MaxReceiveCount))
		inst := queuetest.Instance{Queue: sqsqueue.New(client, url, sqsqueue.Options{})}
		if dlqURL != "" {
			inst.DeadLetters = drainFunc(sqsqueue.New(client, dlqURL, sqsqueue.Options{}))
		}
		return inst
	}, queuetest.Features{
		// local-aws-sqs counts every ChangeMessageVisibility as a receive, and
		// moves a message to the dead-letter queue when its visibility expires.
		ChangeVisibilityCountsAsReceive: true,
		DeadLetterOnExpiry:              true,
		CountsVisibleIncludeInFlight:    true,
	})
}

// drainFunc receives and deletes everything in the dead-letter queue dlq.
func drainFunc(dlq *sqsqueue.Queue) func(ctx context.Context) ([][]byte, error) {
	return func(ctx context.Context) ([][]byte, error) {
		var bodies [][]byte
		for {
			msgs, err := dlq.Receive(ctx, queue.MaxBatch, 0)
			if err != nil {
				return bodies, err
			}
			if len(msgs) == 0 {
				return bodies, nil
			}
			receipts := make([]string, len(msgs))
			for i, m := range msgs {
				bodies = append(bodies, m.Body)
				receipts[i] = m.Receipt
			}
			errs, err := dlq.DeleteBatch(ctx, receipts)
			if err == nil {
				err = queue.FirstError(errs)
			}
			if err != nil {
				return bodies, err
			}
		}
	}
}

var (
	queueSeq   atomic.Int64
	unsafeName = regexp.MustCompile(`[^A-Za-z0-9_-]+`)
)

// createQueue makes a queue with a unique name, and its dead-letter queue when
// opts.MaxReceiveCount is positive, with the redrive policy's maxReceiveCount
// written as maxReceiveCount (a JSON number, or a quoted string). Both are
// deleted when t ends.
func createQueue(t *testing.T, client *sqs.Client, opts queuetest.QueueOptions, maxReceiveCount string) (url, dlqURL string) {
	t.Helper()
	ctx := testenv.Context(t)
	name := fmt.Sprintf("q%d-%s", queueSeq.Add(1), unsafeName.ReplaceAllString(t.Name(), "-"))
	name = name[:min(len(name), 70)]
	attrs := map[string]string{
		string(types.QueueAttributeNameVisibilityTimeout): strconv.Itoa(int(opts.VisibilityTimeout / time.Second)),
	}
	if opts.MaxReceiveCount > 0 {
		var policy string
		dlqURL, policy = testenv.CreateDeadLetterQueue(ctx, t, client, name+"-dlq", json.RawMessage(maxReceiveCount))
		attrs[string(types.QueueAttributeNameRedrivePolicy)] = policy
	}
	return testenv.CreateQueue(ctx, t, client, name, attrs), dlqURL
}

// faultyAPI passes calls to the real client unless a hook is set.
type faultyAPI struct {
	sqsqueue.API
	receiveMessage          func(context.Context, *sqs.ReceiveMessageInput) (*sqs.ReceiveMessageOutput, error)
	deleteMessageBatch      func(context.Context, *sqs.DeleteMessageBatchInput) (*sqs.DeleteMessageBatchOutput, error)
	changeMessageVisibility func(context.Context, *sqs.ChangeMessageVisibilityInput) (*sqs.ChangeMessageVisibilityOutput, error)
	sendMessageBatch        func(context.Context, *sqs.SendMessageBatchInput) (*sqs.SendMessageBatchOutput, error)
	getQueueAttributes      func(context.Context, *sqs.GetQueueAttributesInput) (*sqs.GetQueueAttributesOutput, error)
}

func (f *faultyAPI) ReceiveMessage(ctx context.Context, in *sqs.ReceiveMessageInput, opts ...func(*sqs.Options)) (*sqs.ReceiveMessageOutput, error) {
	if f.receiveMessage != nil {
		return f.receiveMessage(ctx, in)
	}
	return f.API.ReceiveMessage(ctx, in, opts...)
}

func (f *faultyAPI) DeleteMessageBatch(ctx context.Context, in *sqs.DeleteMessageBatchInput, opts ...func(*sqs.Options)) (*sqs.DeleteMessageBatchOutput, error) {
	if f.deleteMessageBatch != nil {
		return f.deleteMessageBatch(ctx, in)
	}
	return f.API.DeleteMessageBatch(ctx, in, opts...)
}

func (f *faultyAPI) ChangeMessageVisibility(ctx context.Context, in *sqs.ChangeMessageVisibilityInput, opts ...func(*sqs.Options)) (*sqs.ChangeMessageVisibilityOutput, error) {
	if f.changeMessageVisibility != nil {
		return f.changeMessageVisibility(ctx, in)
	}
	return f.API.ChangeMessageVisibility(ctx, in, opts...)
}

func (f *faultyAPI) SendMessageBatch(ctx context.Context, in *sqs.SendMessageBatchInput, opts ...func(*sqs.Options)) (*sqs.SendMessageBatchOutput, error) {
	if f.sendMessageBatch != nil {
		return f.sendMessageBatch(ctx, in)
	}
	return f.API.SendMessageBatch(ctx, in, opts...)
}

func (f *faultyAPI) GetQueueAttributes(ctx context.Context, in *sqs.GetQueueAttributesInput, opts ...func(*sqs.Options)) (*sqs.GetQueueAttributesOutput, error) {
	if f.getQueueAttributes != nil {
		return f.getQueueAttributes(ctx, in)
	}
	return f.API.GetQueueAttributes(ctx, in, opts...)
}

func TestReceiveRequest(t *testing.T) {
	t.Parallel()
	tests := []struct {
		max                int
		wait               time.Duration
		opts               sqsqueue.Options
		wantMax, wantWait  int32
		wantVisibilitySecs int32
	}{
		{max: 1, wait: 0, wantMax: 1, wantWait: 0},
		{max: 25, wait: 1500 * time.Millisecond, wantMax: 10, wantWait: 2},
		{max: 10, wait: 25 * time.Second, wantMax: 10, wantWait: 20},
		{max: 3, wait: -time.Second, wantMax: 3, wantWait: 0},
		{max: 5, wait: 400 * time.Millisecond, wantMax: 5, wantWait: 0},
		{max: 5, wait: time.Second, opts: sqsqueue.Options{VisibilityTimeout: 1500 * time.Millisecond}, wantMax: 5, wantWait: 1, wantVisibilitySecs: 2},
		{max: 5, wait: time.Second, opts: sqsqueue.Options{VisibilityTimeout: time.Millisecond}, wantMax: 5, wantWait: 1, wantVisibilitySecs: 1},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("max=%d,wait=%v,visibility=%v", tt.max, tt.wait, tt.opts.VisibilityTimeout), func(t *testing.T) {
			var got *sqs.ReceiveMessageInput
			api := &faultyAPI{receiveMessage: func(_ context.Context, in *sqs.ReceiveMessageInput) (*sqs.ReceiveMessageOutput, error) {
				got = in
				return &sqs.ReceiveMessageOutput{}, nil
			}}
			q := sqsqueue.New(api, "https://sqs.us-east-1.amazonaws.com/123456789012/q", tt.opts)
			if _, err := q.Receive(t.Context(), tt.max, tt.wait); err != nil {
				t.Fatalf("Receive: %v", err)
			}
			if got.MaxNumberOfMessages != tt.wantMax || got.WaitTimeSeconds != tt.wantWait || got.VisibilityTimeout != tt.wantVisibilitySecs {
				t.Errorf("MaxNumberOfMessages, WaitTimeSeconds, VisibilityTimeout = %d, %d, %d; want %d, %d, %d",
					got.MaxNumberOfMessages, got.WaitTimeSeconds, got.VisibilityTimeout, tt.wantMax, tt.wantWait, tt.wantVisibilitySecs)
			}
			want := []string{"ApproximateReceiveCount", "SentTimestamp"}
			var names, systemNames []string
			//lint:ignore SA1019 local-aws-sqs reads only the deprecated field; the request must carry it.
			for _, n := range got.AttributeNames {
				names = append(names, string(n))
			}
			for _, n := range got.MessageSystemAttributeNames {
				systemNames = append(systemNames, string(n))
			}
			if diff := cmp.Diff(names, want); diff != "" {
				t.Errorf("AttributeNames (-got +want):\n%s", diff)
			}
			if diff := cmp.Diff(systemNames, want); diff != "" {
				t.Errorf("MessageSystemAttributeNames (-got +want):\n%s", diff)
			}
		})
	}

	t.Run("max=0", func(t *testing.T) {
		api := &faultyAPI{receiveMessage: func(context.Context, *sqs.ReceiveMessageInput) (*sqs.ReceiveMessageOutput, error) {
			t.Error("ReceiveMessage called")
			return &sqs.ReceiveMessageOutput{}, nil
		}}
		q := sqsqueue.New(api, "https://sqs.us-east-1.amazonaws.com/123456789012/q", sqsqueue.Options{})
		if _, err := q.Receive(t.Context(), 0, time.Second); err == nil {
			t.Error("Receive(max 0) succeeded, want an error")
		}
	})
}

func TestReceiveConvertsMessages(t *testing.T) {
	t.Parallel()
	sent := time.UnixMilli(1_700_000_000_123)
	api := &faultyAPI{receiveMessage: func(context.Context, *sqs.ReceiveMessageInput) (*sqs.ReceiveMessageOutput, error) {
		return &sqs.ReceiveMessageOutput{Messages: []types.Message{
			{
				MessageId: aws.String("m1"), ReceiptHandle: aws.String("r1"), Body: aws.String("héllo"),
				Attributes: map[string]string{"ApproximateReceiveCount": "3", "SentTimestamp": "1700000000123"},
			},
			// Without attributes: at least this delivery, and no send time.
			{MessageId: aws.String("m2"), ReceiptHandle: aws.String("r2"), Body: aws.String("")},
		}}, nil
	}}
	q := sqsqueue.New(api, "https://sqs.us-east-1.amazonaws.com/123456789012/q", sqsqueue.Options{})
	got, err := q.Receive(t.Context(), 10, 0)
	if err != nil {
		t.Fatalf("Receive: %v", err)
	}
	want := []queue.Delivery{
		{ID: "m1", Receipt: "r1", Body: []byte("héllo"), ReceiveCount: 3, SentAt: sent},
		{ID: "m2", Receipt: "r2", Body: []byte{}, ReceiveCount: 1},
	}
	if diff := cmp.Diff(got, want); diff != "" {
		t.Errorf("messages (-got +want):\n%s", diff)
	}
}

func TestReceiveCancelledDuringCall(t *testing.T) {
	t.Parallel()
	// The SDK reports a cancelled call in its own words; Receive reports the
	// context's error.
	api := &faultyAPI{receiveMessage: func(ctx context.Context, _ *sqs.ReceiveMessageInput) (*sqs.ReceiveMessageOutput, error) {
		<-ctx.Done()
		return nil, &smithy.OperationError{ServiceID: "SQS", OperationName: "ReceiveMessage", Err: errors.New("request canceled")}
	}}
	q := sqsqueue.New(api, "https://sqs.us-east-1.amazonaws.com/123456789012/q", sqsqueue.Options{})
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	msgs, err := q.Receive(ctx, 10, 20*time.Second)
	if !errors.Is(err, context.DeadlineExceeded) || len(msgs) != 0 {
		t.Errorf("Receive = %d messages, %v; want none and context.DeadlineExceeded", len(msgs), err)
	}
}

func TestReceiveCancelledLongPoll(t *testing.T) {
	t.Parallel()
	client := testenv.SQSClient(t)
	url, _ := createQueue(t, client, queuetest.QueueOptions{VisibilityTimeout: time.Second}, "")
	q := sqsqueue.New(client, url, sqsqueue.Options{})

	ctx, cancel := context.WithCancel(testenv.Context(t))
	timer := time.AfterFunc(100*time.Millisecond, cancel)
	defer timer.Stop()
	start := time.Now()
	msgs, err := q.Receive(ctx, 10, 20*time.Second)
	if !errors.Is(err, context.Canceled) || len(msgs) != 0 {
		t.Errorf("Receive = %d messages, %v; want none and context.Canceled", len(msgs), err)
	}
	if elapsed := time.Since(start); elapsed > 10*time.Second {
		t.Errorf("Receive cancelled 100ms into a 20s long poll returned after %v", elapsed)
	}
}

func TestDeleteBatchPartialFailure(t *testing.T) {
	t.Parallel()
	client := testenv.SQSClient(t)
	url, _ := createQueue(t, client, queuetest.QueueOptions{VisibilityTimeout: time.Second}, "")
	ctx := testenv.Context(t)
	// Entry "1" of every call fails with a server fault and is not deleted.
	api := &faultyAPI{API: client, deleteMessageBatch: func(ctx context.Context, in *sqs.DeleteMessageBatchInput) (*sqs.DeleteMessageBatchOutput, error) {
		kept := slices.DeleteFunc(slices.Clone(in.Entries), func(e types.DeleteMessageBatchRequestEntry) bool { return aws.ToString(e.Id) == "1" })
		out, err := client.DeleteMessageBatch(ctx, &sqs.DeleteMessageBatchInput{QueueUrl: in.QueueUrl, Entries: kept})
		if err != nil {
			return nil, err
		}
		out.Failed = append(out.Failed, types.BatchResultErrorEntry{
			Id: aws.String("1"), Code: aws.String("InternalError"), Message: aws.String("injected"), SenderFault: false,
		})
		return out, nil
	}}
	q := sqsqueue.New(api, url, sqsqueue.Options{})
	sendBodies(ctx, t, q, "a", "b", "c")
	got := receiveN(ctx, t, q, 3)

	errs, err := q.DeleteBatch(ctx, receiptsOf(got))
	if err != nil {
		t.Fatalf("DeleteBatch: %v", err)
	}
	if len(errs) != 3 || errs[0] != nil || errs[2] != nil {
		t.Fatalf("DeleteBatch errors = %v, want only entry 1 to fail", errs)
	}
	var entryErr *sqsqueue.EntryError
	if !errors.As(errs[1], &entryErr) || entryErr.Code != "InternalError" || entryErr.SenderFault {
		t.Errorf("entry 1: %#v, want an *EntryError InternalError, not a sender fault", errs[1])
	}
	if errors.Is(errs[1], queue.ErrInvalidReceipt) || errors.Is(errs[1], queue.ErrRejected) {
		t.Errorf("entry 1: %v reads as an invalid receipt or a sender fault", errs[1])
	}

	// The failed entry comes back; the others are gone.
	again := receiveN(ctx, t, q, 1)
	if again[0].ID != got[1].ID {
		t.Errorf("redelivered %q, want the message whose delete failed, %q", again[0].Body, got[1].Body)
	}
}

func TestDeleteBatchAnswerMissesAnEntry(t *testing.T) {
	t.Parallel()
	// SQS answers for entries "0" and "2" only, and names an Id it was not sent.
	api := &faultyAPI{deleteMessageBatch: func(_ context.Context, in *sqs.DeleteMessageBatchInput) (*sqs.DeleteMessageBatchOutput, error) {
		return &sqs.DeleteMessageBatchOutput{Successful: []types.DeleteMessageBatchResultEntry{
			{Id: aws.String("0")}, {Id: aws.String("2")}, {Id: aws.String("7")}, {Id: aws.String("02")},
		}}, nil
	}}
	q := sqsqueue.New(api, "https://sqs.us-east-1.amazonaws.com/123456789012/q", sqsqueue.Options{})
	errs, err := q.DeleteBatch(t.Context(), []string{"r0", "r1", "r2", "r3"})
	if err != nil {
		t.Fatalf("DeleteBatch: %v", err)
	}
	if len(errs) != 4 || errs[0] != nil || errs[1] == nil || errs[2] != nil || errs[3] == nil {
		t.Fatalf("DeleteBatch errors = %v, want entries 1 and 3 to fail", errs)
	}
	if errors.Is(errs[1], queue.ErrRejected) {
		t.Errorf("entry 1: %v reads as a sender fault", errs[1])
	}
}

func TestDeleteBatchCallFails(t *testing.T) {
	t.Parallel()
	client := testenv.SQSClient(t)
	url, _ := createQueue(t, client, queuetest.QueueOptions{VisibilityTimeout: 2 * time.Second}, "")
	ctx := testenv.Context(t)
	injected := errors.New("injected: connection reset by peer")
	var calls atomic.Int32
	// The second call fails as a whole.
	api := &faultyAPI{API: client, deleteMessageBatch: func(ctx context.Context, in *sqs.DeleteMessageBatchInput) (*sqs.DeleteMessageBatchOutput, error) {
		if calls.Add(1) == 2 {
			return nil, injected
		}
		return client.DeleteMessageBatch(ctx, in)
	}}
	q := sqsqueue.New(api, url, sqsqueue.Options{})
	sendBodies(ctx, t, q, numbered(25)...)
	got := receiveN(ctx, t, q, 25)

	errs, err := q.DeleteBatch(ctx, receiptsOf(got))
	if !errors.Is(err, injected) {
		t.Errorf("DeleteBatch error = %v, want the injected one", err)
	}
	if len(errs) != 25 {
		t.Fatalf("DeleteBatch of 25 receipts returned %d errors", len(errs))
	}
	for i, err := range errs {
		if i < 10 && err != nil {
			t.Errorf("entry %d (first call): %v", i, err)
		}
		if i >= 10 && !errors.Is(err, injected) {
			t.Errorf("entry %d (failed or later call): %v, want the injected error", i, err)
		}
	}
	if n := calls.Load(); n != 2 {
		t.Errorf("DeleteMessageBatch called %d times, want 2 (stop at the failed call)", n)
	}

	// The 15 messages not deleted come back.
	again := receiveN(ctx, t, q, 15)
	var want, gotIDs []string
	for _, m := range got[10:] {
		want = append(want, m.ID)
	}
	for _, m := range again {
		gotIDs = append(gotIDs, m.ID)
	}
	slices.Sort(want)
	slices.Sort(gotIDs)
	if diff := cmp.Diff(gotIDs, want); diff != "" {
		t.Errorf("redelivered messages (-got +want):\n%s", diff)
	}
}

func TestSendBatchPartialFailure(t *testing.T) {
	t.Parallel()
	client := testenv.SQSClient(t)
	url, _ := createQueue(t, client, queuetest.QueueOptions{VisibilityTimeout: time.Minute}, "")
	ctx := testenv.Context(t)
	// In every call, entry "1" fails with a server fault and entry "3" with a
	// sender fault; neither is sent.
	api := &faultyAPI{API: client, sendMessageBatch: func(ctx context.Context, in *sqs.SendMessageBatchInput) (*sqs.SendMessageBatchOutput, error) {
		kept := slices.DeleteFunc(slices.Clone(in.Entries), func(e types.SendMessageBatchRequestEntry) bool {
			id := aws.ToString(e.Id)
			return id == "1" || id == "3"
		})
		out, err := client.SendMessageBatch(ctx, &sqs.SendMessageBatchInput{QueueUrl: in.QueueUrl, Entries: kept})
		if err != nil {
			return nil, err
		}
		out.Failed = append(out.Failed,
			types.BatchResultErrorEntry{Id: aws.String("1"), Code: aws.String("InternalError"), SenderFault: false},
			types.BatchResultErrorEntry{Id: aws.String("3"), Code: aws.String("InvalidParameterValue"), Message: aws.String("injected"), SenderFault: true},
		)
		return out, nil
	}}
	q := sqsqueue.New(api, url, sqsqueue.Options{})
	bodies := numbered(14)
	entries := make([]queue.Entry, len(bodies))
	for i, b := range bodies {
		entries[i] = queue.Entry{Body: []byte(b)}
	}
	errs, err := q.SendBatch(ctx, entries)
	if err != nil {
		t.Fatalf("SendBatch: %v", err)
	}
	if len(errs) != len(entries) {
		t.Fatalf("SendBatch of %d entries returned %d errors", len(entries), len(errs))
	}
	var sent []string
	for i, err := range errs {
		var entryErr *sqsqueue.EntryError
		switch i {
		case 1, 11:
			if !errors.As(err, &entryErr) || entryErr.Code != "InternalError" || errors.Is(err, queue.ErrRejected) {
				t.Errorf("entry %d: %v, want a server-fault InternalError", i, err)
			}
		case 3, 13:
			if !errors.As(err, &entryErr) || entryErr.Code != "InvalidParameterValue" || !errors.Is(err, queue.ErrRejected) {
				t.Errorf("entry %d: %v, want a sender-fault InvalidParameterValue", i, err)
			}
		default:
			if err != nil {
				t.Errorf("entry %d: %v", i, err)
			}
			sent = append(sent, bodies[i])
		}
	}

	got := receiveN(ctx, t, q, len(sent))
	if diff := cmp.Diff(sortedBodies(got), sent); diff != "" {
		t.Errorf("received (-got +want):\n%s", diff)
	}
}

func TestSendBatchRefusesBadBodies(t *testing.T) {
	t.Parallel()
	client := testenv.SQSClient(t)
	url, _ := createQueue(t, client, queuetest.QueueOptions{VisibilityTimeout: time.Minute}, "")
	ctx := testenv.Context(t)
	q := sqsqueue.New(client, url, sqsqueue.Options{})
	errs, err := q.SendBatch(ctx, []queue.Entry{
		{Body: []byte("ok-1")},
		{Body: nil},
		{Body: []byte("not \xff\xfe UTF-8")},
		{Body: []byte("ok-2")},
	})
	if err != nil {
		t.Fatalf("SendBatch: %v", err)
	}
	if len(errs) != 4 || errs[0] != nil || errs[3] != nil {
		t.Fatalf("SendBatch errors = %v, want only entries 1 and 2 to fail", errs)
	}
	for _, i := range []int{1, 2} {
		if !errors.Is(errs[i], queue.ErrRejected) {
			t.Errorf("entry %d: %v, want a sender fault", i, errs[i])
		}
	}
	got := receiveN(ctx, t, q, 2)
	if diff := cmp.Diff(sortedBodies(got), []string{"ok-1", "ok-2"}); diff != "" {
		t.Errorf("received (-got +want):\n%s", diff)
	}
}

func TestSendBatchEntryRejectedBySQS(t *testing.T) {
	t.Parallel()
	client := testenv.SQSClient(t)
	ctx := testenv.Context(t)
	name := fmt.Sprintf("q%d-small-messages", queueSeq.Add(1))
	url := testenv.CreateQueue(ctx, t, client, name, map[string]string{string(types.QueueAttributeNameMaximumMessageSize): "1024"})
	q := sqsqueue.New(client, url, sqsqueue.Options{})
	errs, err := q.SendBatch(ctx, []queue.Entry{
		{Body: []byte("fits")},
		{Body: []byte(strings.Repeat("x", 2000))},
	})
	if err != nil {
		t.Fatalf("SendBatch: %v", err)
	}
	if len(errs) != 2 || errs[0] != nil || !errors.Is(errs[1], queue.ErrRejected) {
		t.Fatalf("SendBatch errors = %v, want only entry 1 to fail, as a sender fault", errs)
	}
	got := receiveN(ctx, t, q, 1)
	if string(got[0].Body) != "fits" {
		t.Errorf("received %q, want %q", got[0].Body, "fits")
	}
}

func TestSendBatchCallFails(t *testing.T) {
	t.Parallel()
	injected := errors.New("injected: connection reset by peer")
	var calls atomic.Int32
	api := &faultyAPI{sendMessageBatch: func(context.Context, *sqs.SendMessageBatchInput) (*sqs.SendMessageBatchOutput, error) {
		if calls.Add(1) == 2 {
			return nil, injected
		}
		var out sqs.SendMessageBatchOutput
		for i := range 10 {
			out.Successful = append(out.Successful, types.SendMessageBatchResultEntry{Id: aws.String(strconv.Itoa(i))})
		}
		return &out, nil
	}}
	q := sqsqueue.New(api, "https://sqs.us-east-1.amazonaws.com/123456789012/q", sqsqueue.Options{})
	entries := make([]queue.Entry, 25)
	for i := range entries {
		entries[i] = queue.Entry{Body: []byte(strconv.Itoa(i))}
	}
	errs, err := q.SendBatch(t.Context(), entries)
	if !errors.Is(err, injected) {
		t.Errorf("SendBatch error = %v, want the injected one", err)
	}
	if len(errs) != 25 {
		t.Fatalf("SendBatch of 25 entries returned %d errors", len(errs))
	}
	for i, err := range errs {
		if i < 10 && err != nil {
			t.Errorf("entry %d (first call): %v", i, err)
		}
		if i >= 10 && (!errors.Is(err, injected) || errors.Is(err, queue.ErrRejected)) {
			t.Errorf("entry %d (failed or later call): %v, want the injected error, not a sender fault", i, err)
		}
	}
	if n := calls.Load(); n != 2 {
		t.Errorf("SendMessageBatch called %d times, want 2 (no retries, stop at the failed call)", n)
	}
}

func TestChangeVisibilityErrors(t *testing.T) {
	t.Parallel()
	throttled := &types.RequestThrottled{Message: aws.String("slow down")}
	tests := []struct {
		name        string
		err         error
		wantInvalid bool
	}{
		{"ReceiptHandleIsInvalid", &types.ReceiptHandleIsInvalid{Message: aws.String("bad")}, true},
		{"MessageNotInflight", &types.MessageNotInflight{}, true},
		{"InvalidParameterValue about the receipt", &smithy.GenericAPIError{
			Code:    "InvalidParameterValue",
			Message: "Value abc for parameter ReceiptHandle is invalid. Reason: Message does not exist or is not available for visibility timeout change.",
		}, true},
		{"InvalidParameterValue about something else", &smithy.GenericAPIError{
			Code:    "InvalidParameterValue",
			Message: "Value 50000 for parameter VisibilityTimeout is invalid.",
		}, false},
		{"RequestThrottled", throttled, false},
		{"not an API error", errors.New("connection reset"), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			api := &faultyAPI{changeMessageVisibility: func(context.Context, *sqs.ChangeMessageVisibilityInput) (*sqs.ChangeMessageVisibilityOutput, error) {
				return nil, &smithy.OperationError{ServiceID: "SQS", OperationName: "ChangeMessageVisibility", Err: tt.err}
			}}
			q := sqsqueue.New(api, "https://sqs.us-east-1.amazonaws.com/123456789012/q", sqsqueue.Options{})
			err := q.ChangeVisibility(t.Context(), "receipt", time.Minute)
			if got := errors.Is(err, queue.ErrInvalidReceipt); got != tt.wantInvalid {
				t.Errorf("errors.Is(%v, ErrInvalidReceipt) = %v, want %v", err, got, tt.wantInvalid)
			}
			if !errors.Is(err, tt.err) {
				t.Errorf("error %v does not wrap the SDK's %v", err, tt.err)
			}
		})
	}
}

func TestChangeVisibilityRequest(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		timeout time.Duration
		want    int32
	}{
		{0, 0}, {-time.Second, 0}, {1400 * time.Millisecond, 1}, {1500 * time.Millisecond, 2}, {24 * time.Hour, 43200},
	} {
		var got *sqs.ChangeMessageVisibilityInput
		api := &faultyAPI{changeMessageVisibility: func(_ context.Context, in *sqs.ChangeMessageVisibilityInput) (*sqs.ChangeMessageVisibilityOutput, error) {
			got = in
			return &sqs.ChangeMessageVisibilityOutput{}, nil
		}}
		q := sqsqueue.New(api, "https://sqs.us-east-1.amazonaws.com/123456789012/q", sqsqueue.Options{})
		if err := q.ChangeVisibility(t.Context(), "receipt", tt.timeout); err != nil {
			t.Fatalf("ChangeVisibility: %v", err)
		}
		if got.VisibilityTimeout != tt.want || aws.ToString(got.ReceiptHandle) != "receipt" {
			t.Errorf("ChangeVisibility(%v) sent VisibilityTimeout %d for %q, want %d for %q",
				tt.timeout, got.VisibilityTimeout, aws.ToString(got.ReceiptHandle), tt.want, "receipt")
		}
	}
}

func TestAttributesRedrivePolicyForms(t *testing.T) {
	t.Parallel()
	client := testenv.SQSClient(t)
	ctx := testenv.Context(t)
	// A redrive policy's maxReceiveCount may be set as a number or a string.
	for _, form := range []string{`5`, `"5"`} {
		url, _ := createQueue(t, client, queuetest.QueueOptions{VisibilityTimeout: 9 * time.Second, MaxReceiveCount: 5}, form)
		got, err := sqsqueue.New(client, url, sqsqueue.Options{}).Attributes(ctx)
		if err != nil {
			t.Fatalf("maxReceiveCount %s: Attributes: %v", form, err)
		}
		if diff := cmp.Diff(got, queue.Attributes{VisibilityTimeout: 9 * time.Second, MaxReceiveCount: 5}); diff != "" {
			t.Errorf("maxReceiveCount %s: Attributes (-got +want):\n%s", form, diff)
		}
	}
}

func TestAttributesMalformed(t *testing.T) {
	t.Parallel()
	for _, attrs := range []map[string]string{
		{},
		{"VisibilityTimeout": "soon"},
		{"VisibilityTimeout": "30", "RedrivePolicy": "not json"},
		{"VisibilityTimeout": "30", "RedrivePolicy": `{"deadLetterTargetArn":"arn:aws:sqs:us-east-1:1:dlq"}`},
		{"VisibilityTimeout": "30", "RedrivePolicy": `{"maxReceiveCount":"many"}`},
		{"VisibilityTimeout": "30", "RedrivePolicy": `{"maxReceiveCount":0}`},
	} {
		api := &faultyAPI{getQueueAttributes: func(context.Context, *sqs.GetQueueAttributesInput) (*sqs.GetQueueAttributesOutput, error) {
			return &sqs.GetQueueAttributesOutput{Attributes: attrs}, nil
		}}
		q := sqsqueue.New(api, "https://sqs.us-east-1.amazonaws.com/123456789012/q", sqsqueue.Options{})
		if got, err := q.Attributes(t.Context()); err == nil {
			t.Errorf("Attributes with %v = %+v, want an error", attrs, got)
		}
	}
}

func TestOptionsVisibilityTimeout(t *testing.T) {
	t.Parallel()
	client := testenv.SQSClient(t)
	ctx := testenv.Context(t)
	const queueDefault = 10 * time.Minute
	url, _ := createQueue(t, client, queuetest.QueueOptions{VisibilityTimeout: queueDefault}, "")
	q := sqsqueue.New(client, url, sqsqueue.Options{VisibilityTimeout: time.Second})

	attrs, err := q.Attributes(ctx)
	if err != nil {
		t.Fatalf("Attributes: %v", err)
	}
	if attrs.VisibilityTimeout != time.Second {
		t.Errorf("Attributes().VisibilityTimeout = %v, want the option's 1s", attrs.VisibilityTimeout)
	}
	sendBodies(ctx, t, q, "short visibility")
	first := receiveN(ctx, t, q, 1)
	// Back well before the queue's default would let it.
	again := receiveN(ctx, t, q, 1)
	if again[0].ID != first[0].ID || again[0].ReceiveCount != 2 {
		t.Errorf("second delivery %s (ReceiveCount %d), want %s (2)", again[0].ID, again[0].ReceiveCount, first[0].ID)
	}
}

func TestErrorsHoldNoCredentials(t *testing.T) {
	t.Parallel()
	client := testenv.SQSClient(t)
	q := sqsqueue.New(client, testenv.SQSEndpoint(t)+"/000000000000/no-such-queue", sqsqueue.Options{})
	_, err := q.Attributes(testenv.Context(t))
	if err == nil {
		t.Fatal("Attributes of a missing queue succeeded")
	}
	creds, cerr := testenv.AWSConfig().Credentials.Retrieve(t.Context())
	if cerr != nil {
		t.Fatal(cerr)
	}
	for _, secret := range []string{creds.AccessKeyID, creds.SecretAccessKey} {
		if strings.Contains(err.Error(), secret) {
			t.Errorf("error %q contains a credential", err)
		}
	}
}

// sendBodies sends bodies and fails t unless all were sent.
func sendBodies(ctx context.Context, t *testing.T, q *sqsqueue.Queue, bodies ...string) {
	t.Helper()
	entries := make([]queue.Entry, len(bodies))
	for i, b := range bodies {
		entries[i] = queue.Entry{Body: []byte(b)}
	}
	errs, err := q.SendBatch(ctx, entries)
	if err == nil {
		err = queue.FirstError(errs)
	}
	if err != nil {
		t.Fatalf("SendBatch: %v", err)
	}
}

// receiveN polls until it has received n distinct messages (the latest
// delivery of each).
func receiveN(ctx context.Context, t *testing.T, q *sqsqueue.Queue, n int) []queue.Delivery {
	t.Helper()
	var msgs []queue.Delivery
	index := map[string]int{}
	for deadline := time.Now().Add(30 * time.Second); len(msgs) < n && time.Now().Before(deadline); {
		got, err := q.Receive(ctx, min(n-len(msgs), queue.MaxBatch), time.Second)
		if err != nil {
			t.Fatalf("Receive: %v", err)
		}
		for _, m := range got {
			if i, ok := index[m.ID]; ok {
				msgs[i] = m
				continue
			}
			index[m.ID] = len(msgs)
			msgs = append(msgs, m)
		}
	}
	if len(msgs) != n {
		t.Fatalf("received %d distinct messages, want %d", len(msgs), n)
	}
	return msgs
}

func receiptsOf(msgs []queue.Delivery) []string {
	out := make([]string, len(msgs))
	for i, m := range msgs {
		out[i] = m.Receipt
	}
	return out
}

func sortedBodies(msgs []queue.Delivery) []string {
	out := make([]string, len(msgs))
	for i, m := range msgs {
		out[i] = string(m.Body)
	}
	slices.Sort(out)
	return out
}

func numbered(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("message-%03d", i)
	}
	return out
}
