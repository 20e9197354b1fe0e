package deploy

import (
	"encoding/json"
	"path"
	"regexp"
	"strings"
	"testing"
)

// A Dockerfile check that needs no Docker engine and no linter binary:
// the rules this project's image relies on, read from the Dockerfile's
// instructions.

type instruction struct {
	line int
	cmd  string // upper case: FROM, RUN, COPY …
	args string
}

type stage struct {
	name, image string
	instrs      []instruction
}

// parseDockerfile splits src into instructions (continuation lines joined,
// comments and parser directives dropped) and stages.
func parseDockerfile(src string) (globalArgs map[string]string, stages []stage) {
	globalArgs = map[string]string{}
	var (
		cur   strings.Builder
		start int
	)
	flush := func() {
		text := strings.TrimSpace(cur.String())
		cur.Reset()
		if text == "" {
			return
		}
		cmd, args, _ := strings.Cut(text, " ")
		in := instruction{line: start, cmd: strings.ToUpper(cmd), args: strings.TrimSpace(args)}
		if in.cmd == "FROM" {
			fields := strings.Fields(in.args)
			var s stage
			for i := 0; i < len(fields); i++ {
				f := fields[i]
				switch {
				case strings.HasPrefix(f, "--"):
				case strings.EqualFold(f, "AS") && i+1 < len(fields):
					s.name = fields[i+1]
					i++
				case s.image == "":
					s.image = f
				}
			}
			stages = append(stages, s)
		}
		if len(stages) == 0 {
			if in.cmd == "ARG" {
				k, v, _ := strings.Cut(in.args, "=")
				globalArgs[k] = strings.Trim(v, `"`)
			}
			return
		}
		stages[len(stages)-1].instrs = append(stages[len(stages)-1].instrs, in)
	}
	for i, line := range strings.Split(src, "\n") {
		trimmed := strings.TrimSpace(line)
		if cur.Len() == 0 {
			if trimmed == "" || strings.HasPrefix(trimmed, "#") {
				continue
			}
			start = i + 1
		} else if strings.HasPrefix(trimmed, "#") {
			continue // a comment inside a continued instruction
		}
		if strings.HasSuffix(trimmed, `\`) {
			cur.WriteString(strings.TrimSuffix(trimmed, `\`) + " ")
			continue
		}
		cur.WriteString(trimmed)
		flush()
	}
	flush()
	return globalArgs, stages
}

var argRef = regexp.MustCompile(`\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?`)

func expandArgs(s string, args map[string]string) string {
	return argRef.ReplaceAllStringFunc(s, func(m string) string {
		return args[argRef.FindStringSubmatch(m)[1]]
	})
}

// imageTag returns the tag or digest of an image reference ("" for none).
func imageTag(ref string) string {
	if _, digest, ok := strings.Cut(ref, "@"); ok {
		return digest
	}
	last := ref[strings.LastIndex(ref, "/")+1:]
	if _, tag, ok := strings.Cut(last, ":"); ok {
		return tag
	}
	return ""
}

// execForm parses a JSON-array instruction argument (["a", "b"]).
func execForm(args string) ([]string, bool) {
	var v []string
	if err := json.Unmarshal([]byte(args), &v); err != nil {
		return nil, false
	}
	return v, true
}

func loadDockerfile(t *testing.T) (map[string]string, []stage) {
	t.Helper()
	args, stages := parseDockerfile(string(readRepoFile(t, "Dockerfile")))
	if len(stages) == 0 {
		t.Fatal("Dockerfile: no FROM")
	}
	return args, stages
}

// dockerfileHealthcheck returns the exec form of the final stage's
// HEALTHCHECK CMD.
func dockerfileHealthcheck(t *testing.T) []any {
	t.Helper()
	_, stages := loadDockerfile(t)
	final := stages[len(stages)-1]
	for _, in := range final.instrs {
		if in.cmd != "HEALTHCHECK" {
			continue
		}
		_, cmd, ok := strings.Cut(in.args, "CMD ")
		if !ok {
			t.Fatalf("Dockerfile:%d: HEALTHCHECK without CMD", in.line)
		}
		argv, ok := execForm(strings.TrimSpace(cmd))
		if !ok {
			t.Fatalf("Dockerfile:%d: HEALTHCHECK CMD %s is not in exec form: the runtime image has no shell", in.line, cmd)
		}
		out := make([]any, len(argv))
		for i, a := range argv {
			out[i] = a
		}
		return out
	}
	t.Fatal("Dockerfile: no HEALTHCHECK in the final stage")
	return nil
}

func TestDockerfile(t *testing.T) {
	args, stages := loadDockerfile(t)
	if len(stages) < 2 {
		t.Fatalf("Dockerfile: %d stage(s), want a multi-stage build (build, then a runtime image without the toolchain)", len(stages))
	}
	names := map[string]bool{}
	for _, s := range stages {
		img := expandArgs(s.image, args)
		switch tag := imageTag(img); {
		case names[s.image] || img == "scratch":
		case tag == "" || tag == "latest":
			t.Errorf("Dockerfile: FROM %s (%s) is not pinned to a tag or digest", s.image, img)
		}
		if s.name != "" {
			names[s.name] = true
		}
		stageEnvCGO := false
		for _, in := range s.instrs {
			switch in.cmd {
			case "ENV":
				if strings.Contains(in.args, "CGO_ENABLED=0") {
					stageEnvCGO = true
				}
			case "ADD":
				for _, f := range strings.Fields(in.args) {
					if strings.Contains(f, "://") || strings.HasPrefix(f, "git@") {
						t.Errorf("Dockerfile:%d: ADD of a URL (%s): download in a RUN with a checksum, or COPY", in.line, f)
					}
				}
			case "RUN":
				for _, part := range regexp.MustCompile(`&&|;|\|\|`).Split(in.args, -1) {
					if strings.Contains(part, "go build") && !stageEnvCGO && !strings.Contains(part, "CGO_ENABLED=0") {
						t.Errorf("Dockerfile:%d: %q builds without CGO_ENABLED=0: the runtime image has no libc", in.line, strings.TrimSpace(part))
					}
				}
			}
		}
	}

	final := stages[len(stages)-1]
	var (
		user       string
		entrypoint []string
		copied     = map[string]bool{} // paths of files copied from a build stage
	)
	for _, in := range final.instrs {
		switch in.cmd {
		case "USER":
			user = in.args
		case "ENTRYPOINT":
			ep, ok := execForm(in.args)
			if !ok {
				t.Errorf("Dockerfile:%d: ENTRYPOINT %s is not in exec form: signals would go to a shell", in.line, in.args)
			}
			entrypoint = ep
		case "STOPSIGNAL":
			if in.args != "SIGTERM" && in.args != "SIGINT" {
				t.Errorf("Dockerfile:%d: STOPSIGNAL %s: the worker stops gracefully on SIGTERM or SIGINT only", in.line, in.args)
			}
		case "COPY":
			fields := strings.Fields(in.args)
			from := ""
			var paths []string
			for _, f := range fields {
				if v, ok := strings.CutPrefix(f, "--from="); ok {
					from = v
				} else if !strings.HasPrefix(f, "--") {
					paths = append(paths, f)
				}
			}
			if !names[from] || len(paths) < 2 {
				continue
			}
			dest := paths[len(paths)-1]
			for _, src := range paths[:len(paths)-1] {
				if strings.HasSuffix(dest, "/") {
					copied[dest+path.Base(src)] = true
				} else {
					copied[dest] = true
				}
			}
		}
	}
	if u, _, _ := strings.Cut(user, ":"); u == "" || u == "root" || u == "0" {
		t.Errorf("Dockerfile: the final stage runs as %q, want a non-root USER", user)
	}
	for _, bin := range []string{"/usr/local/bin/worker", "/usr/local/bin/producer"} {
		if !copied[bin] {
			t.Errorf("Dockerfile: the final stage does not copy %s from a build stage (the task definitions run it)", bin)
		}
	}
	if len(entrypoint) == 0 || entrypoint[0] != "/usr/local/bin/worker" {
		t.Errorf("Dockerfile: ENTRYPOINT %v, want [/usr/local/bin/worker]", entrypoint)
	}
	hc := dockerfileHealthcheck(t)
	if len(hc) != 2 || hc[0] != "/usr/local/bin/worker" || hc[1] != "healthcheck" {
		t.Errorf("Dockerfile: HEALTHCHECK CMD %v, want [/usr/local/bin/worker healthcheck]", hc)
	}
}

func TestParseDockerfile(t *testing.T) {
	src := `# syntax=docker/dockerfile:1
ARG V=1.2
FROM golang:${V} AS build
RUN CGO_ENABLED=0 go build \
    # a comment
    -o /out/x .
FROM scratch
COPY --from=build /out/x /usr/local/bin/
`
	args, stages := parseDockerfile(src)
	if args["V"] != "1.2" || len(stages) != 2 {
		t.Fatalf("args %v, %d stages", args, len(stages))
	}
	if got := expandArgs(stages[0].image, args); got != "golang:1.2" || stages[0].name != "build" {
		t.Errorf("stage 0: %q as %q", got, stages[0].name)
	}
	if run := stages[0].instrs[1]; run.cmd != "RUN" || run.args != "CGO_ENABLED=0 go build  -o /out/x ." || run.line != 4 {
		t.Errorf("RUN: %+v", run)
	}
	if tag := imageTag("gcr.io/distroless/static-debian12:nonroot"); tag != "nonroot" {
		t.Errorf("imageTag = %q", tag)
	}
	if tag := imageTag("localhost:5000/img"); tag != "" {
		t.Errorf("imageTag of an untagged image on a registry with a port = %q", tag)
	}
}
