package spotify_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/sixpotify/top-tracks/internal/spotify"
)

func TestTemporary(t *testing.T) {
	tests := []struct {
		err  error
		want bool
	}{
		{err: nil, want: false},
		{err: fmt.Errorf("x: %w", &spotify.RateLimitError{}), want: true},
		{err: fmt.Errorf("x: %w", &spotify.StatusError{Code: 500}), want: true},
		{err: fmt.Errorf("x: %w", &spotify.StatusError{Code: 503}), want: true},
		{err: fmt.Errorf("x: %w", &spotify.StatusError{Code: 409}), want: false},
		{err: fmt.Errorf("x: %w", spotify.ErrTransport), want: true},
		{err: fmt.Errorf("x: %w", spotify.ErrBadResponse), want: true},
		{err: fmt.Errorf("x: %w", spotify.ErrNotFound), want: false},
		{err: fmt.Errorf("x: %w", spotify.ErrForbidden), want: false},
		{err: fmt.Errorf("x: %w", spotify.ErrBadRequest), want: false},
		{err: fmt.Errorf("x: %w", spotify.ErrUnauthorized), want: false},
		{err: fmt.Errorf("x: %w", spotify.ErrInvalidArtist), want: false},
		{err: fmt.Errorf("x: %w", context.Canceled), want: false},
		{err: errors.New("other"), want: false},
	}
	for _, tt := range tests {
		if got := spotify.Temporary(tt.err); got != tt.want {
			t.Errorf("Temporary(%v) = %v, want %v", tt.err, got, tt.want)
		}
	}
}

func TestNew(t *testing.T) {
	valid := spotify.Config{
		APIURL:       "https://api.spotify.com/v1",
		TokenURL:     "https://accounts.spotify.com/api/token",
		ClientID:     "id",
		ClientSecret: testClientSecret,
	}
	tests := []struct {
		name   string
		modify func(*spotify.Config)
		want   []string // variables named in the error, one a line; none: no error
	}{
		{name: "valid", modify: func(*spotify.Config) {}},
		{name: "trailing slash", modify: func(c *spotify.Config) { c.APIURL += "/" }},
		{
			name:   "empty",
			modify: func(c *spotify.Config) { *c = spotify.Config{} },
			want:   []string{"SPOTIFY_API_URL", "SPOTIFY_TOKEN_URL", "SPOTIFY_CLIENT_ID", "SPOTIFY_CLIENT_SECRET"},
		},
		{name: "no scheme", modify: func(c *spotify.Config) { c.APIURL = "api.spotify.com/v1" }, want: []string{"SPOTIFY_API_URL"}},
		{name: "ftp", modify: func(c *spotify.Config) { c.TokenURL = "ftp://accounts.spotify.com" }, want: []string{"SPOTIFY_TOKEN_URL"}},
		{name: "query", modify: func(c *spotify.Config) { c.APIURL = "https://api.spotify.com/v1?x=1" }, want: []string{"SPOTIFY_API_URL"}},
		{name: "not a URL", modify: func(c *spotify.Config) { c.APIURL = "http://[::1" }, want: []string{"SPOTIFY_API_URL"}},
		{
			name: "password in a URL is not repeated",
			modify: func(c *spotify.Config) {
				c.TokenURL = "ftp://user:" + testClientSecret + "@accounts.spotify.com/api/token"
			},
			want: []string{"SPOTIFY_TOKEN_URL"},
		},
		{name: "blank client ID", modify: func(c *spotify.Config) { c.ClientID = " " }, want: []string{"SPOTIFY_CLIENT_ID"}},
		{name: "no secret", modify: func(c *spotify.Config) { c.ClientSecret = "" }, want: []string{"SPOTIFY_CLIENT_SECRET"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := valid
			tt.modify(&cfg)
			c, err := spotify.New(cfg)
			if len(tt.want) == 0 {
				if err != nil || c == nil {
					t.Fatalf("New = %v, %v; want a client", c, err)
				}
				return
			}
			if err == nil {
				t.Fatal("New succeeded, want an error")
			}
			lines := strings.Split(err.Error(), "\n")
			if len(lines) != len(tt.want) {
				t.Errorf("error has %d lines, want %d:\n%s", len(lines), len(tt.want), err)
			}
			for i, name := range tt.want {
				if i < len(lines) && !strings.HasPrefix(lines[i], name+" ") {
					t.Errorf("line %d = %q, want it to start with %s", i, lines[i], name)
				}
			}
			if strings.Contains(err.Error(), testClientSecret) {
				t.Errorf("error %q holds the secret", err)
			}
		})
	}
}
