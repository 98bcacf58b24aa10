package bench

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	billingv1alpha1 "github.com/portero-dev/portero/api/v1alpha1"
	"github.com/portero-dev/portero/controllers"
)

// OperatorOptions size the operator benchmarks.
type OperatorOptions struct {
	Portals  int // CustomerPortals applied at once
	Sessions int // Active PortalSessions on top of them, for the memory figure
	Expiring int // sessions expiring at the same instant
	// Workers create objects in parallel (the input, not what is measured).
	Workers int
	// ScaleBudget and ExpiryBudget bound the waits: a slow operator gets a FAIL, not a hang.
	ScaleBudget, ExpiryBudget time.Duration
	ProfileDir                string
	Progress                  func(format string, args ...any)
}

// Operator runs the three operator figures on one cluster, in order: scale (portals to
// reconciled), memory (with the portals and Sessions Active sessions) and expiry throughput.
func Operator(ctx context.Context, c *Cluster, o OperatorOptions) []Section {
	scale := Section{Title: "Operator scale", Method: []string{
		fmt.Sprintf("%d CustomerPortals (like the sample: SMTP and merchant API Secrets referenced, SQLite storage, a publicURL) created at once by %d client goroutines. Figure: from the first create until a watch has seen, for every portal, `status.observedGeneration == metadata.generation` with a Ready reason that only the end of a full reconcile sets, and watches on the six owned kinds have seen all %d objects (ServiceAccount, Role, RoleBinding, PVC, Deployment, Service per portal).", o.Portals, o.Workers, 6*o.Portals),
		fmt.Sprintf("Baseline: one client (one goroutine, sequential, as the controller's single worker) creating the same %d objects directly, with the same labels and pod template, in its own namespace. Measured before and after the operator run; the baseline is their mean.", 6*o.Portals),
		"No kubelet or controller-manager runs, so Deployments never become available: a portal's last state is Reconciling/Progressing, which the controller reaches only after applying everything.",
	}}
	mem := Section{Title: "Manager memory", Method: []string{
		fmt.Sprintf("After the scale run the manager is stopped and %d PortalSessions (ttl 12h, spread over the %d portals) are written by %d goroutines exactly as the operator leaves a minted session: its finalizer, a link Secret it controls (which the manager's label-selected cache holds), Active status with the token hash, expiry and Ready condition. Writing them directly takes the API server's time, not the operator's: minting 50,000 through the operator would measure its throughput (the expiry figure does) instead of its memory.", o.Sessions, o.Portals, o.Workers),
		fmt.Sprintf("The manager is then restarted — an upgrade or a failover at that size. Catch-up: from the process start until its PortalSession controller has reconciled every session once (its metrics) and both work queues are empty; those reconciles write nothing when the status is already what the operator would write. Figure: VmRSS of the manager process from /proc 10 s after catch-up. Baseline: the same manager's VmRSS right after it first started, on an empty cluster. The manager runs with the environment its Deployment gives it (`config/manager/manager.yaml`: `%s`, under the container's %s memory limit).", strings.Join(c.managerOpts.Env, " "), c.managerOpts.MemoryLimit),
	}}
	expiry := Section{Title: "Expiring sessions", Method: []string{
		fmt.Sprintf("%d more PortalSessions whose ttl is computed at creation so that all expire at the same whole second D; they are all Active (link minted) before D. Figure: %d divided by the time from D until watches have seen, for the last of them, both `phase: Expired` (status written) and its link Secret deleted — the work expiry must do at that instant. (The `Expired` event the operator records is a third write; the finalizer stays until the session is deleted.)", o.Expiring, o.Expiring),
		fmt.Sprintf("Baseline: the same three writes per session — a merge patch (the status), a delete (the link Secret) and an events.k8s.io Event create — issued directly by %d goroutines on %d pairs of ConfigMaps, measured just before: what this API server accepts for that work. Built-in ConfigMaps are cheaper for the API server than a custom resource's status, which is JSON, schema-validated and field-managed.", o.Workers, o.Expiring),
		"D is planned from a pilot: 5% as many long-lived sessions are created first and the time the operator takes to mint them sets how far ahead D must be for all to be Active in time.",
		fmt.Sprintf("Then the manager is stopped and the same writes are made directly on %d PortalSessions written as minted ones (status patched to the expired status the operator wrote, link Secret deleted, Event created), by %d goroutines: the ceiling for any operator that keeps a session's state in a custom resource, on this API server.", o.Expiring, o.Workers),
		"CPU per session is each process's user+system time (/proc) from D (or the start of a baseline) to the end, divided by the sessions; \"machine busy\" is the busy share of all cores over the same window (/proc/stat). The benchmark's own watches and clients are in \"benchmark client\".",
	}}

	idle, err := c.Manager.Memory()
	if err != nil {
		scale.Err = err
		return []Section{scale}
	}
	if err := operatorScale(ctx, c, o, &scale); err != nil {
		scale.Err = err
		return []Section{scale}
	}
	if err := managerMemory(ctx, c, o, idle, &mem); err != nil {
		mem.Err = err
		return []Section{scale, mem}
	}
	if err := expiringSessions(ctx, c, o, &expiry); err != nil {
		expiry.Err = err
	}
	return []Section{scale, mem, expiry}
}

