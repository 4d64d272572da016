package check

import (
	"encoding/json"
	"fmt"
	"os"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/kube-openapi/pkg/validation/spec"
	"k8s.io/kube-openapi/pkg/validation/strfmt"
	"k8s.io/kube-openapi/pkg/validation/validate"
	sjson "sigs.k8s.io/json"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"

	"github.com/merchant/o2o/internal/config"
)

// The kustomizations, relative to this directory. The example overlay is three of them, applied in
// this order: its database (once), its migration Job, the service.
const (
	baseDir            = "../base"
	migrateDir         = "../migrate"
	exampleDatabaseDir = "../overlays/example/database"
	exampleMigrateDir  = "../overlays/example/migrate"
	exampleDir         = "../overlays/example"

	// The repository's Dockerfile, which builds the image every manifest runs.
	dockerfile = "../../../Dockerfile"
	// CloudNativePG's CRD of Cluster (see the file's header).
	clusterCRD = "testdata/cnpg-clusters-crd.yaml"
)

var allDirs = []string{baseDir, migrateDir, exampleDatabaseDir, exampleMigrateDir, exampleDir}

// bundle is what one kustomization builds, each object decoded into its API type.
type bundle struct {
	dir         string
	deployments []*appsv1.Deployment
	jobs        []*batchv1.Job
	services    []*corev1.Service
	secrets     []*corev1.Secret
	configMaps  []*corev1.ConfigMap
	namespaces  []*corev1.Namespace
	pdbs        []*policyv1.PodDisruptionBudget
	hpas        []*autoscalingv2.HorizontalPodAutoscaler
	policies    []*networkingv1.NetworkPolicy
	ingresses   []*networkingv1.Ingress
	clusters    []*cluster
	clustersRaw [][]byte // as built, until decodeCluster has validated them
}

// apiTypes are the kinds the manifests may contain, each with the Go type of the Kubernetes API that
// the API server decodes it into. A kind missing here fails the check: add its type, so that it is
// decoded strictly like the rest.
var apiTypes = map[string]func() any{
	"apps/v1 Deployment":                     func() any { return new(appsv1.Deployment) },
	"batch/v1 Job":                           func() any { return new(batchv1.Job) },
	"v1 Service":                             func() any { return new(corev1.Service) },
	"v1 Secret":                              func() any { return new(corev1.Secret) },
	"v1 ConfigMap":                           func() any { return new(corev1.ConfigMap) },
	"v1 Namespace":                           func() any { return new(corev1.Namespace) },
	"policy/v1 PodDisruptionBudget":          func() any { return new(policyv1.PodDisruptionBudget) },
	"autoscaling/v2 HorizontalPodAutoscaler": func() any { return new(autoscalingv2.HorizontalPodAutoscaler) },
	"networking.k8s.io/v1 NetworkPolicy":     func() any { return new(networkingv1.NetworkPolicy) },
	"networking.k8s.io/v1 Ingress":           func() any { return new(networkingv1.Ingress) },
	// postgresql.cnpg.io/v1 Cluster: decodeCluster, against its CRD.
}

const (
	clusterAPIVersion = "postgresql.cnpg.io/v1"
	clusterKind       = "Cluster"
)

// cluster is the part of a CloudNativePG Cluster the checks read. The object as a whole is validated
// against the CRD's schema; this view is read from it afterwards.
//
// CloudNativePG's Go types (github.com/cloudnative-pg/cloudnative-pg/api/v1) would be the natural
// strict decoding, as for the built-in kinds, but the Go module proxy this module is built from
// refuses that module ("403 Forbidden: This module version is not available"), so the Cluster is
// held to the OpenAPI schema of the CRD the operator installs, which is what the API server itself
// validates a Cluster against.
type cluster struct {
	metav1.ObjectMeta
	Spec struct {
		Instances  int `json:"instances"`
		PostgreSQL struct {
			Parameters  map[string]string `json:"parameters"`
			Synchronous *struct {
				Method         string `json:"method"`
				Number         int    `json:"number"`
				DataDurability string `json:"dataDurability"`
			} `json:"synchronous"`
		} `json:"postgresql"`
		Bootstrap struct {
			InitDB *struct {
				Database string `json:"database"`
				Owner    string `json:"owner"`
				Secret   *struct {
					Name string `json:"name"`
				} `json:"secret"`
			} `json:"initdb"`
		} `json:"bootstrap"`
		Certificates *struct {
			ServerCASecret string `json:"serverCASecret"`
		} `json:"certificates"`
	}
}

