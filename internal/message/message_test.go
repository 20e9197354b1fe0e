package message

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/sixpotify/top-tracks/internal/artistid"
	"github.com/sixpotify/top-tracks/internal/market"
)

const id = "0TnOYISbd1XYRBk9myaseg"

func TestDecode(t *testing.T) {
	tests := []struct {
		body string
		want Message
	}{
		{body: `{"artist_id":"` + id + `"}`, want: Message{ArtistID: id}},
		{body: `{"artist_id":"` + id + `","market":"se","force":true}`, want: Message{ArtistID: id, Market: "SE", Force: true}},
		{body: ` {"artist_id":"` + id + `","extra":1} ` + "\n", want: Message{ArtistID: id}},
		{body: `{"Type":"Notification","TopicArn":"arn:aws:sns:us-east-1:1:t","Message":"{\"artist_id\":\"` + id + `\"}"}`, want: Message{ArtistID: id}},
	}
	for _, tt := range tests {
		got, err := Decode([]byte(tt.body))
		if err != nil {
			t.Errorf("Decode(%s): %v", tt.body, err)
			continue
		}
		if diff := cmp.Diff(got, tt.want); diff != "" {
			t.Errorf("Decode(%s) (-got +want):\n%s", tt.body, diff)
		}
	}
}

func TestDecodePoison(t *testing.T) {
	for _, body := range []string{
		``, `null`, `[]`, `"x"`, `42`, `{`, `not json`, `{}`, `{"artist_id":""}`, `{"artist_id":42}`,
		`{"artist_id":"short"}`, `{"artist_id":"` + id + `x"}`, `{"artist_id":"../../../../../../etc/pw"}`,
		`{"artist_id":"0TnOYISbd1XYRBk9my%2Fg"}`, `{"artist_id":"0TnOYISbd1XYRBk9mya?eg"}`,
		`{"artist_id":"0TnOYISbd1XYRBk9mya#eg"}`, `{"artist_id":"0TnOYISbd1XYRBk9mya/eg"}`,
		`{"artist_id":"` + id + `","market":"USA"}`, `{"artist_id":"` + id + `","market":"1x"}`,
		`{"artist_id":"` + id + `","force":"yes"}`, `{"artist_id":"` + id + `"} {"artist_id":"` + id + `"}`,
		`{"Type":"Notification","TopicArn":"arn","Message":"not json"}`,
		`{"artist_id":"` + id + `","pad":"` + strings.Repeat("x", 70000) + `"}`,
	} {
		if m, err := Decode([]byte(body)); !errors.Is(err, ErrPoison) {
			t.Errorf("Decode(%.60s) = %+v, %v; want ErrPoison", body, m, err)
		}
	}
}

func TestEncodeRoundTrip(t *testing.T) {
	want := Message{ArtistID: id, Market: "GB", Force: true}
	body, err := Encode(want)
	if err != nil {
		t.Fatal(err)
	}
	if got := string(body); got != `{"artist_id":"`+id+`","market":"GB","force":true}` {
		t.Errorf("Encode = %s", got)
	}
	got, err := Decode(body)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(got, want); diff != "" {
		t.Errorf("round trip (-got +want):\n%s", diff)
	}
	if _, err := Encode(Message{ArtistID: "x"}); err == nil {
		t.Error("Encode of an invalid ID succeeded")
	}
}

func FuzzDecode(f *testing.F) {
	for _, s := range []string{`{"artist_id":"` + id + `"}`, `{"artist_id":"` + id + `","market":"us","force":true}`,
		`{"Type":"Notification","TopicArn":"a","Message":"{}"}`, `{}`, `[`, `{"artist_id":"../x"}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		m, err := Decode(body)
		if err != nil {
			if !errors.Is(err, ErrPoison) {
				t.Fatalf("Decode error %v does not wrap ErrPoison", err)
			}
			return
		}
		if !artistid.Valid(m.ArtistID) {
			t.Fatalf("Decode accepted artist_id %q", m.ArtistID)
		}
		if m.Market != "" && !market.Valid(m.Market) {
			t.Fatalf("Decode accepted market %q", m.Market)
		}
		// What Decode accepts, Encode writes and Decode reads back the same.
		body2, err := Encode(m)
		if err != nil {
			t.Fatalf("Encode(%+v): %v", m, err)
		}
		var back Message
		if err := json.Unmarshal(body2, &back); err != nil || back != m {
			t.Fatalf("round trip of %+v gave %+v, %v", m, back, err)
		}
	})
}
