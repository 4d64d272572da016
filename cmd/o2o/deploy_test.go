package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/merchant/o2o/internal/config"
)

// There is no Docker engine in CI, so the deployment files are checked statically: the compose
// environment must pass the service's own configuration validation, the simulator must be wired to
// the service's webhook with the same credentials, and the Dockerfile must copy what the build needs.

type compose struct {
	Services map[string]service `yaml:"services"`
	Secrets  map[string]struct {
		File string `yaml:"file"`
	} `yaml:"secrets"`
}

type service struct {
	Build       any               `yaml:"build"`
	Image       string            `yaml:"image"`
	Entrypoint  []string          `yaml:"entrypoint"`
	Environment map[string]string `yaml:"environment"`
	DependsOn   map[string]struct {
		Condition string `yaml:"condition"`
	} `yaml:"depends_on"`
	Secrets     []string `yaml:"secrets"`
	Ports       []string `yaml:"ports"`
	Healthcheck struct {
		Test []string `yaml:"test"`
	} `yaml:"healthcheck"`
}

// env is a service's environment as its process sees it: a /run/secrets/<name> path names the file
// compose mounts there, here read from the repository.
func (c compose) env(t *testing.T, s service) map[string]string {
	t.Helper()
	out := map[string]string{}
	for k, v := range s.Environment {
		if name, ok := strings.CutPrefix(v, "/run/secrets/"); ok {
			if !slices.Contains(s.Secrets, name) || c.Secrets[name].File == "" {
				t.Fatalf("%s=%s, but the service is not given secret %q from a file", k, v, name)
			}
			v = filepath.Join("../..", c.Secrets[name].File)
		}
		out[k] = v
	}
	return out
}

// secret is the content of a secret setting NAME, given directly or as NAME_FILE.
func secret(t *testing.T, env map[string]string, name string) string {
	t.Helper()
	if f, ok := env[name+"_FILE"]; ok {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimSpace(string(raw))
	}
	return env[name]
}

func TestComposeIsWiredAndValid(t *testing.T) {
	raw, err := os.ReadFile("../../docker-compose.yml")
	if err != nil {
		t.Fatal(err)
	}
	var c compose
	if err := yaml.Unmarshal(raw, &c); err != nil {
		t.Fatal(err)
	}
	o2o, sim, pg := c.Services["o2o"], c.Services["dokusim"], c.Services["postgres"]
	if o2o.Build == nil || sim.Build == nil || pg.Image == "" {
		t.Fatalf("services o2o, dokusim (built here) and postgres (an image) are required: %+v", c.Services)
	}
	env, simEnv := c.env(t, o2o), c.env(t, sim)
	for k, v := range env {
		t.Setenv(k, v)
	}
	cfg, err := config.Load()
	if err != nil {
		t.Fatalf("the compose environment of o2o does not pass config validation: %v", err)
	}
	if !strings.Contains(cfg.DatabaseURL.Value(), "@postgres:5432/"+pg.Environment["POSTGRES_DB"]) {
		t.Fatalf("DATABASE_URL does not point at the postgres service: %s", cfg.DatabaseURL.Value())
	}
	if sim.Entrypoint[0] != "/dokusim" || cfg.DokuBaseURL != "http://dokusim:"+port(sim.Environment["DOKUSIM_ADDR"]) {
		t.Fatalf("o2o's DOKU_BASE_URL %s does not reach the simulator", cfg.DokuBaseURL)
	}
	if simEnv["DOKU_CLIENT_ID"] != cfg.DokuClientID || secret(t, simEnv, "DOKU_SECRET_KEY") != cfg.DokuSecretKey.Value() {
		t.Fatal("simulator and service credentials differ: every notification would be refused")
	}
	if want := "http://o2o:" + port(cfg.HTTPAddr) + cfg.DokuNotificationPath; sim.Environment["DOKUSIM_NOTIFICATION_URL"] != want {
		t.Fatalf("simulator notifies %s, want %s", sim.Environment["DOKUSIM_NOTIFICATION_URL"], want)
	}
	// o2o starts once its database and its DOKU answer, not merely once their containers exist.
	for _, dep := range []string{"postgres", "dokusim"} {
		if o2o.DependsOn[dep].Condition != "service_healthy" {
			t.Errorf("o2o must wait for %s to be healthy", dep)
		}
	}
	for name, s := range c.Services {
		if len(s.Healthcheck.Test) == 0 {
			t.Errorf("service %s has no healthcheck", name)
		}
		// Unauthenticated controls (the simulator) and a local stack: reachable from this machine only.
		for _, p := range s.Ports {
			if !strings.HasPrefix(p, "127.0.0.1:") {
				t.Errorf("service %s publishes %q on every interface; publish on 127.0.0.1", name, p)
			}
		}
	}
}