// caSecret is the Secret in which CloudNativePG keeps the CA of the cluster's server certificates
// (it creates it: <cluster>-ca, unless spec.certificates names another).
func (c *cluster) caSecret() string {
	if c.Spec.Certificates != nil && c.Spec.Certificates.ServerCASecret != "" {
		return c.Spec.Certificates.ServerCASecret
	}
	return c.Name + "-ca"
}

// build runs kustomize on dir, in process and on the real filesystem (as `kubectl apply -k` and
// `kustomize build` do, with their default options), and decodes every object it yields. It returns
// every problem found, one line each.
func build(dir string, crd *spec.Schema) (*bundle, []string) {
	m, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(filesys.MakeFsOnDisk(), dir)
	if err != nil {
		return nil, []string{fmt.Sprintf("%s: kustomize build: %v", dir, err)}
	}
	b := &bundle{dir: dir}
	var problems []string
	for _, r := range m.Resources() {
		y, err := r.AsYAML()
		if err != nil {
			problems = append(problems, fmt.Sprintf("%s: %s %s: %v", dir, r.GetKind(), r.GetName(), err))
			continue
		}
		problems = append(problems, b.decode(y)...)
	}
	if crd != nil {
		for _, c := range b.clustersRaw {
			problems = append(problems, b.decodeCluster(c, crd)...)
		}
	}
	return b, problems
}

// decode decodes one object strictly into its API type: a field the type does not have (a typo, a
// field at the wrong level, a field of a newer API) or a duplicated field is a problem, as it is
// for the API server with kubectl's default --validate=strict. Field names are case-sensitive.
func (b *bundle) decode(y []byte) []string {
	js, err := yaml.YAMLToJSONStrict(y)
	if err != nil {
		return []string{fmt.Sprintf("%s: %v", b.dir, err)}
	}
	var head struct {
		APIVersion string            `json:"apiVersion"`
		Kind       string            `json:"kind"`
		Metadata   metav1.ObjectMeta `json:"metadata"`
	}
	if err := json.Unmarshal(js, &head); err != nil {
		return []string{fmt.Sprintf("%s: %v", b.dir, err)}
	}
	where := fmt.Sprintf("%s: %s %s", b.dir, head.Kind, head.Metadata.Name)
	if head.APIVersion == clusterAPIVersion && head.Kind == clusterKind {
		b.clustersRaw = append(b.clustersRaw, js)
		return nil
	}
	newObj := apiTypes[head.APIVersion+" "+head.Kind]
	if newObj == nil {
		return []string{fmt.Sprintf("%s: %s %s is a kind this check has no Go type for (add it to apiTypes)", where, head.APIVersion, head.Kind)}
	}
	obj := newObj()
	if problems := strictly(where, js, obj); len(problems) > 0 {
		return problems
	}
	switch o := obj.(type) {
	case *appsv1.Deployment:
		b.deployments = append(b.deployments, o)
	case *batchv1.Job:
		b.jobs = append(b.jobs, o)
	case *corev1.Service:
		b.services = append(b.services, o)
	case *corev1.Secret:
		b.secrets = append(b.secrets, o)
	case *corev1.ConfigMap:
		b.configMaps = append(b.configMaps, o)
	case *corev1.Namespace:
		b.namespaces = append(b.namespaces, o)
	case *policyv1.PodDisruptionBudget:
		b.pdbs = append(b.pdbs, o)
	case *autoscalingv2.HorizontalPodAutoscaler:
		b.hpas = append(b.hpas, o)
	case *networkingv1.NetworkPolicy:
		b.policies = append(b.policies, o)
	case *networkingv1.Ingress:
		b.ingresses = append(b.ingresses, o)
	}
	return nil
}