const scaleNS = "bench-scale"

func operatorScale(ctx context.Context, c *Cluster, o OperatorOptions, sec *Section) error {
	for _, ns := range []string{scaleNS, "bench-direct-1", "bench-direct-2"} {
		if err := c.Namespace(ctx, ns); err != nil {
			return err
		}
	}
	if err := CreatePortalSecrets(ctx, c.Client, scaleNS, "", randomKey()); err != nil {
		return err
	}

	o.Progress("operator: baseline 1: one client creates %d objects", 6*o.Portals)
	base1, err := createDirect(ctx, c.Client, "bench-direct-1", o.Portals)
	if err != nil {
		return fmt.Errorf("baseline: %w", err)
	}

	o.Progress("operator: %d CustomerPortals at once", o.Portals)
	cpu0, _ := c.Manager.CPUTime()
	stopProfile := c.profile(ctx, o.ProfileDir, "scale")
	took, err := applyPortals(ctx, c, o)
	stopProfile()
	if err != nil {
		return err
	}
	cpu1, _ := c.Manager.CPUTime()

	o.Progress("operator: baseline 2")
	base2, err := createDirect(ctx, c.Client, "bench-direct-2", o.Portals)
	if err != nil {
		return fmt.Errorf("baseline: %w", err)
	}
	base := (base1 + base2) / 2
	sec.Rows = append(sec.Rows, Row{
		Benchmark: fmt.Sprintf("Operator: %d portals reconciled", o.Portals), Figure: secs(took),
		Baseline: secs(base) + fmt.Sprintf(" (%d direct creates)", 6*o.Portals), Ratio: ratio(took.Seconds(), base.Seconds()),
		Target: "≤ 1.5× baseline", Result: verdict(took.Seconds() <= 1.5*base.Seconds()),
		Note: fmt.Sprintf("baseline runs %s and %s; manager CPU %.1f s during the run (%.1f ms per portal)", secs(base1), secs(base2),
			(cpu1 - cpu0).Seconds(), float64((cpu1-cpu0).Milliseconds())/float64(o.Portals)),
	})
	return nil
}

// applyPortals creates the portals and waits until each is reconciled and its six owned
// objects exist.
func applyPortals(ctx context.Context, c *Cluster, o OperatorOptions) (time.Duration, error) {
	done := newFirstSeen(o.Portals)
	owned := newFirstSeen(6 * o.Portals)
	stopPortals, err := c.Watch(ctx, &billingv1alpha1.CustomerPortalList{}, scaleNS, nil, func(ev watch.Event, at time.Time) {
		p := ev.Object.(*billingv1alpha1.CustomerPortal)
		if p.Status.ObservedGeneration != p.Generation {
			return
		}
		switch r := meta.FindStatusCondition(p.Status.Conditions, controllers.ConditionReady); {
		case r == nil:
		case r.Reason == controllers.ReasonProgressing, r.Reason == controllers.ReasonDeploymentUnavailable, r.Reason == controllers.ReasonReady:
			done.mark(p.Name, at)
		}
	})
	if err != nil {
		return 0, err
	}
	defer stopPortals()
	sel := labels.SelectorFromSet(labels.Set{controllers.LabelManagedBy: controllers.ManagedByValue})
	for _, l := range []client.ObjectList{&corev1.ServiceAccountList{}, &rbacv1.RoleList{}, &rbacv1.RoleBindingList{},
		&corev1.PersistentVolumeClaimList{}, &appsv1.DeploymentList{}, &corev1.ServiceList{}} {
		kind := strings.TrimSuffix(fmt.Sprintf("%T", l), "List")
		stop, err := c.Watch(ctx, l, scaleNS, sel, func(ev watch.Event, at time.Time) {
			if ev.Type == watch.Added {
				owned.mark(kind+"/"+ev.Object.(client.Object).GetName(), at)
			}
		})
		if err != nil {
			return 0, err
		}
		defer stop()
	}

	start := time.Now()
	err = Parallel(ctx, o.Workers, o.Portals, func(i int) error {
		_, err := CreatePortal(ctx, c.Client, scaleNS, portalName(i), "https://"+portalName(i)+".bench.example/")
		return err
	})
	if err != nil {
		return 0, err
	}
	if err := done.wait(ctx, o.ScaleBudget); err != nil {
		return 0, fmt.Errorf("portals reconciled: %w (manager log %s)", err, c.Manager.LogPath)
	}
	if err := owned.wait(ctx, time.Until(start.Add(o.ScaleBudget))); err != nil {
		return 0, fmt.Errorf("owned objects: %w", err)
	}
	end := done.last()
	if t := owned.last(); t.After(end) {
		end = t
	}
	return end.Sub(start), nil
}

func portalName(i int) string { return fmt.Sprintf("p%04d", i) }

