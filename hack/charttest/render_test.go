package charttest

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"

	"helm.sh/helm/v4/pkg/action"
	"helm.sh/helm/v4/pkg/chart/common"
	chartv2 "helm.sh/helm/v4/pkg/chart/v2"
	"helm.sh/helm/v4/pkg/chart/v2/loader"
	releasev1 "helm.sh/helm/v4/pkg/release/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"
)

var (
	root     = repoRoot()
	chartDir = filepath.Join(root, "charts", "portero")
	assets   = assetsDir()
)

const (
	// What `make deploy` installs: release "portero" in portero-system gives its names.
	release   = "portero"
	namespace = "portero-system"
	// The chart's default image: its repository and the chart's appVersion.
	defaultImage = "ghcr.io/portero-dev/portero:v0.1.0"
)

// repoRoot is the main module's directory: this module is hack/charttest.
func repoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

func assetsDir() string {
	if dir := os.Getenv("KUBEBUILDER_ASSETS"); dir != "" {
		return dir
	}
	return filepath.Join(root, "bin", "k8s")
}

// rendered is one render of the chart: the templates' objects and the CRDs of crds/, which Helm
// installs before the templates and never templates.
type rendered struct {
	objs     []*unstructured.Unstructured
	crds     []*unstructured.Unstructured
	manifest string
	notes    string
}

// all is every object the release installs, CRDs first.
func (r *rendered) all() []*unstructured.Unstructured { return append(slices.Clone(r.crds), r.objs...) }

// kubeVersion is the Kubernetes of bin/k8s (hack/build-tools.sh), for Capabilities.KubeVersion. The
// SDK's default inside a test binary is v1.20, older than any cluster the chart supports.
const kubeVersion = "v1.37.2"

// renderChart renders the chart as `helm template` does (the SDK's install action, client-only dry
// run), with values as a values file gives them.
func renderChart(releaseName, ns, values string) (*rendered, error) {
	return renderChartFor(kubeVersion, releaseName, ns, values)
}

func renderChartFor(kube, releaseName, ns, values string) (*rendered, error) {
	vals := map[string]any{}
	if err := yaml.Unmarshal([]byte(values), &vals); err != nil {
		return nil, fmt.Errorf("values: %w", err)
	}
	ch, err := loader.Load(chartDir)
	if err != nil {
		return nil, fmt.Errorf("load chart: %w", err)
	}
	inst := action.NewInstall(action.NewConfiguration(action.ConfigurationSetLogger(slog.DiscardHandler)))
	inst.DryRunStrategy = action.DryRunClient
	inst.ReleaseName, inst.Namespace = releaseName, ns
	inst.Replace = true // as helm template: no release store to check the name against
	if inst.KubeVersion, err = common.ParseKubeVersion(kube); err != nil {
		return nil, err
	}
	rel, err := inst.Run(ch, vals)
	if err != nil {
		return nil, err
	}
	r, ok := rel.(*releasev1.Release)
	if !ok {
		return nil, fmt.Errorf("install returned a %T", rel)
	}
	objs, err := parseObjects(r.Manifest)
	if err != nil {
		return nil, fmt.Errorf("rendered manifest: %w", err)
	}
	out := &rendered{objs: objs, manifest: r.Manifest}
	if r.Info != nil {
		out.notes = r.Info.Notes
	}
	crds, err := chartCRDs(ch)
	if err != nil {
		return nil, err
	}
	out.crds = crds
	return out, nil
}

func chartCRDs(ch *chartv2.Chart) ([]*unstructured.Unstructured, error) {
	var crds []*unstructured.Unstructured
	for _, c := range ch.CRDObjects() {
		objs, err := parseObjects(string(c.File.Data))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", c.Filename, err)
		}
		crds = append(crds, objs...)
	}
	return crds, nil
}

func mustRender(t *testing.T, values string) *rendered {
	t.Helper()
	r, err := renderChart(release, namespace, values)
	if err != nil {
		t.Fatalf("render the chart with values %q: %v", values, err)
	}
	checkReferences(t, r.all())
	return r
}