// The healthchecks of the services built here run the image's own binary (it has no shell), with a
// command that binary has, and that command tells a ready service from one that is not.
func TestComposeHealthchecksRunWhatTheImageHas(t *testing.T) {
	raw, err := os.ReadFile("../../docker-compose.yml")
	if err != nil {
		t.Fatal(err)
	}
	var c compose
	if err := yaml.Unmarshal(raw, &c); err != nil {
		t.Fatal(err)
	}
	ready := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer ready.Close()
	down := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(503) }))
	defer down.Close()
	for name, s := range c.Services {
		if s.Build == nil {
			continue
		}
		test := s.Healthcheck.Test
		if len(test) < 3 || test[0] != "CMD" || test[1] != "/o2o" || test[2] != "healthcheck" {
			t.Fatalf("service %s: healthcheck %q, want [CMD /o2o healthcheck …] (the image has no shell)", name, test)
		}
		if len(test) > 3 && !strings.HasPrefix(test[3], "http://127.0.0.1:"+port(s.Environment["DOKUSIM_ADDR"])+"/") {
			t.Errorf("service %s: healthcheck asks %s, not its own address", name, test[3])
		}
	}
	if err := run(context.Background(), []string{"healthcheck", ready.URL}, io.Discard); err != nil {
		t.Fatalf("healthcheck of a ready service: %v", err)
	}
	if err := run(context.Background(), []string{"healthcheck", down.URL}, io.Discard); err == nil {
		t.Fatal("healthcheck of a service answering 503 passed")
	}
	t.Setenv("HTTP_ADDR", ready.Listener.Addr().String())
	if err := run(context.Background(), []string{"healthcheck"}, io.Discard); err != nil {
		t.Fatalf("healthcheck on HTTP_ADDR: %v", err)
	}
}

func port(addr string) string { return addr[strings.LastIndex(addr, ":")+1:] }

func TestEnvExampleNamesOnlyRealSettings(t *testing.T) {
	t.Parallel()
	raw, err := os.ReadFile("../../.env.example")
	if err != nil {
		t.Fatal(err)
	}
	// What reads settings: the service's config, the simulator's (its envconfig tags) and make run
	// (the list at the top of .dev/run.sh).
	known := map[string]string{}
	collectDefaults(reflect.TypeOf(config.Config{}), known)
	sim, err := os.ReadFile("../dokusim/main.go")
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range regexp.MustCompile(`envconfig:"([A-Z0-9_]+)"`).FindAllStringSubmatch(string(sim), -1) {
		known[m[1]] = ""
	}
	runScript, err := os.ReadFile("../../.dev/run.sh")
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range regexp.MustCompile(`(?m)^#   ([A-Z][A-Z0-9_]+) `).FindAllStringSubmatch(string(runScript), -1) {
		known[m[1]] = ""
	}
	mentioned := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^#?\s*([A-Z][A-Z0-9_]+)=`).FindAllStringSubmatch(string(raw), -1) {
		if _, ok := known[m[1]]; !ok {
			t.Errorf(".env.example names %s, which nothing reads", m[1])
		}
		mentioned[m[1]] = true
	}
	for k := range known {
		if !mentioned[k] {
			t.Errorf(".env.example does not document %s", k)
		}
	}
}