// createDirect creates, from one goroutine, the objects the operator makes for n portals.
func createDirect(ctx context.Context, c client.Client, ns string, n int) (time.Duration, error) {
	start := time.Now()
	for i := range n {
		for _, obj := range equivalentObjects(ns, portalName(i)) {
			if err := c.Create(ctx, obj, client.FieldOwner("bench")); err != nil {
				return 0, fmt.Errorf("create %T %s: %w", obj, obj.GetName(), err)
			}
		}
	}
	return time.Since(start), nil
}

// equivalentObjects are what the operator applies for one portal (see
// controllers/customerportal_children.go), built by hand: ServiceAccount, Role, RoleBinding,
// PVC, Deployment and Service with the same labels, rules and pod template.
func equivalentObjects(ns, portal string) []client.Object {
	name := portal + "-portal"
	lbl := map[string]string{
		controllers.LabelManagedBy: "bench-direct", controllers.LabelName: controllers.PortalAppName,
		controllers.LabelInstance: portal, controllers.LabelComponent: "portal", controllers.LabelPortal: portal,
	}
	sel := map[string]string{controllers.LabelName: controllers.PortalAppName, controllers.LabelInstance: portal}
	om := func(n string) metav1.ObjectMeta { return metav1.ObjectMeta{Namespace: ns, Name: n, Labels: lbl} }
	probe := func(path string, period int32) *corev1.Probe {
		return &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: path, Port: intstr.FromString("http")}},
			PeriodSeconds: period, TimeoutSeconds: 2, FailureThreshold: 3}
	}
	return []client.Object{
		&corev1.ServiceAccount{ObjectMeta: om(name)},
		&rbacv1.Role{ObjectMeta: om(name), Rules: []rbacv1.PolicyRule{
			{APIGroups: []string{billingv1alpha1.GroupVersion.Group}, Resources: []string{"customerportals"}, ResourceNames: []string{portal}, Verbs: []string{"get", "list", "watch"}},
			{APIGroups: []string{billingv1alpha1.GroupVersion.Group}, Resources: []string{"portalsessions"}, Verbs: []string{"get", "list", "watch", "create", "update", "patch"}},
			{APIGroups: []string{""}, Resources: []string{"secrets"}, ResourceNames: []string{apiKeySecret, smtpSecret}, Verbs: []string{"get"}},
		}},
		&rbacv1.RoleBinding{ObjectMeta: om(name),
			RoleRef:  rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: name},
			Subjects: []rbacv1.Subject{{Kind: "ServiceAccount", Name: name, Namespace: ns}}},
		&corev1.PersistentVolumeClaim{ObjectMeta: om(portal + "-data"), Spec: corev1.PersistentVolumeClaimSpec{
			AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			Resources:   corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")}}}},
		&appsv1.Deployment{ObjectMeta: om(name), Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To[int32](1), Strategy: appsv1.DeploymentStrategy{Type: appsv1.RecreateDeploymentStrategyType},
			Selector: &metav1.LabelSelector{MatchLabels: sel},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: lbl}, Spec: corev1.PodSpec{
				ServiceAccountName: name,
				SecurityContext: &corev1.PodSecurityContext{RunAsNonRoot: ptr.To(true), RunAsUser: ptr.To[int64](65532), RunAsGroup: ptr.To[int64](65532),
					FSGroup: ptr.To[int64](65532), SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault}},
				Containers: []corev1.Container{{
					Name: "portal", Image: "portero-portal:bench",
					Args:           []string{"--portal=" + ns + "/" + portal, "--listen=:8080", "--data-dir=/var/lib/portero"},
					Ports:          []corev1.ContainerPort{{Name: "http", ContainerPort: 8080, Protocol: corev1.ProtocolTCP}},
					ReadinessProbe: probe("/readyz", 5), LivenessProbe: probe("/healthz", 10),
					Resources: corev1.ResourceRequirements{
						Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("50m"), corev1.ResourceMemory: resource.MustParse("64Mi")},
						Limits:   corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("256Mi")}},
					SecurityContext: &corev1.SecurityContext{RunAsNonRoot: ptr.To(true), AllowPrivilegeEscalation: ptr.To(false),
						ReadOnlyRootFilesystem: ptr.To(true), Capabilities: &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
						SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault}},
					VolumeMounts: []corev1.VolumeMount{{Name: "tmp", MountPath: "/tmp"}, {Name: "data", MountPath: "/var/lib/portero"}},
				}},
				Volumes: []corev1.Volume{
					{Name: "tmp", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
					{Name: "data", VolumeSource: corev1.VolumeSource{PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: portal + "-data"}}},
				},
			}},
		}},
		&corev1.Service{ObjectMeta: om(name), Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeClusterIP, Selector: sel,
			Ports: []corev1.ServicePort{{Name: "http", Port: 80, TargetPort: intstr.FromString("http"), Protocol: corev1.ProtocolTCP}}}},
	}
}

