package charttest

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"helm.sh/helm/v4/pkg/action"
	"helm.sh/helm/v4/pkg/chart/common"
	"helm.sh/helm/v4/pkg/chart/v2/lint/support"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"
)

// The chart carries copies of files other parts of the project own: the CRDs and the operator's
// rules are generated from the Go types and markers (make manifests), the alerts are
// config/prometheus's. A copy that drifts would install something make deploy does not.
func TestCopiesMatchTheirSources(t *testing.T) {
	copies := map[string]string{
		"config/rbac/role.yaml":        "charts/portero/files/manager-role.yaml",
		"config/prometheus/rules.yaml": "charts/portero/files/prometheus-rules.yaml",
	}
	bases, err := filepath.Glob(filepath.Join(root, "config", "crd", "bases", "*.yaml"))
	if err != nil || len(bases) == 0 {
		t.Fatalf("no CRDs in config/crd/bases (%v)", err)
	}
	for _, b := range bases {
		copies["config/crd/bases/"+filepath.Base(b)] = "charts/portero/crds/" + filepath.Base(b)
	}
	inChart, err := filepath.Glob(filepath.Join(chartDir, "crds", "*"))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range inChart {
		if _, ok := copies["config/crd/bases/"+filepath.Base(c)]; !ok {
			t.Errorf("charts/portero/crds/%s is not in config/crd/bases: run make chart-sync", filepath.Base(c))
		}
	}
	for src, dst := range copies {
		want, err := os.ReadFile(filepath.Join(root, src))
		if err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(filepath.Join(root, dst))
		if err != nil {
			t.Errorf("%s: %v (run make chart-sync)", dst, err)
			continue
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s differs from %s: run make chart-sync", dst, src)
		}
	}
}

// Value sets the tests render, lint and dry-run: every template branch is in one of them.
var valueSets = map[string]string{
	"defaults":   "",
	"namespaced": "watchNamespaces: [shop, billing]",
	"everything": `
image: {repository: registry.example.com:5000/platform/portero, digest: "sha256:` + strings.Repeat("ab", 32) + `"}
watchNamespaces: [shop]
replicas: 2
logLevel: 3
goMemLimit: ""
nodeSelector: {kubernetes.io/os: linux}
tolerations: [{key: dedicated, operator: Equal, value: billing, effect: NoSchedule}]
affinity: {podAntiAffinity: {preferredDuringSchedulingIgnoredDuringExecution: [{weight: 100, podAffinityTerm: {topologyKey: kubernetes.io/hostname, labelSelector: {matchLabels: {app.kubernetes.io/name: portero-operator}}}}]}}
podAnnotations: {example.com/team: billing}
metrics:
  serviceMonitor: {enabled: true, labels: {release: kube-prometheus-stack}}
  podMonitor: {enabled: true, labels: {release: kube-prometheus-stack}}
  prometheusRule: {enabled: true, labels: {release: kube-prometheus-stack}}
`,
	"no leader election": "leaderElection: {enabled: false}\nmetrics: {service: {enabled: false}}",
}

// helm lint through the SDK's lint action, strict: a warning fails as an error does.
func TestLint(t *testing.T) {
	for name, values := range valueSets {
		t.Run(name, func(t *testing.T) {
			vals := map[string]any{}
			if err := yaml.Unmarshal([]byte(values), &vals); err != nil {
				t.Fatal(err)
			}
			lint := action.NewLint()
			lint.Strict, lint.Namespace = true, namespace
			kv, err := common.ParseKubeVersion(kubeVersion)
			if err != nil {
				t.Fatal(err)
			}
			lint.KubeVersion = kv
			res := lint.Run([]string{chartDir}, vals)
			if res.TotalChartsLinted != 1 {
				t.Errorf("linted %d charts, want 1", res.TotalChartsLinted)
			}
			for _, m := range res.Messages {
				if m.Severity > support.InfoSev {
					t.Errorf("lint: %s", m)
				}
			}
			for _, err := range res.Errors {
				t.Errorf("lint: %v", err)
			}
		})
	}
}

