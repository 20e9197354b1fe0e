package dynamostore

import (
	"reflect"
	"testing"

	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/attributevalue"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/google/go-cmp/cmp"

	"github.com/sixpotify/top-tracks/internal/fakespotify"
	"github.com/sixpotify/top-tracks/internal/spotify"
	"github.com/sixpotify/top-tracks/internal/store/storetest"
)

// TestAttrsMatchTheEncoder checks that the rows Save builds by hand are the
// attribute values attributevalue's encoder makes of trackItem and
// artistItem, which the reads decode, and that the baseline of
// internal/bench writes: the same rows, only without reflection.
func TestAttrsMatchTheEncoder(t *testing.T) {
	enc := attributevalue.NewEncoder(func(o *attributevalue.EncoderOptions) { o.TagKey = "json" })
	encode := func(t *testing.T, v any) map[string]types.AttributeValue {
		t.Helper()
		av, err := enc.Encode(v)
		if err != nil {
			t.Fatal(err)
		}
		return av.(*types.AttributeValueMemberM).Value
	}
	h, w, preview := 640, 0, ""
	tracks := map[string]spotify.Track{
		"zero": {},
		"empty collections": {
			ExternalURLs: map[string]string{}, Artists: []spotify.SimpleArtist{}, PreviewURL: &preview,
			Album: spotify.Album{Images: []spotify.Image{}, ExternalURLs: map[string]string{}, Artists: []spotify.SimpleArtist{}},
		},
		"images with and without sizes": {
			ID: "t", Album: spotify.Album{Images: []spotify.Image{{URL: "u", Height: &h, Width: &w}, {URL: "v"}}},
			Artists: []spotify.SimpleArtist{{ID: "a"}, {ExternalURLs: map[string]string{"spotify": "x", "other": ""}}},
		},
	}
	for i, tr := range fakespotify.Tracks(storetest.ID("attrs/fake"), 0, 10) {
		tracks["fakespotify "+string(rune('0'+i))] = tr
	}
	for i, tr := range storetest.Tracks(storetest.ID("attrs/storetest"), 0, 3) {
		tracks["storetest "+string(rune('0'+i))] = tr
	}
	// One slab for all the tracks, as a Save's tracks share one: its chunks
	// run out and are replaced while the rows built before keep theirs,
	// which is why every row is compared only once all are built.
	var b slab
	made := map[string]map[string]types.AttributeValue{}
	for name, tr := range tracks {
		made[name] = b.trackAttrs("artist", 3, "SE", "2026-01-02T03:04:05.006Z", 1767322800, &tr)
	}
	for name, tr := range tracks {
		want := encode(t, trackItem{ArtistID: "artist", Rank: 3, Market: "SE", FetchedAt: "2026-01-02T03:04:05.006Z", ExpiresAt: 1767322800, Track: tr})
		if diff := cmp.Diff(want, made[name], attrsCmp); diff != "" {
			t.Errorf("%s: trackAttrs (-encoder +hand-built):\n%s", name, diff)
		}
	}
	for _, it := range []artistItem{
		{ArtistID: "a", FetchedAt: "2026-01-02T03:04:05.006Z", Market: "US", Status: "ok", TrackCount: 2, ListHash: "h", TrackIDs: []string{"x", "y"}},
		{ArtistID: "a", FetchedAt: "2026-01-02T03:04:05.006Z", Market: "US", Status: "not_found", TrackIDs: []string{}},
	} {
		if diff := cmp.Diff(encode(t, it), artistAttrs(it), attrsCmp); diff != "" {
			t.Errorf("artistAttrs(%+v) (-encoder +hand-built):\n%s", it, diff)
		}
	}
}

// attrsCmp compares attribute values by content.
var attrsCmp = cmp.Exporter(func(reflect.Type) bool { return true })