// strictly decodes js into obj as the API server does (sigs.k8s.io/json: case-sensitive field
// names, unknown and duplicated fields reported).
func strictly(where string, js []byte, obj any) []string {
	strictErrs, err := sjson.UnmarshalStrict(js, obj)
	if err != nil {
		return []string{fmt.Sprintf("%s: %v", where, err)}
	}
	var problems []string
	for _, e := range strictErrs {
		problems = append(problems, fmt.Sprintf("%s: %v", where, e))
	}
	return problems
}

// decodeCluster validates a Cluster against the CRD's schema, made strict as the API server makes
// it (see strictSchema), and its metadata against ObjectMeta.
func (b *bundle) decodeCluster(js []byte, crd *spec.Schema) []string {
	var obj map[string]any
	if err := sjson.UnmarshalCaseSensitivePreserveInts(js, &obj); err != nil {
		return []string{fmt.Sprintf("%s: Cluster: %v", b.dir, err)}
	}
	meta, _ := json.Marshal(obj["metadata"])
	var c cluster
	_ = json.Unmarshal(meta, &c.ObjectMeta)
	where := fmt.Sprintf("%s: Cluster %s", b.dir, c.Name)
	problems := strictly(where+": metadata", meta, &metav1.ObjectMeta{})
	res := validate.NewSchemaValidator(crd, nil, "", strfmt.Default).Validate(obj)
	for _, e := range res.Errors {
		problems = append(problems, fmt.Sprintf("%s: %v (CloudNativePG's CRD, %s)", where, e, clusterCRD))
	}
	if len(problems) > 0 {
		return problems
	}
	if err := json.Unmarshal(js, &struct {
		Metadata *metav1.ObjectMeta `json:"metadata"`
		Spec     any                `json:"spec"`
	}{&c.ObjectMeta, &c.Spec}); err != nil {
		return []string{fmt.Sprintf("%s: %v", where, err)}
	}
	b.clusters = append(b.clusters, &c)
	return nil
}

// loadClusterCRD reads the schema of the CRD's served version v1 of Cluster, made strict.
func loadClusterCRD() (*spec.Schema, error) {
	raw, err := os.ReadFile(clusterCRD)
	if err != nil {
		return nil, err
	}
	js, err := yaml.YAMLToJSON(raw)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", clusterCRD, err)
	}
	var crd struct {
		Spec struct {
			Group string `json:"group"`
			Names struct {
				Kind string `json:"kind"`
			} `json:"names"`
			Versions []struct {
				Name   string `json:"name"`
				Served bool   `json:"served"`
				Schema struct {
					OpenAPIV3Schema json.RawMessage `json:"openAPIV3Schema"`
				} `json:"schema"`
			} `json:"versions"`
		} `json:"spec"`
	}
	if err := json.Unmarshal(js, &crd); err != nil {
		return nil, fmt.Errorf("%s: %w", clusterCRD, err)
	}
	if crd.Spec.Group+"/" != strings.TrimSuffix(clusterAPIVersion, "v1") || crd.Spec.Names.Kind != clusterKind {
		return nil, fmt.Errorf("%s is the CRD of %s %s, not of %s %s", clusterCRD, crd.Spec.Group, crd.Spec.Names.Kind, clusterAPIVersion, clusterKind)
	}
	for _, v := range crd.Spec.Versions {
		if v.Name != "v1" || !v.Served {
			continue
		}
		var s spec.Schema
		if err := json.Unmarshal(v.Schema.OpenAPIV3Schema, &s); err != nil {
			return nil, fmt.Errorf("%s: schema of v1: %w", clusterCRD, err)
		}
		strictSchema(&s)
		// The API server validates metadata itself, as ObjectMeta (decodeCluster does the same).
		s.Properties["metadata"] = spec.Schema{}
		return &s, nil
	}
	return nil, fmt.Errorf("%s serves no version v1", clusterCRD)
}

