package artistid

import (
	"errors"
	"strings"
	"testing"
)

const id = "0TnOYISbd1XYRBk9myaseg"

func TestParse(t *testing.T) {
	tests := []struct {
		ref     string
		want    string
		wantErr bool
	}{
		{ref: id, want: id},
		{ref: "  " + id + "\n", want: id},
		{ref: "spotify:artist:" + id, want: id},
		{ref: "https://open.spotify.com/artist/" + id, want: id},
		{ref: "https://open.spotify.com/artist/" + id + "?si=abc123&nd=1", want: id},
		{ref: "https://open.spotify.com/artist/" + id + "/", want: id},
		{ref: "https://open.spotify.com/intl-de/artist/" + id, want: id},
		{ref: "http://open.spotify.com/artist/" + id + "#top", want: id},
		{ref: "", wantErr: true},
		{ref: id[:21], wantErr: true},
		{ref: id + "x", wantErr: true},
		{ref: "0TnOYISbd1XYRBk9mya/eg", wantErr: true},
		{ref: "0TnOYISbd1XYRBk9mya.eg", wantErr: true},
		{ref: "../../../../../../me/x", wantErr: true},
		{ref: "0TnOYISbd1XYRBk9my%2Fg", wantErr: true},
		{ref: "0TnOYISbd1XYRBk9mya?eg", wantErr: true},
		{ref: "0TnOYISbd1XYRBk9mya#eg", wantErr: true},
		{ref: "0TnOYISbd1XYRBk9myasé", wantErr: true},
		{ref: "spotify:track:" + id, wantErr: true},
		{ref: "spotify:artist:", wantErr: true},
		{ref: "https://open.spotify.com/track/" + id, wantErr: true},
		{ref: "https://evil.example/artist/" + id, wantErr: true},
		{ref: "https://open.spotify.com/artist/" + id + "/albums", wantErr: true},
		{ref: "https://open.spotify.com/artist/0TnOYISbd1XYRBk9my%2Fseg", wantErr: true},
		{ref: "https://user@open.spotify.com/artist/" + id, wantErr: true},
		{ref: "https://open.spotify.com:8443/artist/" + id, wantErr: true},
	}
	for _, tt := range tests {
		got, err := Parse(tt.ref)
		if tt.wantErr {
			if err == nil || !errors.Is(err, ErrInvalid) {
				t.Errorf("Parse(%q) = %q, %v; want an error wrapping ErrInvalid", tt.ref, got, err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("Parse(%q) = %q, %v; want %q", tt.ref, got, err, tt.want)
		}
	}
}

func TestParseErrorIsShort(t *testing.T) {
	_, err := Parse(strings.Repeat("x", 10000))
	if err == nil || len(err.Error()) > 300 {
		t.Fatalf("error for a 10,000-character input is %d characters long; want a short line", len(err.Error()))
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{id, "spotify:artist:" + id, "https://open.spotify.com/artist/" + id + "?si=x",
		"https://open.spotify.com/intl-fr/artist/" + id, "%2F", "../", "", "spotify:artist:../../x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, ref string) {
		got, err := Parse(ref)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("Parse(%q) error %v does not wrap ErrInvalid", ref, err)
			}
			return
		}
		if !Valid(got) {
			t.Fatalf("Parse(%q) = %q, which is not a valid ID", ref, got)
		}
		if !strings.Contains(ref, got) {
			t.Fatalf("Parse(%q) = %q, which is not in the input", ref, got)
		}
	})
}