// The image cannot be built here (no Docker engine in CI), so the Dockerfile is checked by doing what
// `docker build` would do with its build stage, minus Docker: the stage's COPY lines are applied to an
// empty temporary directory standing in for the image's filesystem (with .dockerignore applied, as
// Docker sends only the rest of the build context), and the stage's own `go build` commands are then
// run there, in its WORKDIR. A COPY the build needs that is missing, or a .dockerignore line that
// hides it, makes that build fail here as it would in Docker. The final stage is checked to run the
// built service as nonroot from files the build stage produced.
func TestDockerfileCopiesWhatTheBuildNeeds(t *testing.T) {
	t.Parallel()
	const repo = "../../"
	stages := dockerfileStages(t, repo+"Dockerfile")
	if len(stages) < 2 {
		t.Fatalf("Dockerfile has %d stage(s); want a build stage and a runtime stage", len(stages))
	}
	build, final := stages[0], stages[len(stages)-1]

	mod, err := os.ReadFile(repo + "go.mod")
	if err != nil {
		t.Fatal(err)
	}
	goVersion := regexp.MustCompile(`(?m)^go (\d+\.\d+)`).FindStringSubmatch(string(mod))
	if goVersion == nil {
		t.Fatal("go.mod has no go line")
	}
	if !regexp.MustCompile(`^golang:` + regexp.QuoteMeta(goVersion[1]) + `([^.0-9]|$)`).MatchString(build.from) {
		t.Errorf("the build stage's image %q does not match go.mod's go %s", build.from, goVersion[1])
	}

	ignore := dockerignoreRules(t, repo+".dockerignore")
	image := t.TempDir() // the build stage's filesystem root
	workdir, env := "/", []string{}
	var builds [][]string // each: env assignments, then the go build arguments
	for _, in := range build.instrs {
		switch in.cmd {
		case "WORKDIR":
			workdir = dockerPath(workdir, in.args)
		case "ENV":
			env = append(env, dockerEnvInstr(t, in)...)
		case "COPY":
			dockerCopy(t, repo, image, workdir, in, ignore)
		case "ADD":
			t.Errorf("Dockerfile:%d: ADD in the build stage: use COPY, which this check understands", in.line)
		case "RUN":
			for _, cmd := range goBuildsInRun(t, in) {
				builds = append(builds, dockerBuildCommand(t, image, workdir, cmd))
			}
		}
	}
	if len(builds) == 0 {
		t.Fatal("the build stage runs no `go build`")
	}
	if t.Failed() {
		t.FailNow()
	}

	for _, b := range builds {
		var vars, args []string
		for i, a := range b {
			if a == "go" {
				vars, args = b[:i], b[i+1:]
				break
			}
		}
		if !slices.Contains(vars, "CGO_ENABLED=0") && !slices.Contains(env, "CGO_ENABLED=0") {
			t.Errorf("`%s` does not set CGO_ENABLED=0: the runtime image has no C library", shellQuoteForDocker(b))
		}
		cmd := exec.Command("go", args...)
		cmd.Dir = filepath.Join(image, workdir)
		// As in the image: no workspace, none of this machine's GOFLAGS, no VCS stamping (.git is not
		// in the build context), the Go at hand. The module cache is this machine's, which
		// `go test ./...` has just filled.
		cmd.Env = append(os.Environ(), "GOWORK=off", "GOFLAGS=-buildvcs=false", "GOTOOLCHAIN=local")
		cmd.Env = append(cmd.Env, env...)
		cmd.Env = append(cmd.Env, vars...)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("the Dockerfile's build fails with only what its COPY lines bring in (and .dockerignore lets through):\n"+
				"  %s\n%s%v", shellQuoteForDocker(b), out, err)
		}
	}
	if t.Failed() {
		t.FailNow()
	}

	// The runtime stage: what it takes from the build stage was built there, it runs as nonroot, and
	// its ENTRYPOINT (and every compose service's entrypoint) is a file it was given.
	if build.name == "" {
		t.Fatal("the build stage has no name (FROM … AS build) for the runtime stage to copy from")
	}
	provided := map[string]bool{}
	var user string
	var entrypoint []string
	for _, in := range final.instrs {
		switch in.cmd {
		case "USER":
			user = in.args
		case "ENTRYPOINT":
			if err := json.Unmarshal([]byte(in.args), &entrypoint); err != nil {
				t.Errorf("Dockerfile:%d: ENTRYPOINT is not in exec form: %s", in.line, in.args)
			}
		case "COPY":
			from, srcs, dst := dockerCopyArgs(t, in)
			fromBuild := from == "0" || (from != "" && from == build.name)
			for _, src := range srcs {
				if _, err := os.Stat(filepath.Join(image, src)); fromBuild && err != nil {
					t.Errorf("Dockerfile:%d: the build stage does not produce %s", in.line, src)
				}
				if len(srcs) > 1 || strings.HasSuffix(dst, "/") {
					provided[path.Join(dst, path.Base(src))] = true
				} else {
					provided[path.Clean(dst)] = true
				}
			}
		}
	}
	if user != "nonroot" && !strings.HasPrefix(user, "nonroot:") {
		t.Errorf("the runtime stage runs as %q, want nonroot", user)
	}
	if !slices.Equal(entrypoint, []string{"/o2o"}) {
		t.Errorf("ENTRYPOINT is %q, want [\"/o2o\"]", entrypoint)
	}
	raw, err := os.ReadFile(repo + "docker-compose.yml")
	if err != nil {
		t.Fatal(err)
	}
	var c compose
	if err := yaml.Unmarshal(raw, &c); err != nil {
		t.Fatal(err)
	}
	for name, s := range c.Services {
		if s.Build == nil {
			continue
		}
		ep := entrypoint
		if len(s.Entrypoint) > 0 {
			ep = s.Entrypoint
		}
		if len(ep) == 0 || !provided[ep[0]] {
			t.Errorf("compose service %s runs %v, which the image does not contain (it has %v)", name, ep, provided)
		}
	}
}