// strictSchema makes every object of a CRD's structural schema refuse fields it does not declare.
// In OpenAPI an undeclared field is allowed; the API server instead prunes it from a custom resource
// (and with kubectl's default field validation, Strict, refuses the request), unless the schema says
// x-kubernetes-preserve-unknown-fields. So: additionalProperties false wherever neither it nor that
// extension is given.
func strictSchema(s *spec.Schema) {
	if s == nil {
		return
	}
	preserve, _ := s.Extensions.GetBool("x-kubernetes-preserve-unknown-fields")
	if (s.Type.Contains("object") || len(s.Properties) > 0) && s.AdditionalProperties == nil && !preserve {
		s.AdditionalProperties = &spec.SchemaOrBool{Allows: false}
	}
	for k, p := range s.Properties {
		strictSchema(&p)
		s.Properties[k] = p
	}
	if s.AdditionalProperties != nil {
		strictSchema(s.AdditionalProperties.Schema)
	}
	if s.Items != nil {
		strictSchema(s.Items.Schema)
		for i := range s.Items.Schemas {
			strictSchema(&s.Items.Schemas[i])
		}
	}
	for _, list := range [][]spec.Schema{s.AllOf, s.AnyOf, s.OneOf} {
		for i := range list {
			strictSchema(&list[i])
		}
	}
}

// The builds, made once for all the checks.
var (
	builtBundles  map[string]*bundle
	buildProblems []string
	built         bool
)

// manifests builds every kustomization, or fails the test with every problem that stops it.
func manifests(t *testing.T) map[string]*bundle {
	t.Helper()
	first := !built
	if first {
		built = true
		builtBundles = map[string]*bundle{}
		crd, err := loadClusterCRD()
		if err != nil {
			buildProblems = append(buildProblems, err.Error())
		}
		for _, dir := range allDirs {
			b, problems := build(dir, crd)
			builtBundles[dir] = b
			buildProblems = append(buildProblems, problems...)
		}
	}
	switch {
	case len(buildProblems) > 0 && first:
		t.Fatalf("the manifests do not decode strictly into their API types:\n  %s", strings.Join(buildProblems, "\n  "))
	case len(buildProblems) > 0:
		t.Fatalf("the manifests do not decode strictly into their API types (%d problems, listed under the first test that failed)", len(buildProblems))
	}
	return builtBundles
}

// --- reading pods ------------------------------------------------------------------------------

// workload is a pod template of a Deployment or Job, with where it comes from.
type workload struct {
	where string // for messages: "../overlays/example: Deployment o2o"
	kind  string
	meta  metav1.ObjectMeta
	pod   corev1.PodTemplateSpec
	b     *bundle
}

func (b *bundle) workloads() []workload {
	var out []workload
	for _, d := range b.deployments {
		out = append(out, workload{fmt.Sprintf("%s: Deployment %s", b.dir, d.Name), "Deployment", d.ObjectMeta, d.Spec.Template, b})
	}
	for _, j := range b.jobs {
		out = append(out, workload{fmt.Sprintf("%s: Job %s", b.dir, j.Name), "Job", j.ObjectMeta, j.Spec.Template, b})
	}
	return out
}

// container is the service's container: the workloads here run one each, the image's /o2o
// (TestRunsAsTheImageUserRestricted insists).
func (w workload) container() corev1.Container {
	if len(w.pod.Spec.Containers) == 0 {
		return corev1.Container{}
	}
	return w.pod.Spec.Containers[0]
}

// setting is one environment variable the service reads (internal/config).
type setting struct {
	secret   bool // a config.Secret: may (and here must) be given as NAME_FILE
	database bool // one of config.Database, all that `o2o migrate` reads
	def      string
}

// settings are the service's settings by name, from config.Config's envconfig tags (embedded
// structs included), so that they cannot drift from the code.
func settings() map[string]setting {
	out := map[string]setting{}
	var walk func(t reflect.Type, database bool)
	walk = func(t reflect.Type, database bool) {
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			if f.Anonymous {
				walk(f.Type, database || f.Type == reflect.TypeOf(config.Database{}))
				continue
			}
			name := f.Tag.Get("envconfig")
			if name == "" {
				continue
			}
			secret := f.Type == reflect.TypeOf(config.Secret("")) || f.Type == reflect.TypeOf([]config.Secret(nil))
			out[name] = setting{secret: secret, database: database, def: f.Tag.Get("default")}
		}
	}
	walk(reflect.TypeOf(config.Config{}), false)
	return out
}

