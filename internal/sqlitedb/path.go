package sqlitedb

import (
	"fmt"
	"strings"
)

// FilePath checks the PATH of an embedded URL, sqlite:PATH, and turns
// sqlite:///abs into /abs. It returns the path, or why it is not one: the
// queue and the store are shared by processes through a file, so a host,
// an in-memory database or a file: URI is refused.
func FilePath(p string) (path, problem string) {
	if rest, ok := strings.CutPrefix(p, "//"); ok {
		if !strings.HasPrefix(rest, "/") {
			return "", "sqlite://HOST/… names a host; write sqlite:PATH, or sqlite:///ABSOLUTE/PATH"
		}
		p = rest
	}
	switch {
	case p == "":
		return "", "no file path after sqlite:"
	case p == ":memory:" || strings.HasPrefix(p, "file:"):
		return "", fmt.Sprintf("%q is not a file path; processes share the queue and the store through a file", p)
	}
	return p, ""
}
