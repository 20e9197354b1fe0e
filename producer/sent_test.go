package producer

import (
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestSentOfTellsMarketsApart(t *testing.T) {
	const id = "0TnOYISbd1XYRBk9myaseg"
	msgs := []Message{{ArtistID: id, Market: "US"}, {ArtistID: id, Market: "SE"}, {ArtistID: "06HL4z0CvFAxyc27GXpf02"}}
	failed := []Failure{{ArtistID: id, Market: "SE", Err: errors.New("boom")}}
	got := sentOf(msgs, failed)
	want := []Message{{ArtistID: id, Market: "US"}, {ArtistID: "06HL4z0CvFAxyc27GXpf02"}}
	if diff := cmp.Diff(got, want); diff != "" {
		t.Errorf("sentOf (-got +want):\n%s", diff)
	}
}
