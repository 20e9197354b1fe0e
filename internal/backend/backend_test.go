package backend

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

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

func TestStoreExists(t *testing.T) {
	dir := t.TempDir()
	there := filepath.Join(dir, "there.db")
	if err := os.WriteFile(there, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := StoreExists("sqlite:" + there); err != nil {
		t.Errorf("StoreExists(an existing file): %v", err)
	}
	if err := StoreExists("dynamodb:top_tracks"); err != nil {
		t.Errorf("StoreExists(dynamodb): %v", err)
	}
	typo := filepath.Join(dir, "typo.db")
	err := StoreExists("sqlite:" + typo)
	if err == nil || !strings.Contains(err.Error(), typo+" does not exist") {
		t.Errorf("StoreExists(a missing file): got %v, want it to say it does not exist", err)
	}
	if _, statErr := os.Stat(typo); statErr == nil {
		t.Error("StoreExists created the file")
	}
}
