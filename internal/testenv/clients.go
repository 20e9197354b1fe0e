package testenv

import (
	"context"
	"encoding/json"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/sixpotify/top-tracks/internal/queue/sqsqueue"
)

// SQSClient returns a client of this test binary's SQS emulator (AWSConfig,
// the SDK's default HTTP client), starting the emulator on first use.
func SQSClient(tb testing.TB, optFns ...func(*sqs.Options)) *sqs.Client {
	tb.Helper()
	endpoint := SQSEndpoint(tb)
	return sqs.NewFromConfig(AWSConfig(), append([]func(*sqs.Options){func(o *sqs.Options) {
		o.BaseEndpoint = aws.String(endpoint)
	}}, optFns...)...)
}

// DynamoDBClient returns a client of this test binary's dynalite (AWSConfig,
// the SDK's default HTTP client), starting it on first use.
func DynamoDBClient(tb testing.TB, optFns ...func(*dynamodb.Options)) *dynamodb.Client {
	tb.Helper()
	endpoint := DynamoDBEndpoint(tb)
	return dynamodb.NewFromConfig(AWSConfig(), append([]func(*dynamodb.Options){func(o *dynamodb.Options) {
		o.BaseEndpoint = aws.String(endpoint)
	}}, optFns...)...)
}

// HTTPClient returns an HTTP client whose idle connections are closed when
// tb ends, for a test that checks no goroutine outlives it (goleak): set it
// as a client's HTTPClient through the option functions.
func HTTPClient(tb testing.TB) *http.Client {
	tr := &http.Transport{}
	tb.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr}
}

// CreateQueue creates the queue name on the SQS emulator with attrs and
// returns its URL; the queue is deleted when tb ends.
func CreateQueue(ctx context.Context, tb testing.TB, client *sqs.Client, name string, attrs map[string]string) string {
	tb.Helper()
	out, err := client.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String(name), Attributes: attrs})
	if err != nil {
		tb.Fatalf("create queue %s: %v", name, err)
	}
	url := aws.ToString(out.QueueUrl)
	tb.Cleanup(func() {
		// The test's context is over by now.
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if _, err := client.DeleteQueue(ctx, &sqs.DeleteQueueInput{QueueUrl: aws.String(url)}); err != nil {
			tb.Errorf("delete queue %s: %v", name, err)
		}
	})
	return url
}

// CreateDeadLetterQueue creates the queue name (as CreateQueue does) to be
// another queue's dead-letter queue, and returns its URL and the redrive
// policy that sends a message there after maxReceiveCount receives:
// maxReceiveCount is written into the policy's JSON as it is marshalled (an
// int as a number, a string as a string, a json.RawMessage as it stands).
func CreateDeadLetterQueue(ctx context.Context, tb testing.TB, client *sqs.Client, name string, maxReceiveCount any) (url, redrivePolicy string) {
	tb.Helper()
	url = CreateQueue(ctx, tb, client, name, nil)
	out, err := client.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{
		QueueUrl:       aws.String(url),
		AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameQueueArn},
	})
	if err != nil {
		tb.Fatalf("get the dead-letter queue's ARN: %v", err)
	}
	arn := out.Attributes[string(sqstypes.QueueAttributeNameQueueArn)]
	if arn == "" {
		tb.Fatalf("the dead-letter queue %s has no QueueArn", name)
	}
	policy, err := json.Marshal(struct {
		DeadLetterTargetArn string `json:"deadLetterTargetArn"`
		MaxReceiveCount     any    `json:"maxReceiveCount"`
	}{arn, maxReceiveCount})
	if err != nil {
		tb.Fatalf("redrive policy: %v", err)
	}
	return url, string(policy)
}

// CheckQueueEmpty wants the queue at url to hold no message, visible or in
// flight, by its approximate counts; what names the queue in a failure.
func CheckQueueEmpty(ctx context.Context, tb testing.TB, client *sqs.Client, url, what string) {
	tb.Helper()
	out, err := client.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{
		QueueUrl: aws.String(url),
		AttributeNames: []sqstypes.QueueAttributeName{
			sqstypes.QueueAttributeNameApproximateNumberOfMessages,
			sqstypes.QueueAttributeNameApproximateNumberOfMessagesNotVisible,
		},
	})
	if err != nil {
		tb.Fatalf("attributes of the %s: %v", what, err)
	}
	for k, v := range out.Attributes {
		if v != "0" {
			tb.Errorf("the %s: %s = %s, want 0", what, k, v)
		}
	}
}

// QueueDepth is every message the queue at url holds, visible, in flight
// and delayed, by SQS's approximate counts (the queue's own Counts).
func QueueDepth(ctx context.Context, client *sqs.Client, url string) (int, error) {
	c, err := sqsqueue.New(client, url, sqsqueue.Options{}).Counts(ctx)
	return c.Total(), err
}

// Service names an emulator whose endpoint SetAWSEnv sets.
type Service string

// The services SetAWSEnv knows; each is the suffix of its
// AWS_ENDPOINT_URL_<service> variable.
const (
	SQS      Service = "SQS"
	DynamoDB Service = "DYNAMODB"
)

// SetAWSEnv points the AWS SDK's default configuration, as the commands
// load it, at the emulators of services (started here if needed): their
// AWS_ENDPOINT_URL_* variables, the region and AWSConfig's static
// credentials, and nothing from a profile, a shared file or the instance
// metadata. It sets the process's environment for the rest of tb
// (t.Setenv): t may not run in parallel.
func SetAWSEnv(t *testing.T, services ...Service) {
	t.Helper()
	creds, err := AWSConfig().Credentials.Retrieve(context.Background())
	if err != nil {
		t.Fatalf("testenv: static credentials: %v", err)
	}
	none := filepath.Join(t.TempDir(), "none")
	env := map[string]string{
		"AWS_REGION":                  Region,
		"AWS_ACCESS_KEY_ID":           creds.AccessKeyID,
		"AWS_SECRET_ACCESS_KEY":       creds.SecretAccessKey,
		"AWS_SESSION_TOKEN":           "",
		"AWS_PROFILE":                 "",
		"AWS_CONFIG_FILE":             none,
		"AWS_SHARED_CREDENTIALS_FILE": none,
		"AWS_EC2_METADATA_DISABLED":   "true",
	}
	for _, s := range services {
		switch s {
		case SQS:
			env["AWS_ENDPOINT_URL_SQS"] = SQSEndpoint(t)
		case DynamoDB:
			env["AWS_ENDPOINT_URL_DYNAMODB"] = DynamoDBEndpoint(t)
		default:
			t.Fatalf("testenv: SetAWSEnv knows no service %q", s)
		}
	}
	for k, v := range env {
		t.Setenv(k, v)
	}
}