// The helm CLI built from the Go module proxy (hack/tools/helm) lints and templates the chart, and
// renders what the SDK renders.
func TestHelmCLI(t *testing.T) {
	helm := helmCLI(t)
	env := helmEnv(t)
	cli := func(args ...string) string {
		t.Helper()
		cmd := exec.Command(helm, args...)
		cmd.Env = append(os.Environ(), env...)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("helm %s: %v\n%s%s", strings.Join(args, " "), err, out, stderr.String())
		}
		return string(out)
	}
	want, err := exec.Command("go", "list", "-m", "-f", "{{.Version}}", "helm.sh/helm/v4").Output()
	if err != nil {
		t.Fatal(err)
	}
	if v := cli("version", "--template", "{{.Version}}"); v != strings.TrimSpace(string(want)) {
		t.Errorf("helm version %s, want %s (this module's Helm): rebuild it with make envtest-assets", v, want)
	}
	if out := cli("lint", "--strict", chartDir); !strings.Contains(out, "0 chart(s) failed") {
		t.Errorf("helm lint --strict:\n%s", out)
	}
	for _, c := range []struct {
		args   []string
		values string
	}{
		{nil, valueSets["defaults"]},
		{[]string{"--set", "watchNamespaces={shop,billing}"}, valueSets["namespaced"]},
	} {
		args := append([]string{"template", release, chartDir, "--namespace", namespace, "--include-crds"}, c.args...)
		got, err := parseObjects(cli(args...))
		if err != nil {
			t.Fatal(err)
		}
		sdk := mustRender(t, c.values)
		if diff := cmp.Diff(objectMaps(sdk.all()), objectMaps(got)); diff != "" {
			t.Errorf("helm %s renders other objects than the SDK (-SDK +CLI):\n%s", strings.Join(args, " "), diff)
		}
	}
}

func objectMaps(objs []*unstructured.Unstructured) map[string]map[string]any {
	out := map[string]map[string]any{}
	for _, u := range objs {
		out[keyOf(u).String()] = u.Object
	}
	return out
}

// The chart with default values installs what `make deploy` installs (config/default), and with
// watchNamespaces what the namespaced install does (config/namespaced, WATCH_NAMESPACES=… make
// deploy): the same kinds, names and namespaces, RBAC rules and bindings, admission policy and
// binding, CRDs, and the same operator pod. Differences, on purpose:
//   - no Namespace object: Helm installs into a namespace that exists or that
//     `helm install --create-namespace` makes (README: label it for Pod Security);
//   - the metrics Service of config/prometheus, on by default (metrics.service.enabled);
//   - --zap-log-level=<logLevel> on the operator, and --portal-image where a kustomization
//     leaves the operator its built-in default (config/namespaced).
func TestChartInstallsWhatMakeDeployInstalls(t *testing.T) {
	cases := []struct {
		name, values string
		kustomized   func(t *testing.T) []*unstructured.Unstructured
		image        string
	}{
		{"config/default (make deploy)", "", func(t *testing.T) []*unstructured.Unstructured {
			return makeDeploy(t, defaultImage)
		}, defaultImage},
		{"WATCH_NAMESPACES=shop,billing make deploy", "watchNamespaces: [shop, billing]", func(t *testing.T) []*unstructured.Unstructured {
			return makeDeploy(t, defaultImage, "shop", "billing")
		}, defaultImage},
		{"config/namespaced", "watchNamespaces: [shop]\nimage: {tag: dev}", func(t *testing.T) []*unstructured.Unstructured {
			return kustomize(t, "config/namespaced")
		}, "ghcr.io/portero-dev/portero:dev"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			want := index(t, c.kustomized(t))
			got := index(t, mustRender(t, c.values).all())

			delete(want, objKey{"Namespace", "", namespace})
			metricsSvc := objKey{"Service", namespace, "portero-operator-metrics"}
			if _, ok := got[metricsSvc]; !ok {
				t.Errorf("the chart renders no %s", metricsSvc)
			}
			delete(got, metricsSvc)
			if diff := cmp.Diff(keys(want), keys(got)); diff != "" {
				t.Fatalf("objects (-kustomize +chart):\n%s", diff)
			}
			for k, w := range want {
				compareObject(t, k, w, got[k], c.image)
			}
		})
	}
}