// envVar is one variable of a container's environment and where it is set.
type envVar struct {
	value string
	from  string // "env", or "ConfigMap <name>"
}

// environment is the container's environment as its process sees it: env, and envFrom's ConfigMaps
// (of the bundle). Anything that hides a value from these checks, or that makes it ambiguous, is a
// problem: a variable set twice, a Secret in the environment.
func (w workload) environment() (map[string]envVar, []string) {
	c := w.container()
	out := map[string]envVar{}
	var problems []string
	set := func(name, value, from string) {
		if prev, ok := out[name]; ok {
			problems = append(problems, fmt.Sprintf("%s: %s is set twice (%s and %s): one of them silently wins", w.where, name, prev.from, from))
		}
		out[name] = envVar{value, from}
	}
	for _, from := range c.EnvFrom {
		switch {
		case from.ConfigMapRef != nil:
			cm := w.b.configMap(from.ConfigMapRef.Name)
			if cm == nil {
				problems = append(problems, fmt.Sprintf("%s: envFrom names ConfigMap %s, which the kustomization does not create", w.where, from.ConfigMapRef.Name))
				continue
			}
			for k, v := range cm.Data {
				set(from.Prefix+k, v, "ConfigMap "+cm.Name)
			}
		case from.SecretRef != nil:
			problems = append(problems, fmt.Sprintf("%s: envFrom puts Secret %s into the environment; mount it and give its files as NAME_FILE", w.where, from.SecretRef.Name))
		}
	}
	for _, e := range c.Env {
		switch {
		case e.ValueFrom == nil:
			set(e.Name, e.Value, "env")
		case e.ValueFrom.SecretKeyRef != nil:
			problems = append(problems, fmt.Sprintf("%s: %s takes key %s of Secret %s into the environment, where `kubectl describe` and crash reports show it; mount the Secret and give the file as NAME_FILE",
				w.where, e.Name, e.ValueFrom.SecretKeyRef.Key, e.ValueFrom.SecretKeyRef.Name))
		case e.ValueFrom.ConfigMapKeyRef != nil:
			ref := e.ValueFrom.ConfigMapKeyRef
			cm := w.b.configMap(ref.Name)
			if cm == nil {
				problems = append(problems, fmt.Sprintf("%s: %s comes from ConfigMap %s, which the kustomization does not create", w.where, e.Name, ref.Name))
				continue
			}
			set(e.Name, cm.Data[ref.Key], "ConfigMap "+cm.Name)
		default:
			set(e.Name, "", "env (valueFrom)")
		}
	}
	return out, problems
}

func (b *bundle) configMap(name string) *corev1.ConfigMap {
	for _, cm := range b.configMaps {
		if cm.Name == name {
			return cm
		}
	}
	return nil
}

func (b *bundle) secret(name string) *corev1.Secret {
	for _, s := range b.secrets {
		if s.Name == name {
			return s
		}
	}
	return nil
}

// value is setting name's value in env, or its default (a setting's default lives in its tag).
func value(env map[string]envVar, name string) string {
	if v, ok := env[name]; ok {
		return v.value
	}
	return settings()[name].def
}

// podFile is a file a container sees through its volume mounts.
type podFile struct {
	source string // "Secret o2o-app key api_keys"
	data   []byte
}