// parseObjects reads a multi-document YAML stream; empty documents (comments only) are skipped.
func parseObjects(manifest string) ([]*unstructured.Unstructured, error) {
	dec := utilyaml.NewYAMLOrJSONDecoder(strings.NewReader(manifest), 4096)
	var objs []*unstructured.Unstructured
	for {
		var m map[string]any
		if err := dec.Decode(&m); err != nil {
			if errors.Is(err, io.EOF) {
				return objs, nil
			}
			return nil, err
		}
		if len(m) == 0 {
			continue
		}
		u := &unstructured.Unstructured{Object: m}
		if u.GetKind() == "" || u.GetName() == "" {
			return nil, fmt.Errorf("a document without kind or name: %v", m)
		}
		objs = append(objs, u)
	}
}

// clusterScoped are the kinds among Portero's objects that live outside namespaces. kustomize
// stamps its namespace on the ones it does not know (the admission policy); the API server and
// Helm do not, so comparisons ignore it there.
var clusterScoped = map[string]bool{
	"Namespace": true, "CustomResourceDefinition": true, "ClusterRole": true, "ClusterRoleBinding": true,
	"ValidatingAdmissionPolicy": true, "ValidatingAdmissionPolicyBinding": true,
}

type objKey struct{ kind, namespace, name string }

func (k objKey) String() string {
	if k.namespace == "" {
		return k.kind + " " + k.name
	}
	return k.kind + " " + k.namespace + "/" + k.name
}

func keyOf(u *unstructured.Unstructured) objKey {
	k := objKey{kind: u.GetKind(), namespace: u.GetNamespace(), name: u.GetName()}
	if clusterScoped[k.kind] {
		k.namespace = ""
	}
	return k
}

func index(t *testing.T, objs []*unstructured.Unstructured) map[objKey]*unstructured.Unstructured {
	t.Helper()
	m := map[objKey]*unstructured.Unstructured{}
	for _, u := range objs {
		k := keyOf(u)
		if _, dup := m[k]; dup {
			t.Errorf("%s is rendered twice", k)
		}
		m[k] = u
	}
	return m
}

func keys(m map[objKey]*unstructured.Unstructured) []string {
	var out []string
	for k := range m {
		out = append(out, k.String())
	}
	sort.Strings(out)
	return out
}

// kubectl is bin/k8s/kubectl, built by make envtest-assets (kustomize is built into it).
func kubectl(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(assets, "kubectl")
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("%s not found: run make envtest-assets", bin)
	}
	return bin
}

// kustomize builds a config/ directory as kubectl kustomize does.
func kustomize(t *testing.T, dir string) []*unstructured.Unstructured {
	t.Helper()
	return run(t, nil, kubectl(t), "kustomize", filepath.Join(root, dir))
}

// makeDeploy is what `make deploy IMG=image` applies: hack/deploy.sh render, with WATCH_NAMESPACES
// set when namespaces are given.
func makeDeploy(t *testing.T, image string, namespaces ...string) []*unstructured.Unstructured {
	t.Helper()
	env := []string{"KUBECTL=" + kubectl(t), "WATCH_NAMESPACES=" + strings.Join(namespaces, ",")}
	return run(t, env, filepath.Join(root, "hack", "deploy.sh"), "render", image)
}

func run(t *testing.T, env []string, name string, args ...string) []*unstructured.Unstructured {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), env...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, stderr.String())
	}
	objs, err := parseObjects(string(out))
	if err != nil {
		t.Fatalf("%s %s: %v", name, strings.Join(args, " "), err)
	}
	return objs
}

var (
	helmOnce sync.Once
	helmPath string
	helmErr  error
)

// helmCLI is $HELM or bin/k8s/helm (make envtest-assets builds it from hack/tools/helm), or, when
// it has not been built, the same module built into a temporary directory.
func helmCLI(t *testing.T) string {
	t.Helper()
	helmOnce.Do(func() {
		bin := cmp.Or(os.Getenv("HELM"), filepath.Join(assets, "helm"))
		if _, err := os.Stat(bin); err == nil {
			helmPath = bin
			return
		}
		dir, err := os.MkdirTemp("", "portero-helm")
		if err != nil {
			helmErr = err
			return
		}
		helmPath = filepath.Join(dir, "helm")
		cmd := exec.Command("go", "build", "-o", helmPath, "helm.sh/helm/v4/cmd/helm")
		cmd.Dir = filepath.Join(root, "hack", "tools", "helm")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			helmErr = fmt.Errorf("build helm from hack/tools/helm: %v\n%s", err, out)
		}
	})
	if helmErr != nil {
		t.Fatal(helmErr)
	}
	return helmPath
}