// managerMemory returns the end-to-end minting rate it saw.
// managerMemory stops the manager, writes o.Sessions sessions in the state the operator leaves
// them in once minted (finalizer, link Secret, Active status), restarts the manager and, once it
// has caught up, reads its resident memory.
func managerMemory(ctx context.Context, c *Cluster, o OperatorOptions, idle Memory, sec *Section) error {
	o.Progress("operator: stopping the manager; writing %d minted PortalSessions directly", o.Sessions)
	saveURL(ctx, c.managerMetrics, filepath.Join(c.dir, "manager-metrics-before-restart.txt"))
	c.Manager.Stop()
	portals := map[string]string{}
	for i := range o.Portals {
		p := &billingv1alpha1.CustomerPortal{}
		if err := c.Client.Get(ctx, client.ObjectKey{Namespace: scaleNS, Name: portalName(i)}, p); err != nil {
			return err
		}
		portals[p.Name] = p.Status.URL
	}
	start := time.Now()
	err := Parallel(ctx, o.Workers, o.Sessions, func(i int) error {
		p := portalName(i % o.Portals)
		return createMintedSession(ctx, c.Client, session(scaleNS, fmt.Sprintf("m%06d", i), p, 12*time.Hour), portals[p])
	})
	if err != nil {
		return fmt.Errorf("write minted sessions: %w", err)
	}
	written := time.Since(start)

	o.Progress("operator: %d sessions written in %s; restarting the manager", o.Sessions, written.Round(time.Second))
	cpu0 := time.Duration(0)
	restarted := time.Now()
	if err := c.StartManager(ctx, c.managerOpts); err != nil {
		return err
	}
	stopProfile := c.profile(ctx, o.ProfileDir, "restart")
	caughtUp, err := c.waitCaughtUp(ctx, o.Sessions, 10*time.Minute)
	stopProfile()
	if err != nil {
		return err
	}
	catchUp := caughtUp.Sub(restarted)
	cpu1, _ := c.Manager.CPUTime()
	o.Progress("operator: manager caught up after %s; settling 10 s", catchUp.Round(time.Second))
	sleepUntil(ctx, time.Now().Add(10*time.Second))
	if err := c.CheckManager(); err != nil {
		return err
	}
	m, err := c.Manager.Memory()
	if err != nil {
		return err
	}
	c.heapProfile(o.ProfileDir, "memory")
	// A peak above the container's memory limit would be an OOM kill in a cluster: that fails too.
	limit, err := resource.ParseQuantity(c.managerOpts.MemoryLimit)
	if err != nil {
		return fmt.Errorf("manager memory limit %q: %w", c.managerOpts.MemoryLimit, err)
	}
	peak := fmt.Sprintf("peak (VmHWM) %s, reached during the restart's initial list, under the container's %s limit", mib(m.HWM), c.managerOpts.MemoryLimit)
	if m.HWM > limit.Value() {
		peak = fmt.Sprintf("peak (VmHWM) %s, reached during the restart's initial list, ABOVE the container's %s limit: the pod would be OOM-killed", mib(m.HWM), c.managerOpts.MemoryLimit)
	}
	sec.Rows = append(sec.Rows,
		Row{
			Benchmark: fmt.Sprintf("Manager RSS, %d portals + %d sessions", o.Portals, o.Sessions), Figure: mib(m.RSS),
			Baseline: mib(idle.RSS) + " (idle manager)", Ratio: ratio(float64(m.RSS), float64(idle.RSS)),
			Target: "≤ 250 MiB; peak ≤ limit", Result: verdict(m.RSS <= 250<<20 && m.HWM <= limit.Value()),
			Note: peak,
		},
		Row{
			Benchmark: fmt.Sprintf("Manager restart catch-up, %d sessions", o.Sessions), Figure: secs(catchUp),
			Baseline: fmt.Sprintf("%s (writing them: %.0f sessions/s)", secs(written), float64(o.Sessions)/written.Seconds()),
			Ratio:    ratio(catchUp.Seconds(), written.Seconds()), Target: "—", Result: Info,
			Note: fmt.Sprintf("from process start to every session reconciled once and both work queues empty; manager CPU %.1f s", (cpu1 - cpu0).Seconds()),
		})
	return nil
}

// createMintedSession writes s as the operator leaves a minted session: its finalizer, a link
// Secret it controls holding a fresh token, and Active status with the hash, expiry and Ready
// condition the operator would compute, so that reconciling it changes nothing. (Should the
// operator's wording of the condition change, it rewrites each status on its first pass: the
// catch-up gets slower, the memory figure does not change.)
func createMintedSession(ctx context.Context, c client.Client, s *billingv1alpha1.PortalSession, portalURL string) error {
	s.Finalizers = []string{controllers.FinalizerRevoke}
	if err := c.Create(ctx, s); err != nil {
		return err
	}
	token, err := controllers.MintToken()
	if err != nil {
		return err
	}
	name := s.Name + "-link"
	link := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: s.Namespace, Name: name, Labels: map[string]string{
			controllers.LabelManagedBy: controllers.ManagedByValue,
			controllers.LabelSession:   s.Name,
			controllers.LabelPortal:    s.Spec.PortalRef.Name,
		}, Annotations: map[string]string{controllers.AnnotationLinkPortalURL: portalURL}, OwnerReferences: []metav1.OwnerReference{{
			APIVersion: billingv1alpha1.GroupVersion.String(), Kind: "PortalSession", Name: s.Name, UID: s.UID,
			Controller: ptr.To(true), BlockOwnerDeletion: ptr.To(true),
		}}},
		Type: corev1.SecretTypeOpaque,
		Data: map[string][]byte{
			controllers.LinkSecretKeyToken: []byte(token),
			controllers.LinkSecretKeyURL:   []byte(strings.TrimSuffix(portalURL, "/") + "/s/" + token),
		},
	}
	if err := c.Create(ctx, link, client.FieldOwner(controllers.FieldOwner)); err != nil {
		return err
	}
	exp := metav1.NewTime(s.CreationTimestamp.Add(s.Spec.TTL.Duration).Truncate(time.Second))
	s.Status = billingv1alpha1.PortalSessionStatus{
		Phase: billingv1alpha1.SessionActive, ExpiresAt: &exp, TokenHash: controllers.HashToken(token),
		LinkSecretName: name, ObservedGeneration: s.Generation,
		Conditions: []metav1.Condition{{
			Type: controllers.ConditionReady, Status: metav1.ConditionTrue, Reason: controllers.SessionReasonLinkReady,
			Message:            fmt.Sprintf("the link is in Secret %s (key %s) and works until %s", name, controllers.LinkSecretKeyURL, exp.UTC().Format(time.RFC3339)),
			ObservedGeneration: s.Generation, LastTransitionTime: metav1.Now(),
		}},
	}
	return c.Status().Update(ctx, s)
}

