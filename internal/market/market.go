// Package market validates Spotify markets: ISO 3166-1 alpha-2 country codes,
// written as two upper-case ASCII letters. Nothing sends a market to Spotify
// or onto the queue that has not passed Valid.
package market

import (
	"fmt"

	"github.com/sixpotify/top-tracks/internal/clip"
)

// Valid reports whether s is two upper-case ASCII letters.
func Valid(s string) bool {
	return len(s) == 2 && 'A' <= s[0] && s[0] <= 'Z' && 'A' <= s[1] && s[1] <= 'Z'
}

// Check returns nil for a valid market, and otherwise an error that says why.
func Check(s string) error {
	if Valid(s) {
		return nil
	}
	return fmt.Errorf("market %q is not an ISO 3166-1 alpha-2 code", clip.String(s, 10))
}