// compareObject compares what matters of one object kind by kind.
func compareObject(t *testing.T, k objKey, want, got *unstructured.Unstructured, image string) {
	t.Helper()
	same := func(path ...string) {
		t.Helper()
		w, _, _ := unstructured.NestedFieldNoCopy(want.Object, path...)
		g, _, _ := unstructured.NestedFieldNoCopy(got.Object, path...)
		if diff := cmp.Diff(w, g); diff != "" {
			t.Errorf("%s %s (-kustomize +chart):\n%s", k, strings.Join(path, "."), diff)
		}
	}
	switch k.kind {
	case "CustomResourceDefinition":
		if diff := cmp.Diff(want.Object, got.Object); diff != "" {
			t.Errorf("%s (-kustomize +chart):\n%s", k, diff)
		}
	case "ClusterRole", "Role":
		same("rules")
	case "ClusterRoleBinding", "RoleBinding":
		same("roleRef")
		same("subjects")
	case "ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding":
		same("spec")
	case "ServiceAccount":
	case "Deployment":
		same("spec", "replicas")
		if sel, pod := stringMap(field(t, want, "spec", "selector", "matchLabels")), stringMap(field(t, got, "spec", "template", "metadata", "labels")); !contains(pod, sel) {
			t.Errorf("%s: the chart's pods %v lack make deploy's labels %v, which monitors and scripts select by", k, pod, sel)
		}
		wantPod := field(t, want, "spec", "template", "spec").(map[string]any)
		wantPod = runtimeCopy(wantPod)
		c := wantPod["containers"].([]any)[0].(map[string]any)
		if c["image"] != image {
			t.Fatalf("%s: kustomize's image is %v, the test expects %s", k, c["image"], image)
		}
		args := c["args"].([]any)
		if !slices.Contains(args, any("--portal-image="+image)) {
			args = slices.Insert(args, 4, any("--portal-image="+image))
		}
		c["args"] = append(args, "--zap-log-level=info")
		c["imagePullPolicy"] = "IfNotPresent" // what the API server defaults a tagged image to
		if diff := cmp.Diff(wantPod, field(t, got, "spec", "template", "spec")); diff != "" {
			t.Errorf("%s pod spec (-kustomize +chart):\n%s", k, diff)
		}
	default:
		t.Errorf("%s: the test does not compare this kind yet", k)
	}
}

func runtimeCopy(m map[string]any) map[string]any {
	return (&unstructured.Unstructured{Object: m}).DeepCopy().Object
}