// dockerInstr is one Dockerfile instruction, continuation lines joined, comments dropped.
type dockerInstr struct {
	cmd  string // upper case: FROM, COPY, RUN, …
	args string
	line int
}

type dockerStage struct {
	from   string // the base image
	name   string // from FROM … AS name
	instrs []dockerInstr
}

// dockerfileStages splits a Dockerfile into its stages. It knows the plain syntax this repository
// uses: backslash continuations, # comments, no heredocs and no escape directive.
func dockerfileStages(t *testing.T, file string) []dockerStage {
	t.Helper()
	raw, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var stages []dockerStage
	var cur strings.Builder
	start := 0
	flush := func() {
		text := strings.TrimSpace(cur.String())
		cur.Reset()
		if text == "" {
			return
		}
		cmd, args, _ := strings.Cut(text, " ")
		in := dockerInstr{cmd: strings.ToUpper(cmd), args: strings.TrimSpace(args), line: start}
		if strings.Contains(in.args, "<<") && (in.cmd == "RUN" || in.cmd == "COPY") {
			t.Fatalf("Dockerfile:%d: heredocs are beyond this check; write the command out", in.line)
		}
		if in.cmd == "FROM" {
			image := strings.Fields(in.args)
			for len(image) > 0 && strings.HasPrefix(image[0], "--") { // --platform=…
				image = image[1:]
			}
			if len(image) == 0 {
				t.Fatalf("Dockerfile:%d: FROM without an image", in.line)
			}
			stage := dockerStage{from: image[0]}
			if len(image) == 3 && strings.EqualFold(image[1], "AS") {
				stage.name = image[2]
			}
			stages = append(stages, stage)
			return
		}
		if len(stages) == 0 {
			if in.cmd != "ARG" {
				t.Fatalf("Dockerfile:%d: %s before the first FROM", in.line, in.cmd)
			}
			return
		}
		stages[len(stages)-1].instrs = append(stages[len(stages)-1].instrs, in)
	}
	for i, line := range strings.Split(string(raw), "\n") {
		trimmed := strings.TrimSpace(line)
		if strings.HasPrefix(trimmed, "#") || (trimmed == "" && cur.Len() > 0) {
			continue // comments and blank lines vanish, even inside a continued instruction
		}
		if cur.Len() == 0 {
			start = i + 1
		}
		if body, continued := strings.CutSuffix(strings.TrimRight(line, " \t\r"), `\`); continued {
			cur.WriteString(body + " ")
			continue
		}
		cur.WriteString(line)
		flush()
	}
	flush()
	return stages
}

// dockerPath resolves p against the working directory dir, as WORKDIR and COPY destinations are.
func dockerPath(dir, p string) string {
	if path.IsAbs(p) {
		return path.Clean(p)
	}
	return path.Join(dir, p)
}

func dockerEnvInstr(t *testing.T, in dockerInstr) []string {
	t.Helper()
	if k, v, ok := strings.Cut(in.args, " "); ok && !strings.Contains(k, "=") {
		return []string{k + "=" + strings.TrimSpace(v)} // the old `ENV KEY value` form
	}
	words, err := shellWords(in.args)
	if err != nil {
		t.Fatalf("Dockerfile:%d: ENV: %v", in.line, err)
	}
	return words
}

// dockerCopyArgs splits a COPY into its --from stage (empty for the build context), sources and
// destination. Flags that change which files are copied are refused rather than misread.
func dockerCopyArgs(t *testing.T, in dockerInstr) (from string, srcs []string, dst string) {
	t.Helper()
	var words []string
	if strings.HasPrefix(in.args, "[") {
		if err := json.Unmarshal([]byte(in.args), &words); err != nil {
			t.Fatalf("Dockerfile:%d: COPY: %v", in.line, err)
		}
	} else {
		words = strings.Fields(in.args)
	}
	for len(words) > 0 && strings.HasPrefix(words[0], "--") {
		flag := words[0]
		words = words[1:]
		switch name, value, _ := strings.Cut(flag, "="); name {
		case "--from":
			from = value
		case "--chown", "--chmod", "--link":
			// ownership and layering only
		default:
			t.Fatalf("Dockerfile:%d: COPY %s is beyond this check", in.line, flag)
		}
	}
	if len(words) < 2 {
		t.Fatalf("Dockerfile:%d: COPY needs a source and a destination: %s", in.line, in.args)
	}
	return from, words[:len(words)-1], words[len(words)-1]
}

// dockerCopy applies one build-stage COPY to the image directory: each source from the repository
// (globs expanded, .dockerignore applied); a directory source brings its contents, not itself.
func dockerCopy(t *testing.T, repo, image, workdir string, in dockerInstr, ignored func(string) bool) {
	t.Helper()
	from, srcs, dst := dockerCopyArgs(t, in)
	if from != "" {
		return
	}
	dstIsDir := strings.HasSuffix(dst, "/") || dst == "." || strings.HasSuffix(dst, "/.")
	if len(srcs) > 1 && !dstIsDir {
		t.Errorf("Dockerfile:%d: COPY with several sources needs a destination ending in /", in.line)
		return
	}
	dst = dockerPath(workdir, dst)
	for _, src := range srcs {
		rel := path.Clean(strings.TrimPrefix(src, "/"))
		if rel == ".." || strings.HasPrefix(rel, "../") {
			t.Errorf("Dockerfile:%d: COPY %s is outside the build context", in.line, src)
			continue
		}
		matches, _ := filepath.Glob(filepath.Join(repo, filepath.FromSlash(rel)))
		if len(matches) == 0 {
			t.Errorf("Dockerfile:%d: COPY %s: no such file in the build context", in.line, src)
		}
		for _, m := range matches {
			mrel, err := filepath.Rel(repo, m)
			if err != nil {
				t.Fatal(err)
			}
			mrel = filepath.ToSlash(mrel)
			if mrel != "." && ignored(mrel) {
				t.Errorf("Dockerfile:%d: COPY %s: .dockerignore leaves %s out of the build context", in.line, src, mrel)
				continue
			}
			info, err := os.Stat(m)
			if err != nil {
				t.Fatal(err)
			}
			if !info.IsDir() {
				target := dst
				if dstIsDir {
					target = path.Join(dst, path.Base(mrel))
				}
				copyFileForDocker(t, m, filepath.Join(image, target), info.Mode())
				continue
			}
			err = filepath.WalkDir(m, func(p string, d fs.DirEntry, err error) error {
				if err != nil {
					return err
				}
				r, _ := filepath.Rel(repo, p)
				r = filepath.ToSlash(r)
				if r != "." && ignored(r) {
					if d.IsDir() {
						return filepath.SkipDir
					}
					return nil
				}
				if d.IsDir() {
					return nil
				}
				inside, _ := filepath.Rel(m, p)
				info, err := d.Info()
				if err != nil {
					return err
				}
				copyFileForDocker(t, p, filepath.Join(image, dst, inside), info.Mode())
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
		}
	}
}

func copyFileForDocker(t *testing.T, from, to string, mode fs.FileMode) {
	t.Helper()
	if !mode.IsRegular() {
		t.Fatalf("%s: only regular files are expected in the build context", from)
	}
	data, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(to), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, data, mode.Perm()); err != nil {
		t.Fatal(err)
	}
}

// dockerignoreRules reads .dockerignore into a predicate on slash-separated paths relative to the
// build context, with Docker's rules: the last matching line wins, "!" re-includes, a line matching
// a directory covers everything under it, "**" spans directories.
func dockerignoreRules(t *testing.T, file string) func(string) bool {
	t.Helper()
	raw, err := os.ReadFile(file)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return func(string) bool { return false }
		}
		t.Fatal(err)
	}
	type rule struct {
		re      *regexp.Regexp
		exclude bool
	}
	var rules []rule
	for _, line := range strings.Split(string(raw), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		include := strings.HasPrefix(line, "!")
		pattern := path.Clean(strings.TrimPrefix(strings.TrimPrefix(line, "!"), "/"))
		var re strings.Builder
		re.WriteString("^")
		for i := 0; i < len(pattern); i++ {
			switch c := pattern[i]; {
			case strings.HasPrefix(pattern[i:], "**/"):
				re.WriteString("(.*/)?")
				i += 2
			case strings.HasPrefix(pattern[i:], "**"):
				re.WriteString(".*")
				i++
			case c == '*':
				re.WriteString("[^/]*")
			case c == '?':
				re.WriteString("[^/]")
			default:
				re.WriteString(regexp.QuoteMeta(string(c)))
			}
		}
		re.WriteString("(/.*)?$") // a matching directory takes its contents with it
		rules = append(rules, rule{regexp.MustCompile(re.String()), !include})
	}
	return func(p string) bool {
		ignored := false
		for _, r := range rules {
			if r.re.MatchString(p) {
				ignored = r.exclude
			}
		}
		return ignored
	}
}

// goBuildsInRun returns the `go build` commands in a RUN instruction, each as its words (leading
// VAR=value assignments included); other commands in it are not this check's business.
func goBuildsInRun(t *testing.T, in dockerInstr) [][]string {
	t.Helper()
	var out [][]string
	for _, part := range regexp.MustCompile(`&&|\|\||;`).Split(in.args, -1) {
		words, err := shellWords(part)
		if err != nil {
			t.Fatalf("Dockerfile:%d: RUN: %v", in.line, err)
		}
		i := 0
		for i < len(words) && regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*=`).MatchString(words[i]) {
			i++
		}
		if len(words) > i+1 && words[i] == "go" && words[i+1] == "build" {
			out = append(out, words)
		}
	}
	return out
}

