package producer_test

import (
	"os/exec"
	"strings"
	"testing"
)

// TestImportsNoStoreBackend keeps the producer, and a chatbot that imports
// it, on the queue side of the backends: no DynamoDB SDK, no store backend.
func TestImportsNoStoreBackend(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	for _, pkg := range strings.Fields(string(out)) {
		if strings.Contains(strings.ToLower(pkg), "dynamo") || strings.HasSuffix(pkg, "/internal/backend/stores") {
			t.Errorf("the producer depends on %s", pkg)
		}
	}
}
