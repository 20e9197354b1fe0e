package queues

import "testing"

func TestQueueEndpoint(t *testing.T) {
	tests := []struct {
		url        string
		configured bool
		want       string
	}{
		{"https://sqs.eu-west-1.amazonaws.com/123456789012/chatbot", false, ""},
		{"https://sqs.cn-north-1.amazonaws.com.cn/123456789012/chatbot", false, ""},
		{"http://127.0.0.1:4566/000000000000/q", false, "http://127.0.0.1:4566"},
		{"https://sqs.internal.example:8443/1/q", false, "https://sqs.internal.example:8443"},
		{"http://127.0.0.1:4566/000000000000/q", true, ""}, // AWS_ENDPOINT_URL_SQS wins
	}
	for _, tt := range tests {
		if got := queueEndpoint(tt.url, tt.configured); got != tt.want {
			t.Errorf("queueEndpoint(%q, %v) = %q, want %q", tt.url, tt.configured, got, tt.want)
		}
	}
}
