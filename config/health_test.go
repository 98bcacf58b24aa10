package config_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/google/cel-go/cel"
	celtypes "github.com/google/cel-go/common/types"
	"github.com/google/cel-go/ext"
	lua "github.com/yuin/gopher-lua"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	testingclock "k8s.io/utils/clock/testing"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/yaml"

	billingv1alpha1 "github.com/portero-dev/portero/api/v1alpha1"
	"github.com/portero-dev/portero/controllers"
	"github.com/portero-dev/portero/internal/testenv"
)

// TestGitOpsHealthOnLiveObjects runs the Argo CD Lua health checks (config/argocd) and the Flux
// CEL health expressions (config/flux) on the objects the operator writes on a real API server,
// read back as Argo CD and Flux read them (unstructured JSON), at each point of their lives.
func TestGitOpsHealthOnLiveObjects(t *testing.T) {
	ctrllog.SetLogger(logr.Discard())
	argo := loadArgoScripts(t)
	flux := loadFluxChecks(t)

	env, err := testenv.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Stop() })
	c, err := client.New(env.Config, client.Options{Scheme: env.Scheme})
	if err != nil {
		t.Fatal(err)
	}
	// The operator, in this process so its sessions expire on a clock the test moves.
	fc := testingclock.NewFakeClock(time.Now())
	_, stop, err := testenv.StartManager(env.Config, controllers.ManagerOptions(env.Scheme, true), func(mgr manager.Manager) error {
		if err := (&controllers.CustomerPortalReconciler{
			Client: mgr.GetClient(), APIReader: mgr.GetAPIReader(), Scheme: mgr.GetScheme(),
			Recorder: mgr.GetEventRecorder("customerportal-controller"), PortalImage: "registry.example/portero:test",
		}).SetupWithManager(mgr); err != nil {
			return err
		}
		return (&controllers.PortalSessionReconciler{
			Client: mgr.GetClient(), APIReader: mgr.GetAPIReader(), Scheme: mgr.GetScheme(), Clock: fc,
		}).SetupWithManager(mgr)
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := stop(); err != nil {
			t.Errorf("manager: %v", err)
		}
	})

	ctx := context.Background()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "gitops-"}}
	if err := c.Create(ctx, ns); err != nil {
		t.Fatal(err)
	}
	if err := c.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns.Name, Name: "smtp"},
		StringData: map[string]string{"host": "smtp.example", "port": "587"}}); err != nil {
		t.Fatal(err)
	}

	type observed struct {
		name         string
		obj          map[string]any
		argo, flux   string
		argoMessage  string // a part of Argo CD's message, when it matters
		fluxEvalFail bool   // Flux cannot evaluate yet (no status): it keeps waiting
	}
	var seen []observed

	// A portal just created: the API server's answer to the create, before any status.
	portal := createLive(t, c, portalObject(ns.Name, "acme", "smtp"))
	seen = append(seen, observed{name: "portal just created", obj: portal, argo: "Progressing", flux: "Unknown", fluxEvalFail: true})
	key := client.ObjectKey{Namespace: ns.Name, Name: "acme"}
	portal = waitLive(t, c, "CustomerPortal", key, "reconciling while its Deployment is unavailable", func(s status) bool {
		return s.observed() && s.isTrue(controllers.ConditionReconciling)
	})
	seen = append(seen, observed{name: "portal reconciling", obj: portal, argo: "Progressing", flux: "InProgress"})
	makeAvailable(t, c, ns.Name, "acme-portal")
	portal = waitLive(t, c, "CustomerPortal", key, "Ready", func(s status) bool {
		return s.observed() && s.isTrue(controllers.ConditionReady)
	})
	seen = append(seen, observed{name: "portal Ready", obj: portal, argo: "Healthy", flux: "Current"})
	// The same object the instant after someone changed its spec, before the operator saw it.
	stale := runtime.DeepCopyJSON(portal)
	if err := unstructured.SetNestedField(stale, mustInt64(t, stale, "metadata", "generation")+1, "metadata", "generation"); err != nil {
		t.Fatal(err)
	}
	seen = append(seen, observed{name: "portal with a spec change not yet observed", obj: stale, argo: "Progressing", flux: "InProgress"})

	createLive(t, c, portalObject(ns.Name, "nosmtp", "missing"))
	broken := waitLive(t, c, "CustomerPortal", client.ObjectKey{Namespace: ns.Name, Name: "nosmtp"}, "Stalled", func(s status) bool {
		return s.observed() && s.isTrue(controllers.ConditionStalled)
	})
	seen = append(seen, observed{name: "portal whose SMTP Secret is missing", obj: broken, argo: "Degraded", flux: "Failed",
		argoMessage: `Secret "missing" named in spec.email.smtpSecretRef does not exist`})

	// Sessions of the Ready portal.
	session := createLive(t, c, sessionObject(ns.Name, "active", "acme", 30*time.Minute))
	seen = append(seen, observed{name: "session just created", obj: session, argo: "Progressing", flux: "Unknown", fluxEvalFail: true})
	active := waitLive(t, c, "PortalSession", client.ObjectKey{Namespace: ns.Name, Name: "active"}, "Active", func(s status) bool {
		return s.observed() && s.phase == billingv1alpha1.SessionActive && s.isTrue(controllers.ConditionReady)
	})
	seen = append(seen, observed{name: "Active session", obj: active, argo: "Healthy", flux: "Current"})

	createLive(t, c, sessionObject(ns.Name, "expires", "acme", 30*time.Second))
	expiresKey := client.ObjectKey{Namespace: ns.Name, Name: "expires"}
	s := waitLive(t, c, "PortalSession", expiresKey, "Active", func(s status) bool { return s.observed() && s.phase == billingv1alpha1.SessionActive })
	at, _, _ := unstructured.NestedString(s, "status", "expiresAt")
	expiresAt, err := time.Parse(time.RFC3339, at)
	if err != nil {
		t.Fatalf("status.expiresAt %q: %v", at, err)
	}
	fc.SetTime(expiresAt.Add(time.Second))
	expired := waitLive(t, c, "PortalSession", expiresKey, "Expired", func(s status) bool {
		return s.observed() && s.phase == billingv1alpha1.SessionExpired
	})
	seen = append(seen, observed{name: "expired session", obj: expired, argo: "Suspended", flux: "Current"})

	createLive(t, c, sessionObject(ns.Name, "revoked", "acme", 30*time.Minute))
	revokedKey := client.ObjectKey{Namespace: ns.Name, Name: "revoked"}
	waitLive(t, c, "PortalSession", revokedKey, "Active", func(s status) bool { return s.observed() && s.phase == billingv1alpha1.SessionActive })
	patch := client.RawPatch("application/merge-patch+json", []byte(`{"spec":{"revoked":true,"revocationReason":"customer asked"}}`))
	if err := c.Patch(ctx, &billingv1alpha1.PortalSession{ObjectMeta: metav1.ObjectMeta{Namespace: ns.Name, Name: "revoked"}}, patch); err != nil {
		t.Fatal(err)
	}
	revoked := waitLive(t, c, "PortalSession", revokedKey, "Revoked", func(s status) bool {
		return s.observed() && s.phase == billingv1alpha1.SessionRevoked
	})
	seen = append(seen, observed{name: "revoked session", obj: revoked, argo: "Suspended", flux: "Current"})

	// A session the portal refuses (ttl above its maxTTL) is Stalled without having ended: a real
	// failure, unlike the two above.
	createLive(t, c, sessionObject(ns.Name, "toolong", "acme", 48*time.Hour))
	refused := waitLive(t, c, "PortalSession", client.ObjectKey{Namespace: ns.Name, Name: "toolong"}, "Stalled", func(s status) bool {
		return s.observed() && s.isTrue(controllers.ConditionStalled)
	})
	seen = append(seen, observed{name: "session refused for its ttl", obj: refused, argo: "Degraded", flux: "Failed", argoMessage: "exceeds"})

	for _, o := range seen {
		kind, _, _ := unstructured.NestedString(o.obj, "kind")
		gotArgo, msg, err := argoHealth(argo[kind], o.obj)
		if err != nil {
			t.Errorf("%s: Argo CD health script: %v", o.name, err)
		} else if gotArgo != o.argo || !strings.Contains(msg, o.argoMessage) {
			t.Errorf("%s: Argo CD health %s %q, want %s (message with %q)", o.name, gotArgo, msg, o.argo, o.argoMessage)
		}
		gotFlux, err := flux[kind].evaluate(o.obj)
		if (err != nil) != o.fluxEvalFail {
			t.Errorf("%s: Flux evaluation error %v, want one: %v", o.name, err, o.fluxEvalFail)
		}
		if gotFlux != o.flux {
			t.Errorf("%s: Flux health %s, want %s", o.name, gotFlux, o.flux)
		}
	}
}

