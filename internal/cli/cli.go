// Package cli parses the commands' lines with kong: flags anywhere on the
// line, each flag defaulting to the environment variable its `envvar` tag
// names, help on standard output, and one line for a usage error.
//
// A variable's problems are reported all at once, each on a line
// "NAME (--flag): what is wrong", so that an operator fixes a task
// definition in one go.
package cli

import (
	"errors"
	"fmt"
	"io"
	"reflect"
	"regexp"
	"runtime"
	"runtime/debug"
	"strings"
	"time"

	"github.com/alecthomas/kong"
)

// Lookup reads an environment variable, telling unset from empty (os.LookupEnv).
type Lookup func(string) (string, bool)

// ExitUsage is the exit code of a usage or configuration error; 1 is a
// failure at run time.
const ExitUsage = 2

// Version is the build's version, read from the binary's build information:
// the module version, or the VCS revision for a build from a checkout.
func Version() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	v := bi.Main.Version
	var rev, modified string
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			if s.Value == "true" {
				modified = "-dirty"
			}
		}
	}
	if (v == "" || v == "(devel)") && rev != "" {
		v = rev[:min(12, len(rev))] + modified
	}
	if v == "" {
		v = "(devel)"
	}
	return v
}

// VersionLine is what --version prints.
func VersionLine(name string) string {
	return fmt.Sprintf("%s %s %s", name, Version(), runtime.Version())
}

// Parsed is a parsed command line.
type Parsed struct {
	Ctx *kong.Context
	// Problems are the variables and flags with bad values, one error a line.
	problems []error
}

// Fail records a problem with the variable env.
func (p *Parsed) Fail(env, format string, args ...any) {
	p.problems = append(p.problems, fmt.Errorf("%s (--%s): %s", env, FlagName(env), fmt.Sprintf(format, args...)))
}

// Failf records a problem said in full.
func (p *Parsed) Failf(format string, args ...any) {
	p.problems = append(p.problems, fmt.Errorf(format, args...))
}

// Err returns every recorded problem, joined (one line each), or nil.
func (p *Parsed) Err() error { return errors.Join(p.problems...) }

// Given reports whether the variable env (or its flag) was set, even to "".
func (p *Parsed) Given(env string) bool {
	for _, tr := range p.Ctx.Path {
		if tr.Flag != nil && tr.Flag.Tag.Get("envvar") == env {
			return true
		}
	}
	return false
}

// FlagName returns the kebab-case flag of an environment variable.
func FlagName(env string) string {
	return strings.ReplaceAll(strings.ToLower(env), "_", "-")
}

// Duration writes d as a flag's default: "1h", "20s", "1m30s" (without
// time.Duration.String's trailing "0m0s").
func Duration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// ErrHelp is returned by Parse when it answered --help, help CMD or
// --version on stdout: the command exits 0.
var ErrHelp = errors.New("help shown")

// Parse parses args into grammar (a kong struct). It returns ErrHelp when
// help or the version was printed, and otherwise a one-line usage error
// ending with a pointer to --help. Problems with variables are left in the
// Parsed (see Err). secrets names variables never taken as flags; defaults
// are the values the grammar's default tags name as ${NAME}, so that each
// default is written once, where its package declares it.
func Parse(name, description string, grammar any, defaults map[string]string, args []string, lookup Lookup, secrets []string, stdout, stderr io.Writer) (*Parsed, error) {
	for _, a := range args {
		if a == "--" {
			break
		}
		for _, s := range secrets {
			if f := "--" + FlagName(s); a == f || strings.HasPrefix(a, f+"=") {
				return nil, fmt.Errorf("%s: secrets are never taken from a flag (ps shows flags to every user); set %s or %s_FILE", f, s, s)
			}
		}
	}
	exited := false
	p := &Parsed{}
	parser, err := kong.New(grammar,
		kong.Name(name), kong.Description(description),
		kong.Writers(stdout, stderr),
		kong.Exit(func(int) { exited = true }),
		kong.Vars(defaults),
		kong.Vars{"version": VersionLine(name)},
		kong.ValueFormatter(helpWithEnv),
		kong.ConfigureHelp(kong.HelpOptions{Compact: true, NoExpandSubcommands: true}),
		kong.Resolvers(&envResolver{lookup: lookup, p: p}),
	)
	if err != nil {
		panic(fmt.Sprintf("cli: bad grammar: %v", err)) // a programming error, caught by every test
	}
	kctx, err := parser.Parse(flagsLast(parser.Model, args))
	if exited { // kong exits only after printing help or the version
		return nil, ErrHelp
	}
	if err != nil {
		where := name
		var pe *kong.ParseError
		if errors.As(err, &pe) && pe.Context != nil {
			if n := pe.Context.Selected(); n != nil {
				where = n.FullPath()
			}
		}
		msg := eolError.ReplaceAllString(err.Error(), "needs a value")
		return nil, fmt.Errorf("%s (see '%s --help')", msg, where)
	}
	if kctx.Command() == "help" || strings.HasPrefix(kctx.Command(), "help ") {
		rest := kctx.Args[1:]
		var cmd []string
		for _, a := range rest {
			if !strings.HasPrefix(a, "-") {
				cmd = append(cmd, a)
			}
		}
		return Parse(name, description, grammar, defaults, append(cmd, "--help"), lookup, secrets, stdout, stderr)
	}
	p.Ctx = kctx
	return p, nil
}

var eolError = regexp.MustCompile(`expected .*but got "EOL" \(<EOL>\)`)

