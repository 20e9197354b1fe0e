package sqlitequeue

import (
	"fmt"
	"maps"
	"net/url"
	"slices"
	"strings"

	"github.com/sixpotify/top-tracks/internal/sqlitedb"
)

// DefaultName is the queue a URL without ?queue= names.
const DefaultName = "default"

// ParseURL reads an embedded queue URL: sqlite:PATH names the queue "default"
// in the file PATH, sqlite:PATH?queue=NAME the queue NAME (1 to 80 of
// [A-Za-z0-9_-], as SQS names). PATH is relative to the working directory, or
// absolute (sqlite:/var/lib/x.db, or sqlite:///var/lib/x.db).
func ParseURL(u string) (path, name string, err error) {
	rest, ok := strings.CutPrefix(u, "sqlite:")
	if !ok {
		return "", "", fmt.Errorf("queue URL %q: want sqlite:PATH or sqlite:PATH?queue=NAME", u)
	}
	path, query, _ := strings.Cut(rest, "?")
	var problems []string
	path, problem := sqlitedb.FilePath(path)
	if problem != "" {
		problems = append(problems, problem)
	}
	name = DefaultName
	if query != "" {
		values, err := url.ParseQuery(query)
		if err != nil {
			problems = append(problems, fmt.Sprintf("bad query: %v", err))
		}
		for _, k := range slices.Sorted(maps.Keys(values)) {
			switch v := values[k]; {
			case k != "queue":
				problems = append(problems, fmt.Sprintf("unknown parameter %q (only queue=NAME)", k))
			case len(v) != 1:
				problems = append(problems, fmt.Sprintf("queue= given %d times", len(v)))
			default:
				name = v[0]
			}
		}
	}
	if err := validName(name); err != nil {
		problems = append(problems, err.Error())
	}
	if len(problems) > 0 {
		return "", "", fmt.Errorf("queue URL %q: %s", u, strings.Join(problems, "; "))
	}
	return path, name, nil
}

// validName reports whether name is a queue name SQS would accept.
func validName(name string) error {
	if len(name) < 1 || len(name) > 80 {
		return fmt.Errorf("queue name %q: want 1 to 80 characters", name)
	}
	for _, c := range name {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return fmt.Errorf("queue name %q: only letters, digits, '-' and '_'", name)
		}
	}
	return nil
}
