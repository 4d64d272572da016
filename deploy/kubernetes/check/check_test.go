package check

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/rs/zerolog"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/merchant/o2o/internal/config"
	"github.com/merchant/o2o/internal/httpapi"
)

// The customers' payment page is being added to the service under this prefix; the Ingress exposes
// it already. Until a route of the service starts with it, it is the one Ingress path that is not a
// route (and the test says so in its log).
const paymentPagePrefix = "/pay/"

// The process's own bounds on shutdown (deploy/RUNBOOK.md, "Every wait has a bound"): everything shares
// SHUTDOWN_TIMEOUT, then closing the database takes at most a second more. The margin is for the
// kubelet and the runtime delivering the signal, and a slow node.
const (
	closeBound     = time.Second
	shutdownMargin = 5 * time.Second
)

// Every kustomization builds, and every object decodes strictly into its API type (the CloudNativePG
// Cluster validates against its CRD). The other checks start from these objects.
func TestManifestsDecodeStrictly(t *testing.T) {
	bundles := manifests(t)
	for _, dir := range allDirs {
		b := bundles[dir]
		t.Logf("%s: %d Deployment, %d Job, %d Service, %d Secret, %d ConfigMap, %d PodDisruptionBudget, %d HorizontalPodAutoscaler, %d NetworkPolicy, %d Ingress, %d Namespace, %d Cluster",
			dir, len(b.deployments), len(b.jobs), len(b.services), len(b.secrets), len(b.configMaps), len(b.pdbs), len(b.hpas),
			len(b.policies), len(b.ingresses), len(b.namespaces), len(b.clusters))
	}
	// What each kustomization is for: the service, its migration, the database.
	for _, dir := range []string{baseDir, exampleDir} {
		b := bundles[dir]
		if len(b.deployments) != 1 || len(b.services) != 1 || len(b.pdbs) != 1 || len(b.hpas) != 1 || len(b.ingresses) != 1 || len(b.jobs) != 0 {
			t.Errorf("%s: want one Deployment, Service, PodDisruptionBudget, HorizontalPodAutoscaler and Ingress, and no Job (the migration is applied before, on its own)", dir)
		}
	}
	for _, dir := range []string{migrateDir, exampleMigrateDir} {
		if b := bundles[dir]; len(b.jobs) != 1 || len(b.deployments) != 0 {
			t.Errorf("%s: want the migration Job alone (and its NetworkPolicy), applied and waited for before the service", dir)
		}
	}
	if b := bundles[exampleDatabaseDir]; len(b.clusters) != 1 {
		t.Errorf("%s: want one CloudNativePG Cluster", exampleDatabaseDir)
	}
}

