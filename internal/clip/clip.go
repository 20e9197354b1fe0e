// Package clip shortens text for a log or an error line, so that a long or
// hostile input (a message body, an artist reference, a response) never
// floods one.
package clip

import "unicode/utf8"

// String returns s when it is at most n bytes long, and otherwise its first
// n bytes, cut back to a rune boundary, followed by "…".
func String(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}