// waitCaughtUp polls the manager's metrics until the PortalSession controller has reconciled at
// least n times and both controllers' work queues are empty, and returns when that was first seen.
func (c *Cluster) waitCaughtUp(ctx context.Context, n int, timeout time.Duration) (time.Time, error) {
	deadline := time.Now().Add(timeout)
	var last string
	for time.Now().Before(deadline) {
		text, err := c.ManagerMetric("")
		if err == nil {
			reconciled := sumMetric(text, `controller_runtime_reconcile_total{controller="portalsession"`)
			depth := sumMetric(text, `workqueue_depth{controller="portalsession"`) + sumMetric(text, `workqueue_depth{controller="customerportal"`)
			last = fmt.Sprintf("%0.f sessions reconciled, %0.f queued", reconciled, depth)
			if reconciled >= float64(n) && depth == 0 {
				return time.Now(), nil
			}
		}
		if err := c.CheckManager(); err != nil {
			return time.Time{}, err
		}
		sleepUntil(ctx, time.Now().Add(250*time.Millisecond))
	}
	return time.Time{}, fmt.Errorf("manager had not caught up after %s: %s", timeout, last)
}

// sumMetric adds up the values of the Prometheus text lines starting with prefix.
func sumMetric(text, prefix string) float64 {
	var sum float64
	for _, l := range strings.Split(text, "\n") {
		if !strings.HasPrefix(l, prefix) {
			continue
		}
		f := strings.Fields(l)
		var v float64
		if _, err := fmt.Sscan(f[len(f)-1], &v); err == nil {
			sum += v
		}
	}
	return sum
}

// session is a PortalSession for a customer of portal.
func session(ns, name, portal string, ttl time.Duration) *billingv1alpha1.PortalSession {
	return &billingv1alpha1.PortalSession{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: billingv1alpha1.PortalSessionSpec{
			PortalRef: billingv1alpha1.PortalReference{Name: portal},
			Customer:  billingv1alpha1.CustomerReference{ID: "cus_" + name},
			TTL:       &metav1.Duration{Duration: ttl},
		},
	}
}

const expiryNS = "bench-expiry"