// dockerBuildCommand turns a Dockerfile `go build` into the one run here: the same flags and
// packages, with its -o output moved into the image directory (the runtime stage looks for it there).
func dockerBuildCommand(t *testing.T, image, workdir string, words []string) []string {
	t.Helper()
	cmd := slices.Clone(words)
	output := false
	for i := range cmd {
		switch {
		case cmd[i] == "-o" && i+1 < len(cmd):
			cmd[i+1] = filepath.Join(image, dockerPath(workdir, cmd[i+1]))
			output = true
		case strings.HasPrefix(cmd[i], "-o="):
			cmd[i] = "-o=" + filepath.Join(image, dockerPath(workdir, strings.TrimPrefix(cmd[i], "-o=")))
			output = true
		}
	}
	if !output {
		t.Fatalf("Dockerfile: `%s` has no -o: where would the binary go?", shellQuoteForDocker(words))
	}
	return cmd
}

// shellWords splits s into words as sh does for the simple commands a Dockerfile RUN holds: single
// and double quotes and backslashes; no expansions.
func shellWords(s string) ([]string, error) {
	var words []string
	var w strings.Builder
	inWord := false
	var quote byte
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case quote == '\'':
			if c == '\'' {
				quote = 0
			} else {
				w.WriteByte(c)
			}
		case quote == '"':
			if c == '"' {
				quote = 0
			} else if c == '\\' && i+1 < len(s) && strings.IndexByte(`"\$`+"`", s[i+1]) >= 0 {
				i++
				w.WriteByte(s[i])
			} else {
				w.WriteByte(c)
			}
		case c == '\'' || c == '"':
			quote, inWord = c, true
		case c == '\\' && i+1 < len(s):
			i++
			w.WriteByte(s[i])
			inWord = true
		case c == ' ' || c == '\t' || c == '\n':
			if inWord {
				words = append(words, w.String())
				w.Reset()
				inWord = false
			}
		default:
			w.WriteByte(c)
			inWord = true
		}
	}
	if quote != 0 {
		return nil, fmt.Errorf("unterminated %c quote in %q", quote, s)
	}
	if inWord {
		words = append(words, w.String())
	}
	return words, nil
}

