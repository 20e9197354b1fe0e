package logging

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

func TestDurationsAreGoDurationStrings(t *testing.T) {
	for _, format := range []string{"json", "text"} {
		var buf bytes.Buffer
		log, err := New(&buf, format, "info")
		if err != nil {
			t.Fatal(err)
		}
		log.Info("stopping", "drain_timeout", 15*time.Second, "retry_in", 500*time.Millisecond)
		want := map[string][]string{
			"json": {`"drain_timeout":"15s"`, `"retry_in":"500ms"`},
			"text": {`drain_timeout=15s`, `retry_in=500ms`},
		}[format]
		for _, w := range want {
			if !strings.Contains(buf.String(), w) {
				t.Errorf("%s: got %q, want it to contain %s", format, buf.String(), w)
			}
		}
	}
}
