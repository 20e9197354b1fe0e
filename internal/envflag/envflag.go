// Package envflag reads settings from environment variables that flags of
// the same name in kebab-case (QUEUE_URL → --queue-url) override, and
// reports every problem at once, each on a line naming the variable.
package envflag

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
)

// Set is a flag.FlagSet whose flags default to environment variables.
type Set struct {
	FS     *flag.FlagSet
	getenv func(string) string
	vars   []*variable
	errs   []error
}

type variable struct {
	env, flag, def, usage string
	value                 string
}

// New returns a Set for the command name, reading the environment through getenv.
func New(name string, getenv func(string) string, output io.Writer) *Set {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(output)
	return &Set{FS: fs, getenv: getenv}
}

// FlagName returns the kebab-case flag for an environment variable.
func FlagName(env string) string {
	return strings.ReplaceAll(strings.ToLower(env), "_", "-")
}

// Var declares the variable env with default def. Its value is the flag's
// when given, else the environment's when set, else def.
func (s *Set) Var(env, def, usage string) *string {
	v := &variable{env: env, flag: FlagName(env), def: def, usage: usage}
	s.vars = append(s.vars, v)
	// The usage shows def as the default, never the environment's value:
	// that may be a secret, and the usage is printed on any bad flag.
	help := usage + " (env " + env + ")"
	s.FS.StringVar(&v.value, v.flag, def, help)
	if e := s.getenv(env); e != "" {
		v.value = e
	}
	return &v.value
}

// Parse parses args. flag.ErrHelp is returned for --help.
func (s *Set) Parse(args []string) error {
	return s.FS.Parse(args)
}

// Fail records a problem with the variable env.
func (s *Set) Fail(env, format string, args ...any) {
	s.errs = append(s.errs, fmt.Errorf("%s (--%s): %s", env, FlagName(env), fmt.Sprintf(format, args...)))
}

// Err returns every recorded problem, joined (one line each), or nil.
func (s *Set) Err() error { return errors.Join(s.errs...) }

// Duration converts the value of env; empty gives 0.
func (s *Set) Duration(env, value string) time.Duration {
	if value == "" {
		return 0
	}
	d, err := time.ParseDuration(value)
	if err != nil {
		s.Fail(env, "%q is not a duration (examples: 30s, 1h, 24h)", value)
		return 0
	}
	return d
}

// Int converts the value of env, which must be at least min.
func (s *Set) Int(env, value string, min int) int {
	n, err := strconv.Atoi(value)
	if err != nil || n < min {
		s.Fail(env, "%q is not a whole number of at least %d", value, min)
		return 0
	}
	return n
}

// Float converts the value of env, which must be positive.
func (s *Set) Float(env, value string) float64 {
	f, err := strconv.ParseFloat(value, 64)
	if err != nil || f <= 0 || f != f {
		s.Fail(env, "%q is not a positive number", value)
		return 0
	}
	return f
}

// Required records a problem when value is empty.
func (s *Set) Required(env, value string) {
	if strings.TrimSpace(value) == "" {
		s.Fail(env, "is required")
	}
}
