package market

import "testing"

func TestValid(t *testing.T) {
	for s, want := range map[string]bool{"US": true, "SE": true, "us": false, "USA": false, "U": false, "": false, "U1": false} {
		if got := Valid(s); got != want {
			t.Errorf("Valid(%q) = %v, want %v", s, got, want)
		}
		if got := Check(s) == nil; got != want {
			t.Errorf("Check(%q) = %v, want nil: %v", s, Check(s), want)
		}
	}
}
