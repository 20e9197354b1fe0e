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