// shellQuoteForDocker joins words into a command line that can be pasted into a shell.
func shellQuoteForDocker(words []string) string {
	quoted := make([]string, len(words))
	for i, w := range words {
		quoted[i] = w
		if w == "" || strings.ContainsAny(w, " \t\n'\"\\$`*?[]{}()<>|&;#~") {
			quoted[i] = "'" + strings.ReplaceAll(w, "'", `'\''`) + "'"
		}
	}
	return strings.Join(quoted, " ")
}

// The configuration reference (deploy/CONFIGURATION.md) is the operator's: every setting the service
// reads is in its table with its real default, and it names nothing the service does not read.
func TestConfigReferenceMatchesConfig(t *testing.T) {
	t.Parallel()
	raw, err := os.ReadFile("../../deploy/CONFIGURATION.md")
	if err != nil {
		t.Fatal(err)
	}
	text := string(raw)
	start := strings.Index(text, "\n## Configuration\n")
	if start < 0 {
		t.Fatal("deploy/CONFIGURATION.md has no Configuration section")
	}
	section := text[start+1:]
	if end := strings.Index(section[3:], "\n## "); end >= 0 {
		section = section[:end+3]
	}

	defaults := map[string]string{}
	collectDefaults(reflect.TypeOf(config.Config{}), defaults)
	documented := map[string]bool{}
	code := regexp.MustCompile("`([^`]*)`")
	for _, line := range strings.Split(section, "\n") {
		cols := strings.Split(line, "|")
		if len(cols) < 4 || !strings.Contains(cols[1], "`") {
			continue
		}
		var names, values []string
		for _, m := range code.FindAllStringSubmatch(cols[1], -1) {
			names = append(names, m[1])
		}
		for _, m := range code.FindAllStringSubmatch(cols[2], -1) {
			values = append(values, m[1])
		}
		for i, name := range names {
			want, known := defaults[name]
			if !known {
				t.Errorf("deploy/CONFIGURATION.md documents %s, which the config does not read", name)
				continue
			}
			documented[name] = true
			got := ""
			if len(values) == len(names) {
				got = values[i]
			}
			if got != want {
				t.Errorf("deploy/CONFIGURATION.md gives %s the default %q, the config %q", name, got, want)
			}
		}
	}
	for name := range defaults {
		if !documented[name] {
			t.Errorf("deploy/CONFIGURATION.md's table lacks %s", name)
		}
	}
}