// helmEnv keeps the helm CLI away from the user's own Helm configuration, cache and registry logins.
func helmEnv(t *testing.T) []string {
	t.Helper()
	home := t.TempDir()
	return []string{
		"HELM_CONFIG_HOME=" + filepath.Join(home, "config"),
		"HELM_CACHE_HOME=" + filepath.Join(home, "cache"),
		"HELM_DATA_HOME=" + filepath.Join(home, "data"),
	}
}

// field reads a nested field, failing the test when it is missing.
func field(t *testing.T, u *unstructured.Unstructured, path ...string) any {
	t.Helper()
	v, ok, err := unstructured.NestedFieldNoCopy(u.Object, path...)
	if err != nil || !ok {
		t.Fatalf("%s has no %s", keyOf(u), strings.Join(path, "."))
	}
	return v
}

func stringMap(v any) map[string]string {
	out := map[string]string{}
	m, _ := v.(map[string]any)
	for k, v := range m {
		out[k] = fmt.Sprint(v)
	}
	return out
}

// contains reports whether labels has every pair of sel.
func contains(labels, sel map[string]string) bool {
	for k, v := range sel {
		if labels[k] != v {
			return false
		}
	}
	return len(sel) > 0
}

// checkReferences fails when a rendered object names one the render lacks: a binding's role or
// ServiceAccount, the policy a binding binds, the Deployment's ServiceAccount, the pods a Service or
// ServiceMonitor selects. Release names and overrides change every name at once; this catches the
// one template that forgot to.
func checkReferences(t *testing.T, objs []*unstructured.Unstructured) {
	t.Helper()
	idx := index(t, objs)
	has := func(kind, ns, name string) bool { _, ok := idx[objKey{kind, ns, name}]; return ok }
	for k, u := range idx {
		if ns := u.GetNamespace(); clusterScoped[k.kind] != (ns == "") {
			t.Errorf("%s: namespace %q on a %s", k, ns, map[bool]string{true: "cluster-scoped kind", false: "namespaced kind"}[clusterScoped[k.kind]])
		}
		switch k.kind {
		case "RoleBinding", "ClusterRoleBinding":
			ref := stringMap(field(t, u, "roleRef"))
			refNS := ""
			if ref["kind"] == "Role" {
				refNS = k.namespace
			}
			if !has(ref["kind"], refNS, ref["name"]) {
				t.Errorf("%s binds %s %s, which the chart does not render", k, ref["kind"], ref["name"])
			}
			for _, s := range field(t, u, "subjects").([]any) {
				s := stringMap(s)
				if s["kind"] == "ServiceAccount" && !has("ServiceAccount", s["namespace"], s["name"]) {
					t.Errorf("%s binds ServiceAccount %s/%s, which the chart does not render", k, s["namespace"], s["name"])
				}
			}
		case "ValidatingAdmissionPolicyBinding":
			if name := field(t, u, "spec", "policyName").(string); !has("ValidatingAdmissionPolicy", "", name) {
				t.Errorf("%s binds policy %s, which the chart does not render", k, name)
			}
		case "Deployment":
			sa := field(t, u, "spec", "template", "spec", "serviceAccountName").(string)
			if !has("ServiceAccount", k.namespace, sa) {
				t.Errorf("%s runs as ServiceAccount %s, which the chart does not render", k, sa)
			}
			if sel, pod := stringMap(field(t, u, "spec", "selector", "matchLabels")), stringMap(field(t, u, "spec", "template", "metadata", "labels")); !contains(pod, sel) {
				t.Errorf("%s: selector %v does not select its pods %v", k, sel, pod)
			}
		case "Service":
			sel := stringMap(field(t, u, "spec", "selector"))
			found := false
			for dk, d := range idx {
				if dk.kind == "Deployment" && dk.namespace == k.namespace && contains(stringMap(field(t, d, "spec", "template", "metadata", "labels")), sel) {
					found = true
				}
			}
			if !found {
				t.Errorf("%s selects %v: no pod of the chart has those labels", k, sel)
			}
		case "ServiceMonitor":
			sel := stringMap(field(t, u, "spec", "selector", "matchLabels"))
			found := false
			for sk, s := range idx {
				if sk.kind == "Service" && sk.namespace == k.namespace && contains(s.GetLabels(), sel) {
					found = true
				}
			}
			if !found {
				t.Errorf("%s selects Services %v: the chart renders none", k, sel)
			}
		}
	}
}
