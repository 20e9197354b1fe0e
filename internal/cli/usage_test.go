package cli

import (
	"errors"
	"fmt"
	"testing"
)

func TestUsageError(t *testing.T) {
	cause := errors.New("not a URL")
	for _, c := range []struct {
		err   error
		usage bool
		text  string
	}{
		{VarError("QUEUE_URL", cause), true, "QUEUE_URL (--queue-url): not a URL"},
		{VarErrorf("RETAIN_FOR", "%v is less than an hour", "5m"), true, "RETAIN_FOR (--retain-for): 5m is less than an hour"},
		{Usage(errors.New("--lane: \"x\" is not a lane")), true, "--lane: \"x\" is not a lane"},
		{fmt.Errorf("open the store: %w", VarError("STORE_URL", cause)), true, "open the store: STORE_URL (--store-url): not a URL"},
		{cause, false, "not a URL"},
	} {
		if got := IsUsage(c.err); got != c.usage {
			t.Errorf("IsUsage(%v) = %v, want %v", c.err, got, c.usage)
		}
		if got := c.err.Error(); got != c.text {
			t.Errorf("Error() = %q, want %q", got, c.text)
		}
	}
	if !errors.Is(VarError("QUEUE_URL", cause), cause) {
		t.Error("a usage error does not wrap its cause")
	}
	if Usage(nil) != nil {
		t.Error("Usage(nil) != nil")
	}
}
