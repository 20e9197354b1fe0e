package spotify_test

import (
	"encoding/json"
	"errors"
	"testing"

	"github.com/sixpotify/top-tracks/internal/fakespotify"
	"github.com/sixpotify/top-tracks/internal/spotify"
)

func FuzzDecodeTopTracks(f *testing.F) {
	tracks, err := json.Marshal(map[string]any{"tracks": fakespotify.Tracks(artistA, 0, 3)})
	if err != nil {
		f.Fatal(err)
	}
	for _, seed := range []string{
		string(tracks),
		`{"tracks":[]}`,
		`{"tracks":null}`,
		`{"tracks":[{"id":""}]}`,
		`{"tracks":[{"id":"a","album":{"images":[{"url":"u","height":null}]},"preview_url":null}]}`,
		`{"tracks":[{"id":"a","external_ids":{"isrc":"USRC17607839"},"isrc":"top-level"}]}`,
		`{"tracks":[{"id":"a","external_ids":null,"popularity":null}]}`,
		`{"tracks":[{"id":"a","external_ids":{"isrc":7}}]}`,
		`{}`,
		`[]`,
		`null`,
		`<html>502</html>`,
		`{"tracks":[{"id":"a"}]} trailing`,
		"",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		got, err := spotify.DecodeTopTracks(body)
		if err != nil {
			if !errors.Is(err, spotify.ErrBadResponse) {
				t.Errorf("error %v is not ErrBadResponse", err)
			}
			if got != nil {
				t.Errorf("got %d tracks with an error", len(got))
			}
			return
		}
		if got == nil {
			t.Error("got nil tracks and no error")
		}
		for i, tr := range got {
			if tr.ID == "" {
				t.Errorf("track %d has no ID", i)
			}
		}
	})
}
