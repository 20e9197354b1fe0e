package sqlitestore

import (
	"fmt"
	"strings"

	"github.com/sixpotify/top-tracks/internal/sqlitedb"
)

// ParseURL reads an embedded store URL, sqlite:PATH, and returns PATH:
// relative to the working directory, or absolute (sqlite:/var/lib/x.db, or
// sqlite:///var/lib/x.db).
func ParseURL(u string) (path string, err error) {
	rest, ok := strings.CutPrefix(u, "sqlite:")
	if !ok {
		return "", fmt.Errorf("store URL %q: want sqlite:PATH", u)
	}
	var problems []string
	if before, _, found := strings.Cut(rest, "?"); found {
		problems = append(problems, "sqlite:PATH takes no parameters here (queue= belongs in a queue URL)")
		rest = before
	}
	path, problem := sqlitedb.FilePath(rest)
	if problem != "" {
		problems = append(problems, problem)
	}
	if len(problems) > 0 {
		return "", fmt.Errorf("store URL %q: %s", u, strings.Join(problems, "; "))
	}
	return path, nil
}
