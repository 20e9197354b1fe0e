package logging

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
	"time"
)

func TestLimitDropsRepeatsAndCountsThem(t *testing.T) {
	var buf bytes.Buffer
	h := Limit(slog.NewTextHandler(&buf, nil), 2, time.Minute).(*limitHandler)
	now := time.Unix(0, 0)
	h.st.now = func() time.Time { return now }
	log := slog.New(h).With("lane", "chatbot")
	for i := range 5 {
		log.Error("receive failed", "attempt", i)
		log.Info("artist done", "n", i)
	}
	log.Warn("another warning")
	now = now.Add(time.Minute)
	log.Error("receive failed", "attempt", 5)

	out := buf.String()
	if got := strings.Count(out, `msg="receive failed"`); got != 3 {
		t.Errorf("the repeated error was logged %d times; want 2 in the first minute and 1 after:\n%s", got, out)
	}
	if got := strings.Count(out, `msg="artist done"`); got != 5 {
		t.Errorf("info records were limited: %d of 5 logged", got)
	}
	if !strings.Contains(out, "another warning") {
		t.Error("a different message was limited")
	}
	if !strings.Contains(out, "attempt=5 suppressed=3") {
		t.Errorf("the next interval's first record does not report the 3 dropped:\n%s", out)
	}
}