// routes are the service's routes, "METHOD pattern", from its own router (httpapi.NewServer, walked
// with chi.Walk), with the webhook at notificationPath.
func routes(t *testing.T, notificationPath string) map[string]bool {
	t.Helper()
	// Building the router calls nothing of its dependencies; no request is served here.
	h := httpapi.NewServer(httpapi.Config{NotificationPath: notificationPath, MaxBodyBytes: 1 << 16},
		httpapi.Deps{Logger: zerolog.Nop()})
	r, ok := h.(chi.Routes)
	if !ok {
		t.Fatalf("httpapi.NewServer returns a %T, not a chi router: walk its routes another way", h)
	}
	out := map[string]bool{}
	err := chi.Walk(r, func(method, route string, _ http.Handler, _ ...func(http.Handler) http.Handler) error {
		out[method+" "+route] = true
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// Every probe asks a route the service has, with GET, on the port of HTTP_ADDR; readiness is /readyz
// (the one route that says the schema is current, which MIGRATE_ON_START=false relies on), liveness
// is not (a database outage must not restart every replica). The Ingress exposes DOKU's
// notification path exactly (a POST route of the service) and the payment page, and nothing else.
func TestProbesAndIngressPathsAreRoutes(t *testing.T) {
	bundles := manifests(t)
	for _, dir := range []string{baseDir, exampleDir} {
		b := bundles[dir]
		for _, w := range b.workloads() {
			env, _ := w.environment() // its problems are TestEnvironmentIsRealSettings'
			notificationPath := value(env, "DOKU_NOTIFICATION_PATH")
			have := routes(t, notificationPath)
			httpPort := addrPort(t, w.where, "HTTP_ADDR", value(env, "HTTP_ADDR"))
			c := w.container()
			probes := map[string]*corev1.Probe{"startupProbe": c.StartupProbe, "livenessProbe": c.LivenessProbe, "readinessProbe": c.ReadinessProbe}
			for _, kind := range sortedKeys(probes) {
				p := probes[kind]
				if p == nil {
					if kind != "startupProbe" {
						t.Errorf("%s: no %s", w.where, kind)
					}
					continue
				}
				if p.HTTPGet == nil {
					t.Errorf("%s: %s is not an HTTP GET (the service has health routes; the image has no shell for exec)", w.where, kind)
					continue
				}
				if !have["GET "+p.HTTPGet.Path] {
					t.Errorf("%s: %s asks GET %s, which is not a route of the service (its GET routes: %s)", w.where, kind, p.HTTPGet.Path, strings.Join(getRoutes(have), " "))
				}
				if port := containerPort(c, p.HTTPGet.Port.StrVal, p.HTTPGet.Port.IntVal); port != httpPort {
					t.Errorf("%s: %s asks port %s (%d), not HTTP_ADDR's %d", w.where, kind, p.HTTPGet.Port.String(), port, httpPort)
				}
			}
			if c.ReadinessProbe != nil && c.ReadinessProbe.HTTPGet != nil && c.ReadinessProbe.HTTPGet.Path != "/readyz" {
				t.Errorf("%s: readinessProbe asks %s; /readyz is the route that fails while the database is unreachable or the schema behind", w.where, c.ReadinessProbe.HTTPGet.Path)
			}
			if c.LivenessProbe != nil && c.LivenessProbe.HTTPGet != nil && c.LivenessProbe.HTTPGet.Path == "/readyz" {
				t.Errorf("%s: livenessProbe asks /readyz: a database outage would restart every replica; use /healthz", w.where)
			}
			for _, ing := range b.ingresses {
				checkIngressPaths(t, b.dir, ing, notificationPath, have)
			}
		}
	}
}

func getRoutes(have map[string]bool) []string {
	var out []string
	for r := range have {
		if p, ok := strings.CutPrefix(r, "GET "); ok {
			out = append(out, p)
		}
	}
	sort.Strings(out)
	return out
}

func checkIngressPaths(t *testing.T, dir string, ing *networkingv1.Ingress, notificationPath string, have map[string]bool) {
	t.Helper()
	where := fmt.Sprintf("%s: Ingress %s", dir, ing.Name)
	if ing.Spec.DefaultBackend != nil {
		t.Errorf("%s: a defaultBackend exposes every path", where)
	}
	exposed := map[string]bool{}
	for _, rule := range ing.Spec.Rules {
		if rule.HTTP == nil {
			continue
		}
		for _, p := range rule.HTTP.Paths {
			kind := corev1PathType(p.PathType)
			exposed[kind+" "+p.Path] = true
			switch {
			case kind == "Exact" && p.Path == notificationPath:
				if !have["POST "+p.Path] {
					t.Errorf("%s: exposes %s, DOKU_NOTIFICATION_PATH, but the service has no POST route there", where, p.Path)
				}
			case kind == "Prefix" && p.Path == paymentPagePrefix:
				under := false
				for r := range have {
					_, route, _ := strings.Cut(r, " ")
					under = under || strings.HasPrefix(route, paymentPagePrefix)
				}
				if !under {
					t.Logf("%s: %s (Prefix) is the payment page, which the service does not serve yet: no route starts with it", where, p.Path)
				}
			default:
				t.Errorf("%s: exposes %s (%s) to the internet; only DOKU's notification path %s (Exact) and the payment page %s (Prefix) may be public",
					where, p.Path, kind, notificationPath, paymentPagePrefix)
			}
		}
	}
	for _, want := range []string{"Exact " + notificationPath, "Prefix " + paymentPagePrefix} {
		if !exposed[want] {
			t.Errorf("%s: does not expose %s", where, want)
		}
	}
}

func corev1PathType(p *networkingv1.PathType) string {
	if p == nil {
		return "(no pathType)"
	}
	return string(*p)
}

// Every environment variable of the service's and the migration's containers is a setting the
// service reads (internal/config's envconfig tags); a secret setting is given only as NAME_FILE (a
// mounted file), never in the environment; the migration sets only database settings, all that
// `o2o migrate` reads.
func TestEnvironmentIsRealSettings(t *testing.T) {
	known := settings()
	for _, dir := range allDirs {
		for _, w := range manifests(t)[dir].workloads() {
			env, problems := w.environment()
			report(t, problems)
			for _, name := range sortedKeys(env) {
				s, ok := known[name]
				if base, isFile := strings.CutSuffix(name, "_FILE"); isFile && !ok {
					if s, ok = known[base]; ok && !s.secret {
						t.Errorf("%s: %s is set, but %s is not a secret setting: only secrets are read from files", w.where, name, base)
						continue
					}
				} else if ok && s.secret {
					t.Errorf("%s: the secret %s is given in the environment (%s); mount it and set %s_FILE", w.where, name, env[name].from, name)
				}
				if !ok {
					t.Errorf("%s: %s (%s) is not a setting of the service (internal/config reads no such variable)", w.where, name, env[name].from)
					continue
				}
				if w.kind == "Job" && !s.database {
					t.Errorf("%s: %s is not a database setting; `o2o migrate` reads only those (config.Database)", w.where, name)
				}
			}
		}
	}
}

// Every Secret, ConfigMap and key a container mounts exists: created by the kustomization's
// generators, or (the database's CA) by CloudNativePG for the overlay's Cluster; every NAME_FILE names
// a file a read-only mount provides.
func TestSecretsAreMountedFromWhatIsCreated(t *testing.T) {
	bundles := manifests(t)
	for _, dir := range allDirs {
		for _, w := range bundles[dir].workloads() {
			env, _ := w.environment()
			c := w.container()
			for _, m := range c.VolumeMounts {
				if !m.ReadOnly {
					t.Errorf("%s: volume %s is mounted writable at %s; mount secrets read-only", w.where, m.Name, m.MountPath)
				}
			}
			for _, name := range sortedKeys(env) {
				if !strings.HasSuffix(name, "_FILE") {
					continue
				}
				mounted := false
				for _, m := range c.VolumeMounts {
					mounted = mounted || strings.HasPrefix(env[name].value, strings.TrimSuffix(m.MountPath, "/")+"/")
				}
				if !mounted {
					t.Errorf("%s: %s=%s is under no volume mount", w.where, name, env[name].value)
				}
			}
			if dir != exampleDir && dir != exampleMigrateDir {
				continue // the bases name Secrets their overlay creates
			}
			files, problems := w.files(appliedBy(bundles, dir), testCAPEM(t))
			report(t, problems)
			for _, name := range sortedKeys(env) {
				if strings.HasSuffix(name, "_FILE") {
					if _, ok := files[env[name].value]; !ok {
						t.Errorf("%s: %s=%s, a file no volume provides (the mounts provide %s)", w.where, name, env[name].value, strings.Join(sortedKeys(files), " "))
					}
				}
			}
		}
	}
}

// appliedBy is what exists in the cluster once the example's kustomization dir is applied: it and
// those applied before it (the database, then the migration, then the service). The migration
// cannot use a Secret that only the service's kustomization creates.
func appliedBy(bundles map[string]*bundle, dir string) []*bundle {
	order := []string{exampleDatabaseDir, exampleMigrateDir, exampleDir}
	var out []*bundle
	for _, d := range order {
		out = append(out, bundles[d])
		if d == dir {
			break
		}
	}
	return out
}

// The containers run as the user of the image the Dockerfile builds, under the Pod Security
// Standards' restricted profile, with nothing they do not need.
func TestRunsAsTheImageUserRestricted(t *testing.T) {
	uid, gid, entrypoint := imageUser(t)
	if strings.Join(entrypoint, " ") != "/o2o" {
		t.Fatalf("Dockerfile: the image's ENTRYPOINT is %q; these manifests give /o2o its arguments (serve, migrate up)", entrypoint)
	}
	for _, dir := range allDirs {
		for _, w := range manifests(t)[dir].workloads() {
			ps := w.pod.Spec
			if len(ps.Containers) != 1 || len(ps.InitContainers) != 0 {
				t.Errorf("%s: want exactly one container, the service's", w.where)
				continue
			}
			c := w.container()
			if len(c.Command) > 0 {
				t.Errorf("%s: command %q replaces the image's ENTRYPOINT %q", w.where, c.Command, entrypoint)
			}
			wantArgs := map[string][]string{"Deployment": {"serve"}, "Job": {"migrate", "up"}}[w.kind]
			if strings.Join(c.Args, " ") != strings.Join(wantArgs, " ") {
				t.Errorf("%s: runs %s %s, want %s %s", w.where, strings.Join(entrypoint, " "), strings.Join(c.Args, " "), strings.Join(entrypoint, " "), strings.Join(wantArgs, " "))
			}
			pod := ps.SecurityContext
			if pod == nil {
				pod = &corev1.PodSecurityContext{}
			}
			sc := c.SecurityContext
			if sc == nil {
				sc = &corev1.SecurityContext{}
			}
			// The container's own setting wins over the pod's.
			runAsUser, runAsGroup, nonRoot, seccomp := pod.RunAsUser, pod.RunAsGroup, pod.RunAsNonRoot, pod.SeccompProfile
			if sc.RunAsUser != nil {
				runAsUser = sc.RunAsUser
			}
			if sc.RunAsGroup != nil {
				runAsGroup = sc.RunAsGroup
			}
			if sc.RunAsNonRoot != nil {
				nonRoot = sc.RunAsNonRoot
			}
			if sc.SeccompProfile != nil {
				seccomp = sc.SeccompProfile
			}
			if runAsUser == nil || *runAsUser != uid || runAsGroup == nil || *runAsGroup != gid {
				t.Errorf("%s: runs as %s:%s; the Dockerfile's image runs as %d:%d", w.where, ptrString(runAsUser), ptrString(runAsGroup), uid, gid)
			}
			if nonRoot == nil || !*nonRoot {
				t.Errorf("%s: runAsNonRoot is not true", w.where)
			}
			if seccomp == nil || (seccomp.Type != corev1.SeccompProfileTypeRuntimeDefault && seccomp.Type != corev1.SeccompProfileTypeLocalhost) {
				t.Errorf("%s: seccompProfile is not RuntimeDefault", w.where)
			}
			if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
				t.Errorf("%s: allowPrivilegeEscalation is not false", w.where)
			}
			if sc.Privileged != nil && *sc.Privileged {
				t.Errorf("%s: privileged", w.where)
			}
			if sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
				t.Errorf("%s: readOnlyRootFilesystem is not true (the service writes no files)", w.where)
			}
			if sc.Capabilities == nil || !contains(sc.Capabilities.Drop, "ALL") || len(sc.Capabilities.Add) > 0 {
				t.Errorf("%s: capabilities must drop ALL and add none", w.where)
			}
			if ps.HostNetwork || ps.HostPID || ps.HostIPC {
				t.Errorf("%s: shares a namespace of the host", w.where)
			}
			for _, v := range ps.Volumes {
				if v.HostPath != nil {
					t.Errorf("%s: volume %s is a hostPath", w.where, v.Name)
				}
			}
			if ps.AutomountServiceAccountToken == nil || *ps.AutomountServiceAccountToken {
				t.Errorf("%s: mounts a service account token; the service never calls the Kubernetes API", w.where)
			}
			if c.Resources.Requests.Cpu().IsZero() || c.Resources.Requests.Memory().IsZero() || c.Resources.Limits.Memory().IsZero() {
				t.Errorf("%s: needs requests of cpu and memory and a memory limit", w.where)
			}
			if c.Image == "" {
				t.Errorf("%s: no image", w.where)
			}
		}
	}
	// The example runs a pinned release, and its migration the same one as the service.
	b, m := manifests(t)[exampleDir], manifests(t)[exampleMigrateDir]
	if len(b.deployments) == 1 && len(m.jobs) == 1 {
		image, jobImage := b.deployments[0].Spec.Template.Spec.Containers[0].Image, m.jobs[0].Spec.Template.Spec.Containers[0].Image
		if image != jobImage {
			t.Errorf("the example's service runs %s but its migration %s: the migration must bring the schema to the service's version", image, jobImage)
		}
		if _, tag, _ := strings.Cut(path.Base(image), ":"); !strings.Contains(image, "@sha256:") && (tag == "" || tag == "latest") {
			t.Errorf("the example runs image %s, which names no version: pin a tag or a digest, so that a rollout is a decision", image)
		}
	}
}

func ptrString(p *int64) string {
	if p == nil {
		return "(unset)"
	}
	return strconv.FormatInt(*p, 10)
}

// imageUser is the uid and gid the Dockerfile's final stage runs as (USER), and its ENTRYPOINT.
func imageUser(t *testing.T) (uid, gid int64, entrypoint []string) {
	t.Helper()
	raw, err := os.ReadFile(dockerfile)
	if err != nil {
		t.Fatal(err)
	}
	// The users of the distroless images (their /etc/passwd): nonroot is 65532:65532.
	distroless := map[string]int64{"root": 0, "nonroot": 65532}
	var from, user string
	text := regexp.MustCompile(`\\\n`).ReplaceAllString(string(raw), " ")
	for _, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		cmd, args, _ := strings.Cut(line, " ")
		switch strings.ToUpper(cmd) {
		case "FROM": // a new stage: only the last one's matter
			words := strings.Fields(args)
			for len(words) > 1 && strings.HasPrefix(words[0], "--") { // --platform=…
				words = words[1:]
			}
			from, user, entrypoint = strings.Join(words[:min(1, len(words))], ""), "", nil
		case "USER":
			user = strings.TrimSpace(args)
		case "ENTRYPOINT":
			if err := json.Unmarshal([]byte(args), &entrypoint); err != nil {
				t.Fatalf("Dockerfile: ENTRYPOINT %s is not in exec form", args)
			}
		}
	}
	id := func(name string) int64 {
		if n, err := strconv.ParseInt(name, 10, 64); err == nil {
			return n
		}
		n, ok := distroless[name]
		if !ok || !strings.HasPrefix(from, "gcr.io/distroless/") {
			t.Fatalf("Dockerfile: the final stage (FROM %s) runs as USER %s, whose uid this check does not know", from, name)
		}
		return n
	}
	if user == "" {
		t.Fatalf("Dockerfile: the final stage (FROM %s) sets no USER, so it would run as root", from)
	}
	u, g, hasGroup := strings.Cut(user, ":")
	uid = id(u)
	gid = uid
	if hasGroup {
		gid = id(g)
	}
	return uid, gid, entrypoint
}

