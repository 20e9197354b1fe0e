package stores

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestExists(t *testing.T) {
	dir := t.TempDir()
	there := filepath.Join(dir, "there.db")
	if err := os.WriteFile(there, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := Exists("sqlite:" + there); err != nil {
		t.Errorf("Exists(an existing file): %v", err)
	}
	if err := Exists("dynamodb:top_tracks"); err != nil {
		t.Errorf("Exists(dynamodb): %v", err)
	}
	typo := filepath.Join(dir, "typo.db")
	err := Exists("sqlite:" + typo)
	if err == nil || !strings.Contains(err.Error(), typo+" does not exist") {
		t.Errorf("Exists(a missing file): got %v, want it to say it does not exist", err)
	}
	if _, statErr := os.Stat(typo); statErr == nil {
		t.Error("StoreExists created the file")
	}
}

func TestReadable(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct {
		url, want string // want: a part of the error, or "" for none
	}{
		{"", "is empty"},
		{"mysql:x", "mysql:x"},
		{"sqlite:" + filepath.Join(dir, "missing.db"), "does not exist"},
		{"dynamodb:top_tracks", ""},
	} {
		err := Readable(c.url)
		if c.want == "" {
			if err != nil {
				t.Errorf("Readable(%q) = %v, want nil", c.url, err)
			}
		} else if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Readable(%q) = %v, want an error containing %q", c.url, err, c.want)
		}
	}
}
