// Package fakespotifytest starts the Spotify stand-in (internal/fakespotify)
// for a test and builds a client of it, as many tests do.
package fakespotifytest

import (
	"context"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/sixpotify/top-tracks/internal/fakespotify"
	"github.com/sixpotify/top-tracks/internal/spotify"
)

// The credentials of the stand-in Start runs.
const (
	ClientID     = "id"
	ClientSecret = "secret"
)

// Start runs the stand-in with cfg, its credentials ClientID and
// ClientSecret, on a loopback server closed when tb ends. It returns the
// stand-in and a client of it configured as client says (its gate, its HTTP
// client), but for the stand-in's URLs and credentials.
func Start(tb testing.TB, cfg fakespotify.Config, client spotify.Config) (*fakespotify.Server, *spotify.Client) {
	tb.Helper()
	cfg.ClientID, cfg.ClientSecret = ClientID, ClientSecret
	fake := fakespotify.New(cfg)
	srv := httptest.NewServer(fake)
	tb.Cleanup(srv.Close)
	client.APIURL, client.TokenURL = srv.URL+"/v1", srv.URL+"/api/token"
	client.ClientID, client.ClientSecret = ClientID, ClientSecret
	c, err := spotify.New(client)
	if err != nil {
		tb.Fatalf("fakespotifytest: spotify.New: %v", err)
	}
	return fake, c
}

// TopTracks fetches artist's top tracks in market US from a stand-in run
// with cfg, as a client decodes them, and the time of the fetch; it fails
// tb unless the stand-in answered its 10 tracks.
func TopTracks(tb testing.TB, cfg fakespotify.Config, artist string) ([]spotify.Track, time.Time) {
	tb.Helper()
	_, c := Start(tb, cfg, spotify.Config{})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	tracks, at, err := c.TopTracksAt(ctx, artist, "US")
	if err != nil || len(tracks) != 10 {
		tb.Fatalf("TopTracks = %d tracks, %v; want 10", len(tracks), err)
	}
	return tracks, at
}