// flagsLast moves the flags (with their values) after the positional
// arguments, keeping the order of each. kong reads a list of positional
// arguments only up to the first flag, and data engineers type flags
// last (enqueue ID --force ID2); the flags of a parent command are
// accepted after a subcommand, so nothing is lost by the move.
func flagsLast(app *kong.Application, args []string) []string {
	takesValue := map[string]bool{}
	_ = kong.Visit(app, func(n kong.Visitable, next kong.Next) error {
		if f, ok := n.(*kong.Flag); ok {
			takesValue["--"+f.Name] = !f.IsBool()
			if f.Short != 0 {
				takesValue["-"+string(f.Short)] = !f.IsBool()
			}
		}
		return next(nil)
	})
	var pos, flags []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "--":
			return append(append(append(pos, flags...), "--"), args[i+1:]...)
		case strings.HasPrefix(a, "-") && a != "-":
			flags = append(flags, a)
			if takesValue[a] && i+1 < len(args) { // --name VALUE (not --name=VALUE)
				i++
				flags = append(flags, args[i])
			}
		default:
			pos = append(pos, a)
		}
	}
	return append(pos, flags...)
}

// Help is the `help [COMMAND]` command; Parse answers it.
type Help struct {
	Command []string `arg:"" optional:"" help:"The command to show help for."`
}

// helpWithEnv appends the variable a flag defaults to.
func helpWithEnv(v *kong.Value) string {
	h := kong.DefaultHelpValueFormatter(v)
	if env := v.Tag.Get("envvar"); env != "" {
		h += " ($" + env + ")"
	}
	return h
}

// envResolver gives a flag not on the command line the value of its
// variable. A value that does not parse is recorded as a problem naming
// the variable, and the flag keeps its default, so that every problem is
// reported at once.
type envResolver struct {
	lookup Lookup
	p      *Parsed
}

func (r *envResolver) Validate(*kong.Application) error { return nil }

func (r *envResolver) Resolve(_ *kong.Context, _ *kong.Path, f *kong.Flag) (any, error) {
	env := f.Tag.Get("envvar")
	if env == "" {
		return nil, nil
	}
	v, ok := r.lookup(env)
	if !ok {
		return nil, nil
	}
	kind := f.Target.Kind()
	if v == "" && kind != reflect.String {
		return nil, nil // empty is unset for a typed value
	}
	probe := reflect.New(f.Target.Type()).Elem()
	if err := f.Value.Parse(kong.Scan().PushTyped(v, kong.FlagValueToken), probe); err != nil {
		r.p.Fail(env, "%s", describe(f.Target.Type(), v))
		return nil, nil
	}
	return v, nil
}

func describe(t reflect.Type, v string) string {
	switch {
	case t == reflect.TypeOf(time.Duration(0)):
		return fmt.Sprintf("%q is not a duration (examples: 30s, 1h, 24h)", v)
	case t.Kind() == reflect.Bool:
		return fmt.Sprintf("%q is not true or false", v)
	case t.Kind() >= reflect.Int && t.Kind() <= reflect.Uint64:
		return fmt.Sprintf("%q is not a whole number", v)
	case t.Kind() == reflect.Float32 || t.Kind() == reflect.Float64:
		return fmt.Sprintf("%q is not a number", v)
	}
	return fmt.Sprintf("%q is not valid", v)
}

// Secret reads the variable env, or the file its env_FILE variant names
// (as container platforms mount secrets). fileFlag is the value of the
// --env-file flag, if any. It returns "" when neither is set.
func Secret(p *Parsed, lookup Lookup, env, file string) string {
	v, ok := lookup(env)
	if file != "" {
		if ok && v != "" {
			p.Failf("%s_FILE (--%s-file): %s is set too: set one of them", env, FlagName(env), env)
			return ""
		}
		b, err := readSmall(file)
		if err != nil {
			p.problems = append(p.problems, fmt.Errorf("%s_FILE (--%s-file): %v", env, FlagName(env), err))
			return ""
		}
		return strings.TrimSpace(string(b))
	}
	return v
}

// UsageError is a bad flag, argument or variable, or a setting that names a
// queue or store that cannot be opened: the command prints its one line and
// exits ExitUsage. Var names the variable at fault, when there is one.
type UsageError struct {
	Var string
	Err error
}

func (e *UsageError) Error() string {
	if e.Var == "" {
		return e.Err.Error()
	}
	return fmt.Sprintf("%s (--%s): %v", e.Var, FlagName(e.Var), e.Err)
}

func (e *UsageError) Unwrap() error { return e.Err }

// Usage returns err as a usage error (nil stays nil).
func Usage(err error) error {
	if err == nil {
		return nil
	}
	return &UsageError{Err: err}
}

// VarError is a usage error of the variable name (its flag named too).
func VarError(name string, err error) error { return &UsageError{Var: name, Err: err} }

// VarErrorf is VarError with a formatted message.
func VarErrorf(name, format string, args ...any) error {
	return &UsageError{Var: name, Err: fmt.Errorf(format, args...)}
}

// IsUsage reports whether err is, or wraps, a usage error.
func IsUsage(err error) bool {
	var u *UsageError
	return errors.As(err, &u)
}

// Fail prints err to w, each of its lines prefixed with the command's name
// ("producer: …"), and returns the exit code it means: ExitUsage for a
// usage error, else 1.
func Fail(w io.Writer, name string, err error) int {
	for line := range strings.SplitSeq(err.Error(), "\n") {
		fmt.Fprintln(w, name+": "+line)
	}
	if IsUsage(err) {
		return ExitUsage
	}
	return 1
}