func expiringSessions(ctx context.Context, c *Cluster, o OperatorOptions, sec *Section) error {
	for _, ns := range []string{expiryNS, "bench-expiry-direct"} {
		if err := c.Namespace(ctx, ns); err != nil {
			return err
		}
	}
	if err := CreatePortalSecrets(ctx, c.Client, expiryNS, "", randomKey()); err != nil {
		return err
	}
	if _, err := CreatePortal(ctx, c.Client, expiryNS, "expiry", "https://expiry.bench.example/"); err != nil {
		return err
	}
	if err := WaitPortalURL(ctx, c.Client, expiryNS, "expiry"); err != nil {
		return err
	}

	o.Progress("operator: baseline: 3 writes × %d (ConfigMaps, Events) by %d goroutines", o.Expiring, o.Workers)
	baseRate, baseCPU, err := directExpiry(ctx, c, "bench-expiry-direct", o.Expiring, o.Workers)
	if err != nil {
		return fmt.Errorf("baseline: %w", err)
	}

	pilot := max(o.Expiring/20, 50)
	pilotMinted, minted := newFirstSeen(pilot), newFirstSeen(o.Expiring)
	expired, secretGone := newFirstSeen(o.Expiring), newFirstSeen(o.Expiring)
	// finished marks a session once both its Expired phase and its Secret's deletion were seen.
	finished := newFirstSeen(o.Expiring)
	var halfDone sync.Map
	half := func(name string, at time.Time) {
		if _, loaded := halfDone.LoadOrStore(name, true); loaded {
			finished.mark(name, at)
		}
	}
	stopSecrets, err := c.Watch(ctx, &corev1.SecretList{}, expiryNS,
		labels.SelectorFromSet(labels.Set{controllers.LabelManagedBy: controllers.ManagedByValue}),
		func(ev watch.Event, at time.Time) {
			name := strings.TrimSuffix(ev.Object.(*corev1.Secret).Name, "-link")
			switch {
			case ev.Type == watch.Added && strings.HasPrefix(name, "pilot"):
				pilotMinted.mark(name, at)
			case ev.Type == watch.Added:
				minted.mark(name, at)
			case ev.Type == watch.Deleted && !strings.HasPrefix(name, "pilot"):
				if secretGone.mark(name, at) {
					half(name, at)
				}
			}
		})
	if err != nil {
		return err
	}
	defer stopSecrets()
	stopSessions, err := c.Watch(ctx, &billingv1alpha1.PortalSessionList{}, expiryNS, nil, func(ev watch.Event, at time.Time) {
		s := ev.Object.(*billingv1alpha1.PortalSession)
		if s.Status.Phase != billingv1alpha1.SessionExpired || strings.HasPrefix(s.Name, "pilot") {
			return
		}
		if expired.mark(s.Name, at) {
			half(s.Name, at)
		}
	})
	if err != nil {
		return err
	}
	defer stopSessions()

	// D must leave time for every session to be created and minted first. A pilot of long-lived
	// sessions measures how fast the operator mints right now.
	pilotStart := time.Now()
	if err := Parallel(ctx, o.Workers, pilot, func(i int) error {
		return c.Client.Create(ctx, session(expiryNS, fmt.Sprintf("pilot%05d", i), "expiry", 12*time.Hour))
	}); err != nil {
		return fmt.Errorf("create pilot sessions: %w", err)
	}
	if err := pilotMinted.wait(ctx, 5*time.Minute); err != nil {
		return fmt.Errorf("pilot sessions: %w", err)
	}
	mintRate := float64(pilot) / pilotMinted.last().Sub(pilotStart).Seconds()
	// Twice the pilot's estimate: the machine's load (and so the mint rate) varies during a run.
	lead := max(30*time.Second, time.Duration(2*float64(o.Expiring)/mintRate*float64(time.Second))+20*time.Second)
	d := time.Now().Add(lead).Truncate(time.Second).Add(time.Second)
	o.Progress("operator: %d sessions expiring at %s (in %s)", o.Expiring, d.Format("15:04:05"), time.Until(d).Round(time.Second))
	createStart := time.Now()
	err = Parallel(ctx, o.Workers, o.Expiring, func(i int) error {
		// creationTimestamp is the API server's second, at or after ours: expiry lands on D or D+1s.
		ttl := d.Sub(time.Now().Truncate(time.Second))
		return c.Client.Create(ctx, session(expiryNS, fmt.Sprintf("e%06d", i), "expiry", ttl))
	})
	if err != nil {
		return fmt.Errorf("create expiring sessions: %w", err)
	}
	if err := minted.wait(ctx, time.Until(d)); err != nil {
		return fmt.Errorf("not every expiring session was Active before its expiry (%w); the figure would mix in sessions expired before minting", err)
	}
	mintedRate := float64(o.Expiring) / minted.last().Sub(createStart).Seconds()
	// CPU and profiles count from D: the wait for it is idle time, not expiry work.
	sleepUntil(ctx, d)
	cpu0 := c.cpuUse()
	stopProfile := c.profile(ctx, o.ProfileDir, "expiry")
	// Bounded: a slow operator yields a low figure, not a run that never ends.
	werr := finished.wait(ctx, time.Until(d)+o.ExpiryBudget)
	cpu := c.cpuUse().sub(cpu0)
	stopProfile()
	c.heapProfile(o.ProfileDir, "expiry")
	if o.ProfileDir != "" {
		saveURL(ctx, c.managerMetrics, filepath.Join(o.ProfileDir, "manager-metrics-after-expiry.txt"))
		c.saveAPIServerURL(ctx, "/metrics", filepath.Join(o.ProfileDir, "apiserver-metrics-after-expiry.txt"))
	}
	n, took := o.Expiring, finished.last().Sub(d)
	partial := ""
	if werr != nil {
		n, took = finished.count(), o.ExpiryBudget
		partial = fmt.Sprintf("; only %d of %d were done %s after D", n, o.Expiring, o.ExpiryBudget)
	}
	rate := float64(n) / took.Seconds()
	phaseRate := float64(expired.count()) / expired.last().Sub(d).Seconds()
	m, _ := c.Manager.Memory()

	// The floor for a custom resource: the same writes the operator made, on PortalSessions,
	// with the manager stopped. The expired status is one the operator wrote.
	var sample billingv1alpha1.PortalSession
	if err := c.Client.Get(ctx, client.ObjectKey{Namespace: expiryNS, Name: "e000000"}, &sample); err != nil {
		return err
	}
	o.Progress("operator: stopping the manager; the same writes on %d PortalSessions, direct", o.Expiring)
	c.Manager.Stop()
	crRate, crCPU, err := directExpiryCR(ctx, c, "bench-expiry-cr", o.Expiring, o.Workers, sample.Status)
	if err != nil {
		return fmt.Errorf("baseline on PortalSessions: %w", err)
	}
	sec.Rows = append(sec.Rows, Row{
		Benchmark: fmt.Sprintf("Expiring sessions processed (%d at once)", o.Expiring), Figure: fmt.Sprintf("%.0f /s", rate),
		Baseline: fmt.Sprintf("%.0f /s (the same 3 writes each, direct)", baseRate), Ratio: ratio(rate, baseRate),
		Target: "≥ 300 /s", Result: verdict(rate >= 300 && werr == nil),
		Note: fmt.Sprintf("phase Expired reached at %.0f/s, link Secrets deleted at %.0f/s, both at %.0f/s%s; the %d sessions were minted at %.0f/s; "+
			"CPU per expiring session, from D to the end: %s (direct baseline, per unit of the same writes: %s); manager peak RSS %s",
			phaseRate, float64(secretGone.count())/secretGone.last().Sub(d).Seconds(), rate, partial, o.Expiring, mintedRate,
			cpu.perUnit(n, true), baseCPU.perUnit(o.Expiring, false), mib(m.HWM)),
	}, Row{
		Benchmark: fmt.Sprintf("Expiry's writes on %d PortalSessions, no operator", o.Expiring), Figure: fmt.Sprintf("%.0f /s", crRate),
		Baseline: fmt.Sprintf("%.0f /s (on ConfigMaps)", baseRate), Ratio: ratio(crRate, baseRate), Target: "—", Result: Info,
		Note: fmt.Sprintf("the ceiling for an operator that keeps the session's state in a custom resource's status on this API server; the operator reached %.0f%% of it. CPU per session: %s",
			100*rate/crRate, crCPU.perUnit(o.Expiring, false)),
	})
	return nil
}

