package spotify_test

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/sixpotify/top-tracks/internal/spotify"
)

// TestDecodeAbsentFields: a field Spotify leaves out decodes as nil, a real
// 0 as 0, and the ISRC comes from external_ids only.
func TestDecodeAbsentFields(t *testing.T) {
	zero, isrc := 0, "USRC17607839"
	tests := []struct {
		name, body string
		want       spotify.Track
	}{
		{"popularity left out", `{"tracks":[{"id":"a"}]}`, spotify.Track{ID: "a"}},
		{"popularity null", `{"tracks":[{"id":"a","popularity":null}]}`, spotify.Track{ID: "a"}},
		{"popularity 0", `{"tracks":[{"id":"a","popularity":0}]}`, spotify.Track{ID: "a", Popularity: &zero}},
		{"isrc in external_ids", `{"tracks":[{"id":"a","external_ids":{"isrc":"USRC17607839","upc":"x"}}]}`, spotify.Track{ID: "a", ISRC: &isrc}},
		{"no external_ids", `{"tracks":[{"id":"a","external_ids":{}}]}`, spotify.Track{ID: "a"}},
		{"a top-level isrc is not Spotify's", `{"tracks":[{"id":"a","isrc":"top"}]}`, spotify.Track{ID: "a"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := spotify.DecodeTopTracks([]byte(tt.body))
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(got, []spotify.Track{tt.want}); diff != "" {
				t.Errorf("decoded (-got +want):\n%s", diff)
			}
		})
	}
}
