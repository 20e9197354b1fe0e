package sqlitedb_test

import (
	"strings"
	"testing"

	"github.com/sixpotify/top-tracks/internal/sqlitedb"
)

func TestFilePath(t *testing.T) {
	for _, tt := range []struct {
		in, path, problem string
	}{
		{in: "sixpotify.db", path: "sixpotify.db"},
		{in: "data/dir with space.db", path: "data/dir with space.db"},
		{in: "/var/lib/s.db", path: "/var/lib/s.db"},
		{in: "///var/lib/s.db", path: "/var/lib/s.db"},
		{in: "", problem: "no file path"},
		{in: ":memory:", problem: "not a file path"},
		{in: "file:s.db?mode=memory", problem: "not a file path"},
		{in: "//host/s.db", problem: "names a host"},
	} {
		path, problem := sqlitedb.FilePath(tt.in)
		if path != tt.path || !strings.Contains(problem, tt.problem) || (tt.problem == "") != (problem == "") {
			t.Errorf("FilePath(%q) = %q, %q; want %q and a problem saying %q", tt.in, path, problem, tt.path, tt.problem)
		}
	}
}
