package sqlitestore

import (
	"fmt"
	"strings"
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
	if r, ok := strings.CutPrefix(rest, "//"); ok {
		if !strings.HasPrefix(r, "/") {
			problems = append(problems, "sqlite://HOST/… names a host; write sqlite:PATH, or sqlite:///ABSOLUTE/PATH")
		}
		rest = r
	}
	switch {
	case rest == "":
		problems = append(problems, "no file path after sqlite:")
	case rest == ":memory:" || strings.HasPrefix(rest, "file:"):
		problems = append(problems, fmt.Sprintf("%q is not a file path; the store lives in a file", rest))
	}
	if len(problems) > 0 {
		return "", fmt.Errorf("store URL %q: %s", u, strings.Join(problems, "; "))
	}
	return rest, nil
}