// files are the files the container's volume mounts give it, by path, with their contents: from the
// Secrets and ConfigMaps of the bundles given, and from the Secrets CloudNativePG creates for a
// Cluster among them (its CA; the test stands a CA of its own in for the content). Every Secret,
// ConfigMap and key that a mount names must exist, or the pod would never start.
func (w workload) files(have []*bundle, testCA []byte) (map[string]podFile, []string) {
	out := map[string]podFile{}
	var problems []string
	volumes := map[string]corev1.Volume{}
	for _, v := range w.pod.Spec.Volumes {
		volumes[v.Name] = v
	}
	secretKeys := func(name string) (map[string][]byte, string) {
		for _, b := range have {
			if s := b.secret(name); s != nil {
				data := map[string][]byte{}
				for k, v := range s.Data {
					data[k] = v
				}
				for k, v := range s.StringData {
					data[k] = []byte(v)
				}
				return data, "Secret " + name + " (" + b.dir + ")"
			}
			for _, c := range b.clusters {
				if c.caSecret() == name {
					// Both keys exist; ca.key is the CA's private key, which no pod of the service
					// needs (the check of mounts refuses it).
					return map[string][]byte{"ca.crt": testCA, "ca.key": []byte("the CA's private key")}, "Secret " + name + " (CloudNativePG's, for Cluster " + c.Name + ")"
				}
			}
		}
		return nil, ""
	}
	add := func(mount corev1.VolumeMount, kind, name string, data map[string][]byte, source string, items []corev1.KeyToPath) {
		if data == nil {
			var dirs []string
			for _, b := range have {
				dirs = append(dirs, b.dir)
			}
			problems = append(problems, fmt.Sprintf("%s: volume mounted at %s takes %s %s, which neither the kustomizations applied by then (%s) nor CloudNativePG for their Clusters create",
				w.where, mount.MountPath, kind, name, strings.Join(dirs, ", ")))
			return
		}
		if len(items) == 0 {
			for k := range data {
				items = append(items, corev1.KeyToPath{Key: k, Path: k})
			}
		}
		for _, it := range items {
			d, ok := data[it.Key]
			if !ok {
				problems = append(problems, fmt.Sprintf("%s: volume mounted at %s takes key %s of %s, which has no such key (it has %s)", w.where, mount.MountPath, it.Key, source, strings.Join(sortedKeys(data), ", ")))
				continue
			}
			if it.Key == "ca.key" {
				problems = append(problems, fmt.Sprintf("%s: volume mounted at %s holds ca.key of %s, the CA's private key: mount only items: [ca.crt]", w.where, mount.MountPath, source))
			}
			out[strings.TrimSuffix(mount.MountPath, "/")+"/"+it.Path] = podFile{source + " key " + it.Key, d}
		}
	}
	for _, m := range w.container().VolumeMounts {
		v, ok := volumes[m.Name]
		if !ok {
			problems = append(problems, fmt.Sprintf("%s: volumeMount %s names no volume", w.where, m.Name))
			continue
		}
		switch {
		case v.Secret != nil:
			data, source := secretKeys(v.Secret.SecretName)
			add(m, "Secret", v.Secret.SecretName, data, source, v.Secret.Items)
		case v.Projected != nil:
			for _, src := range v.Projected.Sources {
				switch {
				case src.Secret != nil:
					data, source := secretKeys(src.Secret.Name)
					add(m, "Secret", src.Secret.Name, data, source, src.Secret.Items)
				case src.ConfigMap != nil:
					var data map[string][]byte
					for _, b := range have {
						if cm := b.configMap(src.ConfigMap.Name); cm != nil {
							data = map[string][]byte{}
							for k, v := range cm.Data {
								data[k] = []byte(v)
							}
						}
					}
					add(m, "ConfigMap", src.ConfigMap.Name, data, "ConfigMap "+src.ConfigMap.Name, src.ConfigMap.Items)
				}
			}
		}
	}
	return out, problems
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// selects reports whether selector selects a pod with these labels (an empty selector selects all).
func selects(selector *metav1.LabelSelector, podLabels map[string]string) bool {
	if selector == nil {
		return false
	}
	s, err := metav1.LabelSelectorAsSelector(selector)
	return err == nil && s.Matches(labels.Set(podLabels))
}

// containerPort resolves a port given by name or number to the container's port number, or 0.
func containerPort(c corev1.Container, name string, number int32) int32 {
	for _, p := range c.Ports {
		if (name != "" && p.Name == name) || (name == "" && p.ContainerPort == number) {
			return p.ContainerPort
		}
	}
	return 0
}

func contains[T comparable](list []T, v T) bool { return slices.Contains(list, v) }
