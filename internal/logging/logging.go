// Package logging builds the commands' slog loggers: JSON by default (what
// CloudWatch and other collectors parse), text on a terminal.
package logging

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"
)

// ErrLevel and ErrFormat are wrapped by New's errors, to tell which
// setting is wrong.
var (
	ErrLevel  = errors.New("not a log level (debug, info, warn, error)")
	ErrFormat = errors.New("not a log format (json, text)")
)

// New returns a logger writing to w in format ("json", "text", or "" for
// text on a terminal and JSON elsewhere) at level ("debug", "info", "warn",
// "error"; "" is info).
func New(w io.Writer, format, level string) (*slog.Logger, error) {
	var lv slog.Level
	if level != "" {
		if err := lv.UnmarshalText([]byte(level)); err != nil {
			return nil, fmt.Errorf("%q is %w", level, ErrLevel)
		}
	}
	opts := &slog.HandlerOptions{Level: lv, ReplaceAttr: durationsAsStrings}
	var h slog.Handler
	switch strings.ToLower(format) {
	case "json":
		h = slog.NewJSONHandler(w, opts)
	case "text":
		h = slog.NewTextHandler(w, opts)
	case "":
		if IsTerminal(w) {
			h = slog.NewTextHandler(w, opts)
		} else {
			h = slog.NewJSONHandler(w, opts)
		}
	default:
		return nil, fmt.Errorf("%q is %w", format, ErrFormat)
	}
	// An outage repeats the same warning for every message: keep ten a
	// minute of each and count the rest.
	return slog.New(Limit(h, 10, time.Minute)), nil
}

// IsTerminal reports whether w is a character device such as a terminal.
func IsTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// durationsAsStrings writes a duration as a Go duration string ("500ms",
// "15s"), which both handlers then print alike, where JSON would print
// nanoseconds.
func durationsAsStrings(_ []string, a slog.Attr) slog.Attr {
	if a.Value.Kind() == slog.KindDuration {
		a.Value = slog.StringValue(a.Value.Duration().String())
	}
	return a
}
