package sqsqueue

import "testing"

func TestDeadLetterTarget(t *testing.T) {
	a, err := deadLetterTarget(`{"deadLetterTargetArn":"arn:aws:sqs:eu-west-1:123456789012:chatbot-dlq","maxReceiveCount":"5"}`)
	if err != nil || a.Resource != "chatbot-dlq" || a.AccountID != "123456789012" || a.Region != "eu-west-1" {
		t.Errorf("deadLetterTarget = %+v, %v; want chatbot-dlq of 123456789012 in eu-west-1", a, err)
	}
	for _, bad := range []string{
		`not json`,
		`{"maxReceiveCount":5}`,
		`{"deadLetterTargetArn":"chatbot-dlq"}`,
		`{"deadLetterTargetArn":"arn:aws:sns:eu-west-1:123456789012:topic"}`,
	} {
		if a, err := deadLetterTarget(bad); err == nil {
			t.Errorf("deadLetterTarget(%s) = %+v; want an error", bad, a)
		}
	}
}