func collectDefaults(t reflect.Type, into map[string]string) {
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if f.Anonymous {
			collectDefaults(f.Type, into)
			continue
		}
		if k := f.Tag.Get("envconfig"); k != "" {
			into[k] = f.Tag.Get("default")
		}
	}
}

// The repository stands alone: no file refers to a path outside it (a clone has nothing beside it).
func TestNoFileRefersOutsideTheRepository(t *testing.T) {
	t.Parallel()
	out, err := exec.Command("git", "-C", "../..", "ls-files", "--cached", "--others", "--exclude-standard").Output()
	if err != nil {
		t.Fatalf("git ls-files: %v", err)
	}
	outside := regexp.MustCompile(`\.\./shared|\.\./\.library|/work/`)
	for _, name := range strings.Fields(string(out)) {
		if name == "cmd/o2o/deploy_test.go" {
			continue // this test names the patterns it looks for
		}
		raw, err := os.ReadFile(filepath.Join("../..", name))
		if err != nil {
			continue // listed but deleted in the working tree
		}
		if loc := outside.FindIndex(raw); loc != nil {
			line := 1 + strings.Count(string(raw[:loc[0]]), "\n")
			t.Errorf("%s:%d refers to %q, outside the repository", name, line, raw[loc[0]:loc[1]])
		}
	}
}