// TestArgoCDConfigMapMatchesScripts keeps the argocd-cm snippet people paste identical to the
// .lua files the live test runs, under the keys Argo CD looks up for Portero's kinds.
func TestArgoCDConfigMapMatchesScripts(t *testing.T) {
	scripts := loadArgoScripts(t)
	b, err := os.ReadFile(filepath.Join(testenv.RepoRoot(), "config", "argocd", "argocd-cm.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var cm corev1.ConfigMap
	if err := yaml.UnmarshalStrict(b, &cm); err != nil {
		t.Fatalf("argocd-cm.yaml: %v", err)
	}
	if cm.Kind != "ConfigMap" || cm.Name != "argocd-cm" {
		t.Errorf("argocd-cm.yaml holds %s %q, want ConfigMap argocd-cm", cm.Kind, cm.Name)
	}
	want := map[string]string{}
	for kind, script := range scripts {
		// Argo CD's key for a custom resource's health: resource.customizations.health.<group>_<Kind>.
		want["resource.customizations.health."+billingv1alpha1.GroupVersion.Group+"_"+kind] = script
	}
	for k, v := range want {
		if cm.Data[k] != v {
			t.Errorf("argocd-cm.yaml %s differs from the .lua file: paste it again, indented by four spaces", k)
		}
	}
	for k := range cm.Data {
		if _, ok := want[k]; !ok {
			t.Errorf("argocd-cm.yaml has %s, which no .lua file backs", k)
		}
	}
}

func portalObject(ns, name, smtpSecret string) *billingv1alpha1.CustomerPortal {
	return &billingv1alpha1.CustomerPortal{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: billingv1alpha1.CustomerPortalSpec{
			DisplayName:    "Acme Billing",
			PaymentMethods: &billingv1alpha1.PaymentMethods{All: true},
			Email:          &billingv1alpha1.Email{SMTPSecretRef: billingv1alpha1.LocalObjectReference{Name: smtpSecret}, From: "Acme <billing@acme.example>"},
			Exposure:       &billingv1alpha1.Exposure{PublicURL: "https://billing.acme.example/"},
		},
	}
}

func sessionObject(ns, name, portal string, ttl time.Duration) *billingv1alpha1.PortalSession {
	return &billingv1alpha1.PortalSession{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: billingv1alpha1.PortalSessionSpec{
			PortalRef: billingv1alpha1.PortalReference{Name: portal},
			Customer:  billingv1alpha1.CustomerReference{ID: "cus_123"},
			TTL:       &metav1.Duration{Duration: ttl},
		},
	}
}

// createLive creates obj and returns the API server's answer, in the unstructured form GitOps
// tools read.
func createLive(t *testing.T, c client.Client, obj client.Object) map[string]any {
	t.Helper()
	m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(obj)
	if err != nil {
		t.Fatal(err)
	}
	u := &unstructured.Unstructured{Object: m}
	gvk, err := c.GroupVersionKindFor(obj)
	if err != nil {
		t.Fatal(err)
	}
	u.SetGroupVersionKind(gvk)
	if err := c.Create(context.Background(), u); err != nil {
		t.Fatal(err)
	}
	return u.Object
}

// status is the part of a live object the waits look at.
type status struct {
	generation, observedGeneration int64
	phase                          billingv1alpha1.SessionPhase
	conditions                     []metav1.Condition
}

func (s status) observed() bool { return s.observedGeneration == s.generation }
func (s status) isTrue(kind string) bool {
	return meta.IsStatusConditionTrue(s.conditions, kind)
}

// waitLive polls the object until ready accepts it, and returns it as read (unstructured).
func waitLive(t *testing.T, c client.Client, kind string, key client.ObjectKey, what string, ready func(status) bool) map[string]any {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		u := &unstructured.Unstructured{}
		u.SetGroupVersionKind(testenv.GVK(kind))
		err := c.Get(context.Background(), key, u)
		if err == nil {
			var typed struct {
				Metadata metav1.ObjectMeta `json:"metadata"`
				Status   struct {
					Phase              billingv1alpha1.SessionPhase `json:"phase"`
					ObservedGeneration int64                        `json:"observedGeneration"`
					Conditions         []metav1.Condition           `json:"conditions"`
				} `json:"status"`
			}
			if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, &typed); err != nil {
				t.Fatal(err)
			}
			s := status{generation: typed.Metadata.Generation, observedGeneration: typed.Status.ObservedGeneration,
				phase: typed.Status.Phase, conditions: typed.Status.Conditions}
			if ready(s) {
				return u.Object
			}
			err = fmt.Errorf("status %+v", s)
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s %s: not %s after a minute: %v", kind, key, what, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// makeAvailable plays the kubelet and the Deployment controller, which envtest lacks.
func makeAvailable(t *testing.T, c client.Client, ns, name string) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		d := &appsv1.Deployment{}
		err := c.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, d)
		if err == nil {
			n := int32(1)
			if d.Spec.Replicas != nil {
				n = *d.Spec.Replicas
			}
			now := metav1.Now()
			d.Status = appsv1.DeploymentStatus{ObservedGeneration: d.Generation, Replicas: n, UpdatedReplicas: n, ReadyReplicas: n, AvailableReplicas: n,
				Conditions: []appsv1.DeploymentCondition{{Type: appsv1.DeploymentAvailable, Status: corev1.ConditionTrue, Reason: "MinimumReplicasAvailable", LastUpdateTime: now, LastTransitionTime: now}}}
			if err = c.Status().Update(context.Background(), d); err == nil {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("Deployment %s/%s status: %v", ns, name, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func mustInt64(t *testing.T, obj map[string]any, path ...string) int64 {
	t.Helper()
	v, ok, err := unstructured.NestedInt64(obj, path...)
	if err != nil || !ok {
		t.Fatalf("%s: %v (found %v)", strings.Join(path, "."), err, ok)
	}
	return v
}

// loadArgoScripts reads config/argocd/<group>/<Kind>/health.lua, Argo CD's own layout, by kind.
func loadArgoScripts(t *testing.T) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, kind := range []string{"CustomerPortal", "PortalSession"} {
		b, err := os.ReadFile(filepath.Join(testenv.RepoRoot(), "config", "argocd", billingv1alpha1.GroupVersion.Group, kind, "health.lua"))
		if err != nil {
			t.Fatal(err)
		}
		out[kind] = string(b)
	}
	return out
}

// argoHealth runs a health script as Argo CD runs one from argocd-cm: base, package and table
// libraries only (no string, io or os), a one-second budget, the object as the global obj, and
// the returned table read as {status, message}.
func argoHealth(script string, obj map[string]any) (string, string, error) {
	l := lua.NewState(lua.Options{SkipOpenLibs: true})
	defer l.Close()
	for _, lib := range []struct {
		name string
		open lua.LGFunction
	}{{lua.LoadLibName, lua.OpenPackage}, {lua.BaseLibName, lua.OpenBase}, {lua.TabLibName, lua.OpenTable}} {
		if err := l.CallByParam(lua.P{Fn: l.NewFunction(lib.open), NRet: 0, Protect: true}, lua.LString(lib.name)); err != nil {
			return "", "", err
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	l.SetContext(ctx)
	l.SetGlobal("obj", toLua(l, obj))
	if err := l.DoString(script); err != nil {
		return "", "", err
	}
	hs, ok := l.Get(-1).(*lua.LTable)
	if !ok {
		return "", "", fmt.Errorf("the script returned %s, not a table", l.Get(-1).Type())
	}
	st, ok := hs.RawGetString("status").(lua.LString)
	if !ok {
		return "", "", fmt.Errorf("hs.status is %s, not a string", hs.RawGetString("status").Type())
	}
	switch st {
	case "Healthy", "Progressing", "Degraded", "Suspended", "Missing", "Unknown":
	default:
		return "", "", fmt.Errorf("hs.status %q is not a health status Argo CD knows", st)
	}
	var msg string
	switch m := hs.RawGetString("message").(type) {
	case lua.LString:
		msg = string(m)
	case *lua.LNilType:
	default:
		return "", "", fmt.Errorf("hs.message is %s, not a string", m.Type())
	}
	return string(st), msg, nil
}

// toLua converts an unstructured object to Lua values the way Argo CD does: maps become tables
// keyed by string, lists become sequences from 1, JSON numbers (int64 or float64) numbers.
func toLua(l *lua.LState, v any) lua.LValue {
	switch v := v.(type) {
	case map[string]any:
		tbl := l.CreateTable(0, len(v))
		for k, item := range v {
			tbl.RawSetString(k, toLua(l, item))
		}
		return tbl
	case []any:
		tbl := l.CreateTable(len(v), 0)
		for _, item := range v {
			tbl.Append(toLua(l, item))
		}
		return tbl
	case string:
		return lua.LString(v)
	case bool:
		return lua.LBool(v)
	case int64:
		return lua.LNumber(v)
	case int:
		return lua.LNumber(v)
	case float64:
		return lua.LNumber(v)
	}
	return lua.LNil
}

// fluxCheck is one entry of a Flux Kustomization's spec.healthCheckExprs.
type fluxCheck struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	InProgress string `json:"inProgress"`
	Failed     string `json:"failed"`
	Current    string `json:"current"`
}

// loadFluxChecks reads the healthCheckExprs of config/flux, by kind.
func loadFluxChecks(t *testing.T) map[string]fluxCheck {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(testenv.RepoRoot(), "config", "flux", "portals-kustomization.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var k struct {
		APIVersion string `json:"apiVersion"`
		Kind       string `json:"kind"`
		Spec       struct {
			Wait             bool        `json:"wait"`
			HealthCheckExprs []fluxCheck `json:"healthCheckExprs"`
		} `json:"spec"`
	}
	if err := yaml.Unmarshal(b, &k); err != nil {
		t.Fatal(err)
	}
	if k.APIVersion != "kustomize.toolkit.fluxcd.io/v1" || k.Kind != "Kustomization" || !k.Spec.Wait {
		t.Fatalf("config/flux holds %s %s (wait %v), want a kustomize.toolkit.fluxcd.io/v1 Kustomization that waits", k.APIVersion, k.Kind, k.Spec.Wait)
	}
	out := map[string]fluxCheck{}
	for _, c := range k.Spec.HealthCheckExprs {
		if c.APIVersion != billingv1alpha1.GroupVersion.String() {
			t.Errorf("healthCheckExprs for %s names apiVersion %s, want %s", c.Kind, c.APIVersion, billingv1alpha1.GroupVersion)
		}
		out[c.Kind] = c
	}
	if len(out) != 2 || out["CustomerPortal"].Current == "" || out["PortalSession"].Current == "" {
		t.Fatalf("healthCheckExprs: want CustomerPortal and PortalSession, each with current: %+v", out)
	}
	return out
}

// evaluate reads obj's health as Flux's kustomize-controller does (fluxcd/pkg/runtime/cel,
// RFC-0009): an observedGeneration behind the generation is InProgress; then inProgress, failed
// and current are evaluated in that order and the first true one decides; none true is
// InProgress. The expressions are parsed, not type-checked, with the object's top-level fields
// as variables, in Flux's CEL environment. An evaluation error is reported as Unknown (Flux's
// poller keeps waiting on it) along with the error.
func (c fluxCheck) evaluate(obj map[string]any) (string, error) {
	if og, ok, _ := unstructured.NestedInt64(obj, "status", "observedGeneration"); ok {
		if g, ok, _ := unstructured.NestedInt64(obj, "metadata", "generation"); ok && g != og {
			return "InProgress", nil
		}
	}
	env, err := cel.NewEnv(cel.HomogeneousAggregateLiterals(), cel.EagerlyValidateDeclarations(true),
		cel.DefaultUTCTimeZone(true), cel.CrossTypeNumericComparisons(true), cel.OptionalTypes(),
		ext.Strings(), ext.Sets(), ext.Encoders())
	if err != nil {
		return "", err
	}
	for _, e := range []struct{ expr, result string }{{c.InProgress, "InProgress"}, {c.Failed, "Failed"}, {c.Current, "Current"}} {
		if e.expr == "" {
			continue
		}
		ast, iss := env.Parse(e.expr)
		if iss.Err() != nil {
			return "", fmt.Errorf("parse %q: %w", e.expr, iss.Err())
		}
		prg, err := env.Program(ast, cel.EvalOptions(cel.OptOptimize), cel.InterruptCheckFrequency(100))
		if err != nil {
			return "", err
		}
		val, _, err := prg.ContextEval(context.Background(), obj)
		if err != nil {
			return "Unknown", fmt.Errorf("evaluate %q: %w", e.expr, err)
		}
		b, ok := val.(celtypes.Bool)
		if !ok {
			return "", fmt.Errorf("%q is %s, not a bool", e.expr, val.Type())
		}
		if b {
			return e.result, nil
		}
	}
	return "InProgress", nil
}