// With metrics.serviceMonitor, podMonitor and prometheusRule on, the chart renders what
// `kubectl apply -k config/prometheus` installs: the alerts are config/prometheus/rules.yaml's.
func TestMonitoringIsConfigPrometheus(t *testing.T) {
	want := index(t, kustomize(t, "config/prometheus"))
	all := `metrics: {serviceMonitor: {enabled: true}, podMonitor: {enabled: true}, prometheusRule: {enabled: true}}`
	got := index(t, mustRender(t, all).objs)
	for k, w := range want {
		g, ok := got[k]
		if !ok {
			t.Errorf("the chart renders no %s (keys: %v)", k, keys(got))
			continue
		}
		spec := func(u *unstructured.Unstructured) map[string]any { return field(t, u, "spec").(map[string]any) }
		switch k.kind {
		case "PrometheusRule":
			// Against rules.yaml as kubectl apply -f and Helm read it: kustomize's YAML library
			// reads the folded expressions' more-indented lines with an extra blank line.
			src, err := os.ReadFile(filepath.Join(root, "config", "prometheus", "rules.yaml"))
			if err != nil {
				t.Fatal(err)
			}
			rules, err := parseObjects(string(src))
			if err != nil || len(rules) != 1 {
				t.Fatalf("config/prometheus/rules.yaml: %v (%d objects)", err, len(rules))
			}
			if diff := cmp.Diff(spec(rules[0]), spec(g)); diff != "" {
				t.Errorf("%s spec (-config/prometheus +chart):\n%s", k, diff)
			}
		case "PodMonitor":
			if diff := cmp.Diff(spec(w), spec(g)); diff != "" {
				t.Errorf("%s spec (-config/prometheus +chart):\n%s", k, diff)
			}
		case "ServiceMonitor":
			if diff := cmp.Diff(field(t, w, "spec", "endpoints"), field(t, g, "spec", "endpoints")); diff != "" {
				t.Errorf("%s endpoints (-config/prometheus +chart):\n%s", k, diff)
			}
		case "Service":
			if diff := cmp.Diff(field(t, w, "spec", "ports"), field(t, g, "spec", "ports")); diff != "" {
				t.Errorf("%s ports (-config/prometheus +chart):\n%s", k, diff)
			}
			if sel, gsel := stringMap(field(t, w, "spec", "selector")), stringMap(field(t, g, "spec", "selector")); !contains(gsel, sel) {
				t.Errorf("%s selects %v, config/prometheus's selects %v", k, gsel, sel)
			}
		case "ClusterRole":
			if diff := cmp.Diff(field(t, w, "rules"), field(t, g, "rules")); diff != "" {
				t.Errorf("%s rules (-config/prometheus +chart):\n%s", k, diff)
			}
		default:
			t.Errorf("%s: the test does not compare this kind yet", k)
		}
		for l, v := range w.GetLabels() {
			if g.GetLabels()[l] != v {
				t.Errorf("%s: label %s=%s of config/prometheus is missing (Prometheus may select by it)", k, l, v)
			}
		}
	}

	// Namespaced, the portals' scrape keeps to the watched namespaces; labels reach the objects.
	r := mustRender(t, `
watchNamespaces: [shop, billing]
metrics:
  podMonitor: {enabled: true, labels: {release: kps}}
  serviceMonitor: {enabled: true, labels: {release: kps}}
  prometheusRule: {enabled: true, labels: {release: kps}}`)
	idx := index(t, r.objs)
	pm := idx[objKey{"PodMonitor", namespace, "portero-portals"}]
	if pm == nil {
		t.Fatal("no PodMonitor")
	}
	if diff := cmp.Diff(map[string]any{"matchNames": []any{"shop", "billing"}}, field(t, pm, "spec", "namespaceSelector")); diff != "" {
		t.Errorf("namespaced PodMonitor namespaceSelector (-want +got):\n%s", diff)
	}
	for _, k := range []objKey{{"PodMonitor", namespace, "portero-portals"}, {"ServiceMonitor", namespace, "portero-operator"}, {"PrometheusRule", namespace, "portero"}} {
		if u := idx[k]; u == nil || u.GetLabels()["release"] != "kps" {
			t.Errorf("%s lacks the label release=kps from values", k)
		}
	}
	if _, ok := idx[objKey{"ClusterRoleBinding", "", "portero-manager-rolebinding"}]; ok {
		t.Error("namespaced: a ClusterRoleBinding of the operator's rules is rendered")
	}
}

