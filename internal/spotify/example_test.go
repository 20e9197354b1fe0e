package spotify_test

import (
	"context"
	"errors"
	"fmt"
	"net/http/httptest"

	"github.com/sixpotify/top-tracks/internal/fakespotify"
	"github.com/sixpotify/top-tracks/internal/spotify"
)

func ExampleClient_TopTracks() {
	// A stand-in for Spotify; in production the URLs are Spotify's.
	srv := httptest.NewServer(fakespotify.New(fakespotify.Config{ClientID: "id", ClientSecret: "secret"}))
	defer srv.Close()

	client, err := spotify.New(spotify.Config{
		APIURL:       srv.URL + "/v1",
		TokenURL:     srv.URL + "/api/token",
		ClientID:     "id",
		ClientSecret: "secret",
		HTTPClient:   srv.Client(),
	})
	if err != nil {
		fmt.Println(err)
		return
	}

	tracks, err := client.TopTracks(context.Background(), "0TnOYISbd1XYRBk9myaseg", "US")
	fmt.Println(len(tracks), err)

	_, err = client.TopTracks(context.Background(), "0000YISbd1XYRBk9myaseg", "US")
	fmt.Println(errors.Is(err, spotify.ErrNotFound), spotify.Temporary(err))

	_, err = client.TopTracks(context.Background(), "../../me", "US")
	fmt.Println(err)
	// Output:
	// 10 <nil>
	// true false
	// spotify: top tracks of "../../me": invalid artist ID
}
