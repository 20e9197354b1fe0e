package testenv

import (
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
)

func TestMain(m *testing.M) { Main(m) }

func TestEmulatorsAnswer(t *testing.T) {
	ctx := Context(t)
	sq := sqs.NewFromConfig(AWSConfig(), func(o *sqs.Options) { o.BaseEndpoint = aws.String(SQSEndpoint(t)) })
	out, err := sq.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String("smoke")})
	if err != nil {
		t.Fatalf("CreateQueue: %v", err)
	}
	if aws.ToString(out.QueueUrl) == "" {
		t.Fatal("CreateQueue returned no URL")
	}
	db := dynamodb.NewFromConfig(AWSConfig(), func(o *dynamodb.Options) { o.BaseEndpoint = aws.String(DynamoDBEndpoint(t)) })
	if _, err := db.ListTables(ctx, &dynamodb.ListTablesInput{}); err != nil {
		t.Fatalf("ListTables: %v", err)
	}
}