// The values a platform team sets do what values.yaml says, and mistakes fail the render with a
// message that names the value.
func TestValues(t *testing.T) {
	operator := func(t *testing.T, r *rendered) (dep *unstructured.Unstructured, c map[string]any, args []string) {
		t.Helper()
		for _, u := range r.objs {
			if u.GetKind() == "Deployment" {
				dep = u
			}
		}
		if dep == nil {
			t.Fatal("no Deployment rendered")
		}
		c = field(t, dep, "spec", "template", "spec", "containers").([]any)[0].(map[string]any)
		for _, a := range c["args"].([]any) {
			args = append(args, a.(string))
		}
		return dep, c, args
	}
	hasKind := func(r *rendered, kind string) bool {
		return slices.ContainsFunc(r.objs, func(u *unstructured.Unstructured) bool { return u.GetKind() == kind })
	}

	t.Run("digest pins operator and portals", func(t *testing.T) {
		digest := "sha256:" + strings.Repeat("0f", 32)
		_, c, args := operator(t, mustRender(t, "image: {repository: registry.example.com:5000/p/portero, tag: v9.9.9, digest: "+digest+"}"))
		want := "registry.example.com:5000/p/portero@" + digest
		if c["image"] != want || !slices.Contains(args, "--portal-image="+want) {
			t.Errorf("image %v, args %v; want both %s", c["image"], args, want)
		}
	})
	t.Run("a tag that looks like a number", func(t *testing.T) {
		_, c, args := operator(t, mustRender(t, `image: {tag: "1.10"}`))
		if c["image"] != "ghcr.io/portero-dev/portero:1.10" || !slices.Contains(args, "--portal-image=ghcr.io/portero-dev/portero:1.10") {
			t.Errorf("image %v, args %v", c["image"], args)
		}
		// Unquoted, YAML reads 1.10 as the number 1.1: refused rather than installing tag 1.1.
		_, err := renderChart(release, namespace, "image: {tag: 1.10}")
		if err == nil || !strings.Contains(err.Error(), "tag") {
			t.Errorf("tag: 1.10 (a number) rendered; want an error naming the tag, got %v", err)
		}
	})
	t.Run("leader election off", func(t *testing.T) {
		r := mustRender(t, "leaderElection: {enabled: false}")
		if _, _, args := operator(t, r); slices.Contains(args, "--leader-elect") {
			t.Errorf("args %v still elect a leader", args)
		}
		if hasKind(r, "Role") {
			t.Error("the leader election Role is rendered without leader election")
		}
	})
	t.Run("replicas", func(t *testing.T) {
		dep, _, _ := operator(t, mustRender(t, "replicas: 3"))
		if n := fmt.Sprint(field(t, dep, "spec", "replicas")); n != "3" {
			t.Errorf("replicas %v, want 3", n)
		}
		_, err := renderChart(release, namespace, "replicas: 2\nleaderElection: {enabled: false}")
		if err == nil || !strings.Contains(err.Error(), "leaderElection.enabled") {
			t.Errorf("two replicas without leader election: want an error naming leaderElection.enabled, got %v", err)
		}
	})
	t.Run("log level", func(t *testing.T) {
		for values, want := range map[string]string{"": "info", "logLevel: debug": "debug", "logLevel: 4": "4"} {
			if _, _, args := operator(t, mustRender(t, values)); !slices.Contains(args, "--zap-log-level="+want) {
				t.Errorf("%q: args %v, want --zap-log-level=%s", values, args, want)
			}
		}
		for _, bad := range []string{"logLevel: verbose", "logLevel: 0"} {
			if _, err := renderChart(release, namespace, bad); err == nil || !strings.Contains(err.Error(), "logLevel") {
				t.Errorf("%q: want an error naming logLevel, got %v", bad, err)
			}
		}
	})
	t.Run("resources and GOMEMLIMIT", func(t *testing.T) {
		// Helm merges a map of values into the default one: null removes a default key.
		_, c, _ := operator(t, mustRender(t, "resources: {requests: null, limits: {memory: 1Gi}}\ngoMemLimit: 768MiB"))
		if diff := cmp.Diff(map[string]any{"limits": map[string]any{"memory": "1Gi"}}, c["resources"]); diff != "" {
			t.Errorf("resources (-want +got):\n%s", diff)
		}
		if diff := cmp.Diff([]any{map[string]any{"name": "GOMEMLIMIT", "value": "768MiB"}}, c["env"]); diff != "" {
			t.Errorf("env (-want +got):\n%s", diff)
		}
		if _, c, _ := operator(t, mustRender(t, `goMemLimit: ""`)); c["env"] != nil {
			t.Errorf("goMemLimit empty: env %v, want none", c["env"])
		}
		if _, err := renderChart(release, namespace, "goMemLimit: 200M"); err == nil || !strings.Contains(err.Error(), "goMemLimit") {
			t.Errorf("goMemLimit 200M (not a Go unit): want an error naming goMemLimit, got %v", err)
		}
	})
	t.Run("watchNamespaces", func(t *testing.T) {
		r := mustRender(t, "watchNamespaces: [billing, shop]")
		if _, _, args := operator(t, r); !slices.Contains(args, "--watch-namespaces=billing,shop") {
			t.Errorf("args %v", args)
		}
		var bound []string
		for _, u := range r.objs {
			if u.GetKind() == "RoleBinding" && u.GetName() == "portero-manager-rolebinding" {
				bound = append(bound, u.GetNamespace())
			}
			if u.GetKind() == "ClusterRoleBinding" && u.GetName() == "portero-manager-rolebinding" {
				t.Error("a ClusterRoleBinding of the operator's rules in a namespaced install")
			}
		}
		if diff := cmp.Diff([]string{"billing", "shop"}, bound); diff != "" {
			t.Errorf("RoleBindings of the operator's rules (-want +got):\n%s", diff)
		}
		for _, bad := range []string{"watchNamespaces: [Shop]", "watchNamespaces: [shop, shop]", "watchNamespaces: shop"} {
			if _, err := renderChart(release, namespace, bad); err == nil || !strings.Contains(err.Error(), "watchNamespaces") {
				t.Errorf("%q: want an error naming watchNamespaces, got %v", bad, err)
			}
		}
	})
	t.Run("ServiceMonitor needs the Service", func(t *testing.T) {
		_, err := renderChart(release, namespace, "metrics: {service: {enabled: false}, serviceMonitor: {enabled: true}}")
		if err == nil || !strings.Contains(err.Error(), "metrics.service.enabled") {
			t.Errorf("want an error naming metrics.service.enabled, got %v", err)
		}
		if r := mustRender(t, "metrics: {service: {enabled: false}}"); hasKind(r, "Service") {
			t.Error("metrics.service.enabled false still renders a Service")
		}
	})
	t.Run("misspelt value", func(t *testing.T) {
		if _, err := renderChart(release, namespace, "replica: 2"); err == nil || !strings.Contains(err.Error(), "replica") {
			t.Errorf("replica (for replicas): want an error naming it, got %v", err)
		}
	})
	t.Run("scheduling", func(t *testing.T) {
		dep, _, _ := operator(t, mustRender(t, valueSets["everything"]))
		pod := field(t, dep, "spec", "template", "spec").(map[string]any)
		for _, f := range []string{"nodeSelector", "tolerations", "affinity"} {
			if pod[f] == nil {
				t.Errorf("pod spec lacks %s", f)
			}
		}
		if a := field(t, dep, "spec", "template", "metadata", "annotations"); !reflect.DeepEqual(a, map[string]any{"example.com/team": "billing"}) {
			t.Errorf("pod annotations %v", a)
		}
	})
	t.Run("other release names", func(t *testing.T) {
		// Every name follows the release, cluster-scoped ones too, so a second release (another
		// set of watched namespaces) does not take over the first one's ClusterRole or policy.
		for relName, prefix := range map[string]string{"billing": "billing-portero-", "portero-billing": "portero-billing-"} {
			r, err := renderChart(relName, "billing-system", valueSets["everything"])
			if err != nil {
				t.Fatal(err)
			}
			checkReferences(t, r.all())
			for _, u := range r.objs {
				if !strings.HasPrefix(u.GetName(), prefix) && u.GetKind() != "PrometheusRule" {
					t.Errorf("release %s: %s is not named %s…", relName, keyOf(u), prefix)
				}
			}
		}
	})
	t.Run("Kubernetes before 1.30", func(t *testing.T) {
		// The ValidatingAdmissionPolicy is admissionregistration.k8s.io/v1 from 1.30 on.
		if _, err := renderChartFor("v1.29.9", release, namespace, ""); err == nil || !strings.Contains(err.Error(), "kubeVersion") {
			t.Errorf("Kubernetes 1.29: want an error naming kubeVersion, got %v", err)
		}
	})
	t.Run("notes", func(t *testing.T) {
		r := mustRender(t, "watchNamespaces: [shop, billing]")
		for _, want := range []string{defaultImage, "shop, billing", "kubectl -n portero-system rollout status deployment/portero-controller-manager", "helm show crds"} {
			if !strings.Contains(r.notes, want) {
				t.Errorf("NOTES lack %q:\n%s", want, r.notes)
			}
		}
	})
}