// directExpiryCR measures workers goroutines making, with no operator running, the writes the
// operator makes when a session expires: a merge patch of the PortalSession's status from Active
// to expired (the operator's own expired status), the delete of its link Secret and the create
// of an Expired Event. The n sessions are first written as the operator leaves a minted one.
func directExpiryCR(ctx context.Context, cl *Cluster, ns string, n, workers int, expired billingv1alpha1.PortalSessionStatus) (rate float64, cpu cpuUse, err error) {
	c := cl.Client
	if err := cl.Namespace(ctx, ns); err != nil {
		return 0, cpuUse{}, err
	}
	sessions := make([]*billingv1alpha1.PortalSession, n)
	err = Parallel(ctx, workers, n, func(i int) error {
		sessions[i] = session(ns, fmt.Sprintf("x%06d", i), "expiry", time.Hour)
		return createMintedSession(ctx, c, sessions[i], "https://expiry.bench.example/")
	})
	if err != nil {
		return 0, cpuUse{}, err
	}
	cpu0 := cl.cpuUse()
	start := time.Now()
	err = Parallel(ctx, workers, n, func(i int) error {
		s := sessions[i]
		base := s.DeepCopy()
		s.Status.Phase, s.Status.LinkSecretName = expired.Phase, expired.LinkSecretName
		s.Status.Conditions = slices.Clone(expired.Conditions)
		if err := c.Status().Patch(ctx, s, client.MergeFromWithOptions(base, client.MergeFromWithOptimisticLock{})); err != nil {
			return err
		}
		if err := c.Delete(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: s.Name + "-link"}}); err != nil {
			return err
		}
		return c.Create(ctx, expiredEvent(corev1.ObjectReference{Kind: "PortalSession", Namespace: ns, Name: s.Name, UID: s.UID,
			APIVersion: billingv1alpha1.GroupVersion.String()}))
	})
	if err != nil {
		return 0, cpuUse{}, err
	}
	took := time.Since(start)
	return float64(n) / took.Seconds(), cl.cpuUse().sub(cpu0), nil
}

// directExpiry measures workers goroutines doing, per unit of work, the writes the operator makes
// per expiring session — a merge patch (its status), a delete (its link Secret) and a create (its
// Expired event) — on ConfigMaps and events.k8s.io Events created for it beforehand.
func directExpiry(ctx context.Context, cl *Cluster, ns string, n, workers int) (rate float64, cpu cpuUse, err error) {
	c := cl.Client
	err = Parallel(ctx, workers, 2*n, func(i int) error {
		name := fmt.Sprintf("c%06d", i/2)
		if i%2 == 1 {
			name += "-link"
		}
		return c.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
			Data: map[string]string{"phase": "Active"}})
	})
	if err != nil {
		return 0, cpuUse{}, err
	}
	cpu0 := cl.cpuUse()
	start := time.Now()
	err = Parallel(ctx, workers, n, func(i int) error {
		name := fmt.Sprintf("c%06d", i)
		cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}
		if err := c.Patch(ctx, cm, client.RawPatch(types.MergePatchType, []byte(`{"data":{"phase":"Expired"}}`))); err != nil {
			return err
		}
		if err := c.Delete(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name + "-link"}}); err != nil {
			return err
		}
		return c.Create(ctx, expiredEvent(corev1.ObjectReference{Kind: "ConfigMap", Namespace: ns, Name: name, APIVersion: "v1"}))
	})
	if err != nil {
		return 0, cpuUse{}, err
	}
	took := time.Since(start)
	return float64(n) / took.Seconds(), cl.cpuUse().sub(cpu0), nil
}