// The service's configuration as the example overlay gives it — its environment, its secrets read
// from the files the generators make — passes the service's own validation (config.Load), and so
// does the migration's (config.LoadDatabase). It is also what these manifests assume.
func TestConfigPassesTheServiceValidation(t *testing.T) {
	bundles := manifests(t)
	for _, dir := range []string{exampleDir, exampleMigrateDir} {
		for _, w := range bundles[dir].workloads() {
			root := t.TempDir()
			env := podEnvironment(t, w, appliedBy(bundles, dir), root)
			clearSettings(t)
			for k, v := range env {
				t.Setenv(k, v)
			}
			if w.kind == "Job" {
				if _, err := config.LoadDatabase(); err != nil {
					t.Errorf("%s: `o2o migrate` would refuse this configuration: %v", w.where, err)
				}
				continue
			}
			cfg, err := config.Load()
			if err != nil {
				t.Errorf("%s: the service would refuse this configuration: %v", w.where, err)
				continue
			}
			if cfg.MigrateOnStart {
				t.Errorf("%s: MIGRATE_ON_START is not false; the migration Job applies migrations before a rollout", w.where)
			}
			if cfg.MetricsAddr == "" || cfg.Pprof {
				t.Errorf("%s: METRICS_ADDR must be set (Prometheus scrapes it without a key) and PPROF off", w.where)
			}
			if len(cfg.WebhookAllowedCIDRs) > 0 {
				t.Errorf("%s: WEBHOOK_ALLOWED_CIDRS is set, but behind the Ingress every notification's TCP peer is the ingress controller: filter in the controller", w.where)
			}
			checkPublicHost(t, bundles[exampleDir], cfg)
			checkEgress(t, w, cfg)
		}
	}
}

