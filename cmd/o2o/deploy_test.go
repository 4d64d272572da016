package main

import (
	"os"
	"reflect"
	"regexp"
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
}

type service struct {
	Build       any               `yaml:"build"`
	Image       string            `yaml:"image"`
	Entrypoint  []string          `yaml:"entrypoint"`
	Environment map[string]string `yaml:"environment"`
	DependsOn   map[string]any    `yaml:"depends_on"`
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
	for k, v := range o2o.Environment {
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
	if sim.Environment["DOKU_CLIENT_ID"] != cfg.DokuClientID || sim.Environment["DOKU_SECRET_KEY"] != cfg.DokuSecretKey.Value() {
		t.Fatal("simulator and service credentials differ: every notification would be refused")
	}
	if want := "http://o2o:" + port(cfg.HTTPAddr) + cfg.DokuNotificationPath; sim.Environment["DOKUSIM_NOTIFICATION_URL"] != want {
		t.Fatalf("simulator notifies %s, want %s", sim.Environment["DOKUSIM_NOTIFICATION_URL"], want)
	}
	if _, ok := o2o.DependsOn["postgres"]; !ok {
		t.Fatal("o2o must wait for postgres")
	}
}

func port(addr string) string { return addr[strings.LastIndex(addr, ":")+1:] }

func TestEnvExampleNamesOnlyRealSettings(t *testing.T) {
	raw, err := os.ReadFile("../../.env.example")
	if err != nil {
		t.Fatal(err)
	}
	known := map[string]string{"DOKUSIM_ADDR": "", "DOKUSIM_NOTIFICATION_URL": "", "DOKUSIM_RETRY_SCHEDULE": ""}
	collectDefaults(reflect.TypeOf(config.Config{}), known)
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

func TestDockerfileCopiesWhatTheBuildNeeds(t *testing.T) {
	raw, err := os.ReadFile("../../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	df := string(raw)
	for _, want := range []string{"COPY go.mod go.sum ./", "COPY cmd ./cmd", "COPY internal ./internal", "COPY migrations ./migrations",
		"./cmd/o2o", "./cmd/dokusim", "CGO_ENABLED=0", "USER nonroot", `ENTRYPOINT ["/o2o"]`} {
		if !strings.Contains(df, want) {
			t.Errorf("Dockerfile lacks %q", want)
		}
	}
	mod, _ := os.ReadFile("../../go.mod")
	goVersion := regexp.MustCompile(`(?m)^go (\d+\.\d+)`).FindStringSubmatch(string(mod))
	if goVersion == nil || !strings.Contains(df, "FROM golang:"+goVersion[1]) {
		t.Errorf("Dockerfile's Go image does not match go.mod's go %v", goVersion)
	}
}

// The README's configuration table is the operator's reference: every setting the service reads is
// in it with its real default, and it names nothing the service does not read.
func TestReadmeConfigTableMatchesConfig(t *testing.T) {
	raw, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	text := string(raw)
	start := strings.Index(text, "\n## Configuration\n")
	if start < 0 {
		t.Fatal("README has no Configuration section")
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
				t.Errorf("README documents %s, which the config does not read", name)
				continue
			}
			documented[name] = true
			got := ""
			if len(values) == len(names) {
				got = values[i]
			}
			if got != want {
				t.Errorf("README gives %s the default %q, the config %q", name, got, want)
			}
		}
	}
	for name := range defaults {
		if !documented[name] {
			t.Errorf("README's configuration table lacks %s", name)
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