// expiredEvent is the Expired Event the direct baselines write for the object they expire.
func expiredEvent(regarding corev1.ObjectReference) *eventsv1.Event {
	return &eventsv1.Event{
		ObjectMeta:          metav1.ObjectMeta{Namespace: regarding.Namespace, Name: regarding.Name + ".expired"},
		EventTime:           metav1.NowMicro(),
		ReportingController: "bench.portero.dev/direct", ReportingInstance: "bench",
		Action: "Reconcile", Reason: controllers.SessionReasonExpired, Type: corev1.EventTypeNormal,
		Regarding: regarding,
		Note:      "the session expired; its link Secret was deleted",
	}
}

// Parallel runs fn(0..n-1) on workers goroutines and returns the first error.
func Parallel(ctx context.Context, workers, n int, fn func(i int) error) error {
	var next atomic.Int64
	var first atomic.Value
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil && first.Load() == nil {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				if err := fn(i); err != nil {
					first.CompareAndSwap(nil, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if err, _ := first.Load().(error); err != nil {
		return err
	}
	return ctx.Err()
}

// profile records CPU profiles of the manager and of the API server from now until stop is
// called, into dir/{manager,apiserver}-<name>-NN.cpu.pprof, when the manager serves pprof and dir
// is set. The API server's share of the work is one the manager's profile cannot show.
func (c *Cluster) profile(ctx context.Context, dir, name string) (stop func()) {
	if dir == "" || c.managerPprof == "" {
		return func() {}
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{}, 2)
	// pprof's profile endpoint runs for a fixed time; ask for long and cut it with ctx... which
	// drops it. So take consecutive 10 s slices and keep them all.
	slices := func(save func(ctx context.Context, url, path string), base, who string) {
		defer func() { done <- struct{}{} }()
		for i := 0; ctx.Err() == nil; i++ {
			save(ctx, base+"profile?seconds=10", filepath.Join(dir, fmt.Sprintf("%s-%s-%02d.cpu.pprof", who, name, i)))
		}
	}
	go slices(saveURL, c.managerPprof, "manager")
	go slices(c.saveAPIServerURL, "/debug/pprof/", "apiserver")
	return func() { cancel(); <-done; <-done }
}

// saveAPIServerURL saves what the API server answers at apiPath (a /debug or /metrics path) to path.
func (c *Cluster) saveAPIServerURL(ctx context.Context, apiPath, path string) {
	u, err := c.apiServerURL()
	var hc *http.Client
	if err == nil {
		hc, err = rest.HTTPClientFor(c.Config)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "save %s: %v\n", filepath.Base(path), err)
		return
	}
	saveWith(ctx, hc, strings.TrimSuffix(u.String(), "/")+apiPath, path)
}

// heapProfile saves the manager's heap profile to dir/manager-<name>.heap.pprof.
func (c *Cluster) heapProfile(dir, name string) {
	if dir == "" || c.managerPprof == "" {
		return
	}
	saveURL(context.Background(), c.managerPprof+"heap", filepath.Join(dir, "manager-"+name+".heap.pprof"))
}

func saveURL(ctx context.Context, url, path string) { saveWith(ctx, http.DefaultClient, url, path) }

func saveWith(ctx context.Context, hc *http.Client, url, path string) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	resp, err := hc.Do(req)
	if err != nil {
		if ctx.Err() == nil {
			fmt.Fprintf(os.Stderr, "save %s: %v\n", filepath.Base(path), err)
		}
		return
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err == nil && resp.StatusCode != http.StatusOK {
		err = fmt.Errorf("%s: %s", resp.Status, bytes.TrimSpace(b))
	}
	if err == nil {
		err = os.WriteFile(path, b, 0o644)
	}
	if err != nil && ctx.Err() == nil {
		fmt.Fprintf(os.Stderr, "save %s: %v\n", filepath.Base(path), err)
	}
}

// perUnit says how the CPU in u spreads over n units of work, and how busy the machine was
// (busy CPU time over the CPU time of all of its cores in the window). With manager false the
// manager's share is left out (it was idle: the window measured something else).
func (u cpuUse) perUnit(n int, manager bool) string {
	s := fmt.Sprintf("API server %.1f ms, etcd %.1f ms", perUnitMS(u.api, n), perUnitMS(u.etcd, n))
	if manager {
		s += fmt.Sprintf(", manager %.1f ms", perUnitMS(u.manager, n))
	}
	s += fmt.Sprintf(", benchmark client %.1f ms", perUnitMS(u.self, n))
	if u.window > 0 {
		s += fmt.Sprintf("; machine %.0f%% busy", 100*u.busy.Seconds()/(u.window.Seconds()*float64(runtime.NumCPU())))
	}
	return s
}

// perUnitMS is d spread over n units, in milliseconds.
func perUnitMS(d time.Duration, n int) float64 {
	if n == 0 {
		return 0
	}
	return d.Seconds() * 1000 / float64(n)
}