// clearSettings unsets every setting (and NAME_FILE) for the test, so that nothing of this machine's
// environment (a DATABASE_URL for make run, say) mixes into what is checked.
func clearSettings(t *testing.T) {
	t.Helper()
	for name := range settings() {
		for _, k := range []string{name, name + "_FILE"} {
			t.Setenv(k, "")
			os.Unsetenv(k)
		}
	}
}

// podEnvironment is the container's environment with the files it names laid out under root, as
// its volumes would lay them out: a variable naming a mounted file names root's copy instead.
func podEnvironment(t *testing.T, w workload, have []*bundle, root string) map[string]string {
	t.Helper()
	// What is wrong with them is TestEnvironmentIsRealSettings' and TestSecretsAreMountedFromWhatIsCreated's.
	env, _ := w.environment()
	files, _ := w.files(have, testCAPEM(t))
	for p, f := range files {
		local := filepath.Join(root, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(local), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(local, f.data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	out := map[string]string{}
	for k, v := range env {
		out[k] = v.value
		if _, ok := files[v.value]; ok {
			out[k] = filepath.Join(root, filepath.FromSlash(v.value))
		}
	}
	return out
}

// checkPublicHost: PUBLIC_BASE_URL is where the Ingress answers, with TLS.
func checkPublicHost(t *testing.T, b *bundle, cfg config.Config) {
	t.Helper()
	u, err := url.Parse(cfg.PublicBaseURL)
	if cfg.PublicBaseURL == "" || err != nil {
		t.Errorf("%s: PUBLIC_BASE_URL is not set; the payment page's URLs need it", b.dir)
		return
	}
	for _, ing := range b.ingresses {
		tls := map[string]bool{}
		for _, entry := range ing.Spec.TLS {
			for _, h := range entry.Hosts {
				tls[h] = entry.SecretName != ""
			}
		}
		for _, rule := range ing.Spec.Rules {
			if rule.Host != u.Hostname() {
				t.Errorf("%s: Ingress %s answers for %q, but PUBLIC_BASE_URL is %s", b.dir, ing.Name, rule.Host, cfg.PublicBaseURL)
			}
			if !tls[rule.Host] {
				t.Errorf("%s: Ingress %s has no TLS secret for %s", b.dir, ing.Name, rule.Host)
			}
		}
	}
}

// checkEgress: the service's pods may reach DOKU and the webhook receivers on their ports, over an
// ipBlock (they are outside the cluster), and the cluster's DNS.
func checkEgress(t *testing.T, w workload, cfg config.Config) {
	t.Helper()
	urls := []string{cfg.DokuBaseURL}
	for _, e := range cfg.EventsEndpoints {
		_, u, _ := strings.Cut(e, "=")
		urls = append(urls, u)
	}
	for _, raw := range urls {
		u, err := url.Parse(raw)
		if err != nil {
			continue // config.Load has refused it
		}
		port := u.Port()
		if port == "" {
			port = map[string]string{"https": "443", "http": "80"}[u.Scheme]
		}
		n, _ := strconv.Atoi(port)
		if !egressAllowed(w, int32(n), corev1.ProtocolTCP, func(p networkingv1.NetworkPolicyPeer) bool { return p.IPBlock != nil }) {
			t.Errorf("%s: no NetworkPolicy lets it reach %s (TCP %d to addresses outside the cluster)", w.where, u.Host, n)
		}
	}
	if !egressAllowed(w, 53, corev1.ProtocolUDP, func(networkingv1.NetworkPolicyPeer) bool { return true }) {
		t.Errorf("%s: no NetworkPolicy lets it resolve names (UDP 53)", w.where)
	}
}

// egressAllowed reports whether the NetworkPolicies of w's bundle let its pods send to port over
// protocol to a peer accepted by peerOK. Pods no policy isolates for egress may send anywhere.
func egressAllowed(w workload, port int32, protocol corev1.Protocol, peerOK func(networkingv1.NetworkPolicyPeer) bool) bool {
	isolated := false
	for _, pol := range w.b.policies {
		if !selects(&pol.Spec.PodSelector, w.pod.Labels) || !contains(pol.Spec.PolicyTypes, networkingv1.PolicyTypeEgress) {
			continue
		}
		isolated = true
		for _, rule := range pol.Spec.Egress {
			// A named port of an egress rule is the destination pod's, which these manifests do not
			// describe: only numbered ports count here.
			if !portsAllow(corev1.Container{}, rule.Ports, port, protocol) {
				continue
			}
			if len(rule.To) == 0 {
				return true
			}
			for _, peer := range rule.To {
				if peerOK(peer) {
					return true
				}
			}
		}
	}
	return !isolated
}

// portsAllow reports whether a rule's ports let port over protocol through; c resolves named ports.
func portsAllow(c corev1.Container, ports []networkingv1.NetworkPolicyPort, port int32, protocol corev1.Protocol) bool {
	if len(ports) == 0 {
		return true
	}
	for _, p := range ports {
		proto := corev1.ProtocolTCP
		if p.Protocol != nil {
			proto = *p.Protocol
		}
		if proto != protocol {
			continue
		}
		if p.Port == nil {
			return true
		}
		n := p.Port.IntVal
		if p.Port.Type == intstr.String {
			n = containerPort(c, p.Port.StrVal, 0)
		}
		end := n
		if p.EndPort != nil {
			end = *p.EndPort
		}
		if port >= n && port <= end {
			return true
		}
	}
	return false
}

// SIGTERM comes after the preStop sleep; then the service takes up to SHUTDOWN_TIMEOUT and a second
// to stop. The grace period must cover all of it, or the kubelet kills requests still in flight.
// The startup probe must outlast DB_STARTUP_TIMEOUT, the time start-up may wait for the database.
func TestShutdownFitsTheGracePeriod(t *testing.T) {
	for _, dir := range []string{baseDir, exampleDir} {
		for _, w := range manifests(t)[dir].workloads() {
			env, _ := w.environment() // its problems are TestEnvironmentIsRealSettings'
			shutdown := duration(t, w, env, "SHUTDOWN_TIMEOUT")
			c := w.container()
			var sleep time.Duration
			if c.Lifecycle != nil && c.Lifecycle.PreStop != nil {
				pre := c.Lifecycle.PreStop
				switch {
				case pre.Sleep != nil:
					sleep = time.Duration(pre.Sleep.Seconds) * time.Second
				case pre.Exec != nil:
					t.Errorf("%s: preStop runs %q, but the image has no shell and no sleep: use the kubelet's sleep action", w.where, pre.Exec.Command)
				}
			}
			if sleep == 0 {
				t.Errorf("%s: no preStop sleep: SIGTERM would arrive while load balancers still send requests to the pod", w.where)
			}
			grace := 30 * time.Second // Kubernetes' default
			if g := w.pod.Spec.TerminationGracePeriodSeconds; g != nil {
				grace = time.Duration(*g) * time.Second
			}
			need := sleep + shutdown + closeBound + shutdownMargin
			if grace < need {
				t.Errorf("%s: terminationGracePeriodSeconds is %s, less than preStop sleep %s + SHUTDOWN_TIMEOUT %s + %s to close + a margin of %s = %s",
					w.where, grace, sleep, shutdown, closeBound, shutdownMargin, need)
			} else {
				t.Logf("%s: grace %s >= preStop %s + SHUTDOWN_TIMEOUT %s + %s + margin %s", w.where, grace, sleep, shutdown, closeBound, shutdownMargin)
			}
			startup := duration(t, w, env, "DB_STARTUP_TIMEOUT")
			if p := c.StartupProbe; p != nil {
				window := time.Duration(p.InitialDelaySeconds+p.PeriodSeconds*p.FailureThreshold) * time.Second
				if window <= startup {
					t.Errorf("%s: the startup probe gives up after %s, before DB_STARTUP_TIMEOUT (%s) that start-up may wait for the database", w.where, window, startup)
				}
			} else if p := c.LivenessProbe; p != nil {
				if window := time.Duration(p.InitialDelaySeconds+p.PeriodSeconds*p.FailureThreshold) * time.Second; window <= startup {
					t.Errorf("%s: the liveness probe restarts the pod after %s, before DB_STARTUP_TIMEOUT (%s); add a startup probe", w.where, window, startup)
				}
			}
		}
	}
}

func duration(t *testing.T, w workload, env map[string]envVar, name string) time.Duration {
	t.Helper()
	d, err := time.ParseDuration(value(env, name))
	if err != nil {
		t.Fatalf("%s: %s=%q is not a duration", w.where, name, value(env, name))
	}
	return d
}

// The objects around the Deployment point at it and at its pods: the Service, the budget, the
// autoscaler, the Ingress' backends; the ports are the ones of HTTP_ADDR and METRICS_ADDR; the
// NetworkPolicies isolate the pods, admitting the API only from the ingress controller's namespace and
// this namespace and the metrics only from another namespace (Prometheus').
func TestObjectsAroundTheDeploymentAgree(t *testing.T) {
	for _, dir := range []string{baseDir, exampleDir} {
		b := manifests(t)[dir]
		if len(b.deployments) != 1 {
			continue // TestManifestsDecodeStrictly says so
		}
		d := b.deployments[0]
		w := b.workloads()[0]
		c := w.container()
		podLabels := d.Spec.Template.Labels
		env, _ := w.environment()
		httpPort := addrPort(t, w.where, "HTTP_ADDR", value(env, "HTTP_ADDR"))
		metricsPort := addrPort(t, w.where, "METRICS_ADDR", value(env, "METRICS_ADDR"))
		if containerPort(c, "", httpPort) == 0 || containerPort(c, "", metricsPort) == 0 {
			t.Errorf("%s: the container declares no port %d (HTTP_ADDR) or %d (METRICS_ADDR)", w.where, httpPort, metricsPort)
		}
		if a := d.Spec.Template.Annotations["prometheus.io/port"]; a != "" && a != strconv.Itoa(int(metricsPort)) {
			t.Errorf("%s: prometheus.io/port is %s, METRICS_ADDR's port %d", w.where, a, metricsPort)
		}
		if !selects(d.Spec.Selector, podLabels) {
			t.Errorf("%s: its selector does not select its own pods", w.where)
		}
		for _, tsc := range d.Spec.Template.Spec.TopologySpreadConstraints {
			if !selects(tsc.LabelSelector, podLabels) {
				t.Errorf("%s: topology spread over %s does not select its pods", w.where, tsc.TopologyKey)
			}
		}
		replicas := deploymentReplicas(b)
		if replicas < 2 {
			t.Errorf("%s: %d replica(s); at least 2, so that one node or one rollout never stops payments", w.where, replicas)
		}
		if ru := d.Spec.Strategy.RollingUpdate; ru == nil || ru.MaxUnavailable == nil || ru.MaxUnavailable.IntValue() != 0 {
			t.Errorf("%s: a rollout must not take a ready replica away before its replacement is ready (maxUnavailable: 0)", w.where)
		}

		svcPorts := map[string]int32{} // Service port name and number → container port
		for _, s := range b.services {
			if len(s.Spec.Selector) == 0 || !selects(&metav1.LabelSelector{MatchLabels: s.Spec.Selector}, podLabels) {
				t.Errorf("%s: Service %s does not select the Deployment's pods", dir, s.Name)
			}
			for _, j := range manifests(t)[migrateDir].jobs {
				if selects(&metav1.LabelSelector{MatchLabels: s.Spec.Selector}, j.Spec.Template.Labels) {
					t.Errorf("%s: Service %s also selects the migration Job's pods", dir, s.Name)
				}
			}
			for _, p := range s.Spec.Ports {
				target := containerPort(c, p.TargetPort.StrVal, p.TargetPort.IntVal)
				if p.TargetPort.Type == intstr.Int && p.TargetPort.IntVal == 0 {
					target = containerPort(c, "", p.Port)
				}
				if target == 0 {
					t.Errorf("%s: Service %s port %s targets %s, which the container does not declare", dir, s.Name, p.Name, p.TargetPort.String())
				}
				svcPorts[s.Name+"/"+p.Name] = target
				svcPorts[s.Name+"/"+strconv.Itoa(int(p.Port))] = target
			}
		}
		for _, ing := range b.ingresses {
			for _, rule := range ing.Spec.Rules {
				if rule.HTTP == nil {
					continue
				}
				for _, p := range rule.HTTP.Paths {
					svc := p.Backend.Service
					if svc == nil {
						t.Errorf("%s: Ingress %s path %s has no Service backend", dir, ing.Name, p.Path)
						continue
					}
					key := svc.Name + "/" + svc.Port.Name
					if svc.Port.Name == "" {
						key = svc.Name + "/" + strconv.Itoa(int(svc.Port.Number))
					}
					if svcPorts[key] != httpPort {
						t.Errorf("%s: Ingress %s path %s goes to Service port %s, which does not lead to HTTP_ADDR's port %d", dir, ing.Name, p.Path, key, httpPort)
					}
				}
			}
		}
		for _, pdb := range b.pdbs {
			if !selects(pdb.Spec.Selector, podLabels) {
				t.Errorf("%s: PodDisruptionBudget %s does not select the Deployment's pods", dir, pdb.Name)
			}
			one := intstr.FromInt32(1)
			if (pdb.Spec.MaxUnavailable == nil || *pdb.Spec.MaxUnavailable != one) && (pdb.Spec.MinAvailable == nil || *pdb.Spec.MinAvailable != one) {
				t.Errorf("%s: PodDisruptionBudget %s: want maxUnavailable 1 (or minAvailable 1)", dir, pdb.Name)
			}
		}
		for _, hpa := range b.hpas {
			ref := hpa.Spec.ScaleTargetRef
			if ref.Kind != "Deployment" || ref.Name != d.Name || ref.APIVersion != "apps/v1" {
				t.Errorf("%s: HorizontalPodAutoscaler %s scales %s %s, not the Deployment", dir, hpa.Name, ref.Kind, ref.Name)
			}
			if hpa.Spec.MinReplicas == nil || *hpa.Spec.MinReplicas < 2 || *hpa.Spec.MinReplicas != replicas {
				t.Errorf("%s: HorizontalPodAutoscaler %s: minReplicas must be the Deployment's replicas (%d), at least 2", dir, hpa.Name, replicas)
			}
			cpu := false
			for _, m := range hpa.Spec.Metrics {
				cpu = cpu || (m.Resource != nil && m.Resource.Name == corev1.ResourceCPU && m.Resource.Target.AverageUtilization != nil)
			}
			if !cpu || c.Resources.Requests.Cpu().IsZero() {
				t.Errorf("%s: HorizontalPodAutoscaler %s: want a CPU utilization target, and a CPU request it is a share of", dir, hpa.Name)
			}
		}
		checkIngressPolicy(t, b, w, httpPort, metricsPort)
	}
	for _, dir := range []string{migrateDir, exampleMigrateDir} {
		for _, w := range manifests(t)[dir].workloads() {
			if !egressAllowed(w, 53, corev1.ProtocolUDP, func(networkingv1.NetworkPolicyPeer) bool { return true }) {
				t.Errorf("%s: no NetworkPolicy lets it resolve names (UDP 53)", w.where)
			}
			isolated := false
			for _, pol := range w.b.policies {
				isolated = isolated || (selects(&pol.Spec.PodSelector, w.pod.Labels) &&
					contains(pol.Spec.PolicyTypes, networkingv1.PolicyTypeIngress) && contains(pol.Spec.PolicyTypes, networkingv1.PolicyTypeEgress))
			}
			if !isolated {
				t.Errorf("%s: no NetworkPolicy isolates its pods", w.where)
			}
		}
	}
}

// checkIngressPolicy: the pods are isolated both ways; what may reach them, on which port.
func checkIngressPolicy(t *testing.T, b *bundle, w workload, httpPort, metricsPort int32) {
	t.Helper()
	var ingressTypes, egressTypes bool
	fromNamespace, fromOwnNamespace := false, false
	for _, pol := range b.policies {
		if !selects(&pol.Spec.PodSelector, w.pod.Labels) {
			continue
		}
		ingressTypes = ingressTypes || contains(pol.Spec.PolicyTypes, networkingv1.PolicyTypeIngress)
		egressTypes = egressTypes || contains(pol.Spec.PolicyTypes, networkingv1.PolicyTypeEgress)
		for i, rule := range pol.Spec.Ingress {
			where := fmt.Sprintf("%s: NetworkPolicy %s ingress rule %d", b.dir, pol.Name, i+1)
			if len(rule.From) == 0 || len(rule.Ports) == 0 {
				t.Errorf("%s: without from and ports it admits anyone to any port", where)
				continue
			}
			for _, p := range rule.Ports {
				port := containerPort(w.container(), p.Port.StrVal, p.Port.IntVal)
				switch port {
				case httpPort:
				case metricsPort:
					// /metrics needs no key on this port: only Prometheus' namespace.
					for _, peer := range rule.From {
						if peer.NamespaceSelector == nil || len(peer.NamespaceSelector.MatchLabels)+len(peer.NamespaceSelector.MatchExpressions) == 0 || peer.IPBlock != nil {
							t.Errorf("%s: admits more than one other namespace (Prometheus') to the metrics port", where)
						}
					}
				default:
					t.Errorf("%s: admits port %s, which is neither HTTP_ADDR's nor METRICS_ADDR's", where, p.Port.String())
				}
				for _, peer := range rule.From {
					if peer.IPBlock != nil {
						t.Errorf("%s: admits an ipBlock; the internet comes through the ingress controller", where)
					}
					if port == httpPort && peer.NamespaceSelector != nil && peer.PodSelector == nil {
						fromNamespace = true
					}
					if port == httpPort && peer.NamespaceSelector == nil && peer.PodSelector != nil {
						fromOwnNamespace = true
					}
				}
			}
		}
	}
	if !ingressTypes || !egressTypes {
		t.Errorf("%s: no NetworkPolicy isolates the service's pods for both ingress and egress", b.dir)
	}
	if !fromNamespace || !fromOwnNamespace {
		t.Errorf("%s: the API port must admit the ingress controller's namespace and this namespace's pods", b.dir)
	}
}

// The example's database: CloudNativePG's three instances with a synchronous standby; DATABASE_URL
// reaches its primary through the -rw Service, as the owner initdb creates, over TLS verified with
// the cluster's CA, refusing a standby; pgx understands every parameter; the connections the
// replicas may open fit max_connections; the NetworkPolicies let the service and the migration in.
func TestDatabaseWiring(t *testing.T) {
	bundles := manifests(t)
	db, app, mig := bundles[exampleDatabaseDir], bundles[exampleDir], bundles[exampleMigrateDir]
	if len(db.clusters) != 1 || len(app.deployments) != 1 || len(mig.jobs) != 1 {
		t.Fatal("the example lacks its Cluster, Deployment or Job (TestManifestsDecodeStrictly)")
	}
	cl := db.clusters[0]
	if cl.Spec.Instances < 3 {
		t.Errorf("Cluster %s: %d instances; three: a primary and two standbys, one of them synchronous", cl.Name, cl.Spec.Instances)
	}
	if s := cl.Spec.PostgreSQL.Synchronous; s == nil || s.Number < 1 || s.Number >= cl.Spec.Instances || s.DataDurability != "required" {
		t.Errorf("Cluster %s: want synchronous replication to at least one standby (postgresql.synchronous.number >= 1, fewer than the instances) with dataDurability required, so that an acknowledged payment is never on one server only", cl.Name)
	}
	initdb := cl.Spec.Bootstrap.InitDB
	if initdb == nil || initdb.Secret == nil {
		t.Fatalf("Cluster %s: bootstrap.initdb with an owner secret is what DATABASE_URL's credentials come from", cl.Name)
	}
	owner := db.secret(initdb.Secret.Name)
	if owner == nil || owner.Type != corev1.SecretTypeBasicAuth {
		t.Fatalf("Cluster %s: its owner secret %s is not a basic-auth Secret of %s", cl.Name, initdb.Secret.Name, db.dir)
	}
	if string(owner.Data["username"]) != initdb.Owner {
		t.Errorf("Secret %s: username %q is not the owner %q (CloudNativePG refuses it)", owner.Name, owner.Data["username"], initdb.Owner)
	}
	password := string(owner.Data["password"])
	if password != strings.TrimSpace(password) {
		t.Errorf("Secret %s: the password starts or ends with white space (a file's newline?); PostgreSQL would take it as part of the password", owner.Name)
	}

	for _, w := range append(app.workloads(), mig.workloads()...) {
		env, _ := w.environment()
		files, _ := w.files(appliedBy(bundles, w.b.dir), testCAPEM(t)) // its problems are TestSecretsAreMountedFromWhatIsCreated's
		f, ok := files[env["DATABASE_URL_FILE"].value]
		if !ok {
			t.Errorf("%s: DATABASE_URL_FILE names no mounted file", w.where)
			continue
		}
		raw := strings.TrimSpace(string(f.data))
		u, err := url.Parse(raw)
		if err != nil {
			t.Errorf("%s: DATABASE_URL does not parse: %v", w.where, err)
			continue
		}
		q := u.Query()
		ns := w.meta.Namespace
		hosts := []string{cl.Name + "-rw", cl.Name + "-rw." + cl.Namespace, cl.Name + "-rw." + cl.Namespace + ".svc", cl.Name + "-rw." + cl.Namespace + ".svc.cluster.local"}
		if !contains(hosts, u.Hostname()) || (ns != cl.Namespace && !strings.Contains(u.Hostname(), ".")) {
			t.Errorf("%s: DATABASE_URL's host %s is not the read-write Service of Cluster %s/%s (%s)", w.where, u.Hostname(), cl.Namespace, cl.Name, hosts[2])
		}
		if ns != cl.Namespace {
			t.Errorf("%s: in namespace %q, the Cluster in %q", w.where, ns, cl.Namespace)
		}
		if u.Path != "/"+initdb.Database || u.User.Username() != initdb.Owner {
			t.Errorf("%s: DATABASE_URL names database %s as %s; the Cluster creates %s owned by %s", w.where, u.Path, u.User.Username(), initdb.Database, initdb.Owner)
		}
		if pw, _ := u.User.Password(); pw != password {
			t.Errorf("%s: DATABASE_URL's password is not the one Secret %s gives the owner", w.where, owner.Name)
		}
		if q.Get("sslmode") != "verify-full" || q.Get("target_session_attrs") != "read-write" {
			t.Errorf("%s: DATABASE_URL wants sslmode=verify-full (TLS to the server the name says) and target_session_attrs=read-write (never a standby after a failover)", w.where)
		}
		ca, ok := files[q.Get("sslrootcert")]
		if !ok || !strings.Contains(ca.source, cl.caSecret()) {
			t.Errorf("%s: DATABASE_URL's sslrootcert %q is not the mounted ca.crt of Secret %s (the Cluster's CA)", w.where, q.Get("sslrootcert"), cl.caSecret())
		}
		// pgx reads the URL as the service will (with the CA where this test put it): every
		// parameter must be one it understands, or it is sent to the server as a setting, which
		// refuses the connection.
		local := filepath.Join(t.TempDir(), "ca.crt")
		if err := os.WriteFile(local, testCAPEM(t), 0o600); err != nil {
			t.Fatal(err)
		}
		q.Set("sslrootcert", local)
		u.RawQuery = q.Encode()
		pc, err := pgconn.ParseConfig(u.String())
		if err != nil {
			t.Errorf("%s: pgx refuses DATABASE_URL: %v", w.where, err)
			continue
		}
		if len(pc.RuntimeParams) > 0 {
			t.Errorf("%s: DATABASE_URL has parameters pgx does not know, which it would send to the server as settings: %v", w.where, sortedKeys(pc.RuntimeParams))
		}
		if pc.ConnectTimeout <= 0 || pc.TLSConfig == nil || pc.ValidateConnect == nil {
			t.Errorf("%s: DATABASE_URL wants connect_timeout, TLS and a read-write check", w.where)
		}
		if !egressAllowed(w, int32(pc.Port), corev1.ProtocolTCP, func(p networkingv1.NetworkPolicyPeer) bool {
			return p.NamespaceSelector == nil && selects(p.PodSelector, map[string]string{"cnpg.io/cluster": cl.Name})
		}) {
			t.Errorf("%s: no NetworkPolicy lets it reach Cluster %s's instances (pods cnpg.io/cluster=%s) on TCP %d", w.where, cl.Name, cl.Name, pc.Port)
		}
	}

	// Connections: each replica's pool (DB_MAX_CONNS) and the migrator's handle every replica keeps
	// for the schema check (database/sql's two idle connections), for the HPA's maxReplicas plus a
	// rollout's surge; a few for the migration Job and a person with psql; PostgreSQL's reserve for
	// superusers (the operator among them).
	const perReplicaExtra, others = 2, 5
	w := app.workloads()[0]
	env, _ := w.environment()
	perReplica, err := strconv.Atoi(value(env, "DB_MAX_CONNS"))
	if err != nil {
		t.Fatalf("%s: DB_MAX_CONNS: %v", w.where, err)
	}
	d := app.deployments[0]
	maxReplicas := int(deploymentReplicas(app))
	for _, hpa := range app.hpas {
		maxReplicas = int(hpa.Spec.MaxReplicas)
	}
	surge := 0
	if ru := d.Spec.Strategy.RollingUpdate; ru != nil && ru.MaxSurge != nil {
		surge, _ = intstr.GetScaledValueFromIntOrPercent(ru.MaxSurge, maxReplicas, true)
	}
	param := func(name string, def int) int {
		if v, ok := cl.Spec.PostgreSQL.Parameters[name]; ok {
			n, err := strconv.Atoi(v)
			if err != nil {
				t.Fatalf("Cluster %s: %s=%q is not a number", cl.Name, name, v)
			}
			return n
		}
		return def
	}
	maxConns, reserved := param("max_connections", 100), param("superuser_reserved_connections", 3)
	need := (maxReplicas+surge)*(perReplica+perReplicaExtra) + others + reserved
	if need > maxConns {
		t.Errorf("Cluster %s: max_connections %d < (%d replicas + %d surge) × (DB_MAX_CONNS %d + %d) + %d + %d reserved = %d: raise it, or lower DB_MAX_CONNS or the HPA's maxReplicas",
			cl.Name, maxConns, maxReplicas, surge, perReplica, perReplicaExtra, others, reserved, need)
	} else {
		t.Logf("max_connections %d >= %d needed by %d replicas (+%d surge) of %d connections", maxConns, need, maxReplicas, surge, perReplica)
	}
}

// deploymentReplicas is how many replicas the bundle's Deployment runs at least: its replicas, or,
// where it leaves them to the HorizontalPodAutoscaler (as Kubernetes advises, so that an apply does
// not undo a scale-out), the autoscaler's minReplicas; Kubernetes' default of 1 otherwise.
func deploymentReplicas(b *bundle) int32 {
	d := b.deployments[0]
	if d.Spec.Replicas != nil {
		return *d.Spec.Replicas
	}
	for _, hpa := range b.hpas {
		if hpa.Spec.ScaleTargetRef.Name == d.Name && hpa.Spec.MinReplicas != nil {
			return *hpa.Spec.MinReplicas
		}
	}
	return 1
}

// addrPort is the port of a listen address such as ":8080".
func addrPort(t *testing.T, where, name, addr string) int32 {
	t.Helper()
	_, port, err := net.SplitHostPort(addr)
	n, err2 := strconv.Atoi(port)
	if err != nil || err2 != nil {
		t.Fatalf("%s: %s=%q is not host:port", where, name, addr)
	}
	return int32(n)
}

// report fails the test with each problem.
func report(t *testing.T, problems []string) {
	t.Helper()
	for _, p := range problems {
		t.Error(p)
	}
}

var testCA []byte

// testCAPEM is a CA certificate standing in for the one CloudNativePG creates in the cluster: pgx
// reads sslrootcert when it parses a URL.
func testCAPEM(t *testing.T) []byte {
	t.Helper()
	if testCA != nil {
		return testCA
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "check test CA"}, IsCA: true,
		BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	testCA = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	return testCA
}
