package sqsqueue_test

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/sixpotify/top-tracks/internal/queue"
	"github.com/sixpotify/top-tracks/internal/queue/queuetest"
	"github.com/sixpotify/top-tracks/internal/queue/sqsqueue"
	"github.com/sixpotify/top-tracks/internal/testenv"
)

// TestRedriveFollowsARunningTask: SQS runs one move task per dead-letter
// queue; when one is already running (a redrive whose cancel was lost),
// Redrive follows it to its end instead of failing to start another.
func TestRedriveFollowsARunningTask(t *testing.T) {
	ctx := testenv.Context(t)
	client := testenv.SQSClient(t)
	url, dlqURL := createQueue(t, client, queuetest.QueueOptions{VisibilityTimeout: time.Second, MaxReceiveCount: 1}, "1")
	dlq := sqsqueue.New(client, dlqURL, sqsqueue.Options{})
	var entries []queue.Entry
	for i := range 3 {
		entries = append(entries, queue.Entry{Body: []byte("stuck-" + strconv.Itoa(i))})
	}
	if _, err := dlq.SendBatch(ctx, entries); err != nil {
		t.Fatal(err)
	}
	arns := map[string]string{}
	for _, u := range []string{url, dlqURL} {
		out, err := client.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{QueueUrl: aws.String(u), AttributeNames: []types.QueueAttributeName{types.QueueAttributeNameQueueArn}})
		if err != nil {
			t.Fatal(err)
		}
		arns[u] = out.Attributes[string(types.QueueAttributeNameQueueArn)]
	}
	if _, err := client.StartMessageMoveTask(ctx, &sqs.StartMessageMoveTaskInput{
		SourceArn: aws.String(arns[dlqURL]), DestinationArn: aws.String(arns[url]), MaxNumberOfMessagesPerSecond: aws.Int32(1),
	}); err != nil {
		t.Fatal(err)
	}
	q := sqsqueue.New(client, url, sqsqueue.Options{})
	p, err := q.Redrive(ctx, queue.RedriveOptions{Poll: 100 * time.Millisecond})
	if err != nil || p.Status != queue.RedriveCompleted || p.Moved != 3 || !strings.Contains(p.Note, "already running") {
		t.Fatalf("Redrive = %+v, %v; want the running task followed to COMPLETED with 3 moved", p, err)
	}
	got := 0
	for deadline := time.Now().Add(30 * time.Second); got < 3 && time.Now().Before(deadline); {
		msgs, err := q.Receive(ctx, 3-got, time.Second)
		if err != nil {
			t.Fatal(err)
		}
		got += len(msgs)
	}
	if got != 3 {
		t.Errorf("%d messages back in the queue, want 3", got)
	}
}