// Every link between the project's documents leads somewhere: the file exists, and a #fragment names
// a heading of it (as GitHub makes anchors). Documents moved or sections renamed fail here, not in a
// reader's browser.
func TestDocumentLinksResolve(t *testing.T) {
	t.Parallel()
	out, err := exec.Command("git", "-C", "../..", "ls-files", "--cached", "--others", "--exclude-standard", "*.md").Output()
	if err != nil {
		t.Fatalf("git ls-files: %v", err)
	}
	link := regexp.MustCompile(`\]\(([^)\s]+)\)`)
	checked := 0
	for _, name := range strings.Fields(string(out)) {
		raw, err := os.ReadFile(filepath.Join("../..", name))
		if err != nil {
			continue
		}
		text := stripCodeBlocks(string(raw))
		for _, m := range link.FindAllStringSubmatch(text, -1) {
			target := m[1]
			if strings.Contains(target, "://") || strings.HasPrefix(target, "mailto:") {
				continue
			}
			file, fragment, _ := strings.Cut(target, "#")
			path := filepath.Join("../..", filepath.Dir(name), file)
			if file == "" {
				path = filepath.Join("../..", name)
			}
			info, err := os.Stat(path)
			if err != nil {
				t.Errorf("%s links to %s, which does not exist", name, target)
				continue
			}
			checked++
			if fragment == "" {
				continue
			}
			if info.IsDir() {
				t.Errorf("%s links to #%s in a directory (%s)", name, fragment, target)
				continue
			}
			doc, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Contains(anchors(string(doc)), fragment) {
				t.Errorf("%s links to %s: %s has no heading with that anchor", name, target, file)
			}
		}
	}
	if checked < 20 {
		t.Errorf("only %d links checked: is the link pattern still right?", checked)
	}
}

// stripCodeBlocks drops fenced code blocks and inline code, where brackets are not links.
func stripCodeBlocks(s string) string {
	var b strings.Builder
	fenced := false
	for _, line := range strings.Split(s, "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "```") {
			fenced = !fenced
			continue
		}
		if !fenced {
			b.WriteString(regexp.MustCompile("`[^`]*`").ReplaceAllString(line, "") + "\n")
		}
	}
	return b.String()
}

// anchors are the anchors GitHub gives a document's headings: lower case, punctuation but - and _
// dropped, spaces made -, and -1, -2, … for repeats.
func anchors(doc string) []string {
	var out []string
	seen := map[string]int{}
	drop := regexp.MustCompile(`[^\p{L}\p{N} _-]`)
	fenced := false
	for _, line := range strings.Split(doc, "\n") {
		// Code blocks hold no headings; a heading's code spans keep their text in its anchor.
		if strings.HasPrefix(strings.TrimSpace(line), "```") {
			fenced = !fenced
		}
		if fenced || !strings.HasPrefix(line, "#") {
			continue
		}
		title := strings.TrimSpace(strings.TrimLeft(line, "#"))
		a := strings.ReplaceAll(drop.ReplaceAllString(strings.ToLower(title), ""), " ", "-")
		if n := seen[a]; n > 0 {
			out = append(out, fmt.Sprintf("%s-%d", a, n))
		} else {
			out = append(out, a)
		}
		seen[a]++
	}
	return out
}
