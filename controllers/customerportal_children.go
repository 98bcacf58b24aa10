package controllers

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"sort"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/util/intstr"
	appsv1ac "k8s.io/client-go/applyconfigurations/apps/v1"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"
	metav1ac "k8s.io/client-go/applyconfigurations/meta/v1"
	networkingv1ac "k8s.io/client-go/applyconfigurations/networking/v1"
	rbacv1ac "k8s.io/client-go/applyconfigurations/rbac/v1"

	billingv1alpha1 "github.com/portero-dev/portero/api/v1alpha1"
)

// Constants of the portal pod. The portal listens on one port for pages, API, health and metrics.
const (
	portalPort     = 8080
	portalPortName = "http"
	// metricsPort serves the portal's Prometheus metrics, apart from the port the Service and
	// Ingress expose: scrape it through the pod (PodMonitor or annotations), never the Ingress.
	metricsPort     = 9090
	metricsPortName = "metrics"
	portalDataDir   = "/var/lib/portero"
	portalContainer = "portal"
	// EnvDatabaseDSN carries the PostgreSQL DSN from the referenced Secret into the portal pod.
	EnvDatabaseDSN = "PORTERO_DATABASE_DSN"
)

// childName derives a DNS-1035 label (≤63 chars) for an owned object from the portal's name, so a
// long portal name still yields valid Service and ServiceAccount names.
func childName(portal, suffix string) string {
	name := portal + "-" + suffix
	if len(name) <= 63 {
		return name
	}
	sum := sha256.Sum256([]byte(name))
	h := hex.EncodeToString(sum[:])[:8]
	keep := 63 - len(suffix) - len(h) - 2
	return portal[:keep] + "-" + h + "-" + suffix
}

// names of the objects owned by one portal.
type childNames struct {
	serviceAccount, role, roleBinding, deployment, service, ingress, pvc string
}

func namesFor(p *billingv1alpha1.CustomerPortal) childNames {
	base := childName(p.Name, "portal")
	return childNames{
		serviceAccount: base, role: base, roleBinding: base, deployment: base, service: base, ingress: base,
		pvc: childName(p.Name, "data"),
	}
}

func ownedLabels(p *billingv1alpha1.CustomerPortal) map[string]string {
	return map[string]string{
		LabelManagedBy: ManagedByValue,
		LabelName:      PortalAppName,
		LabelInstance:  p.Name,
		LabelComponent: "portal",
		LabelPortal:    p.Name,
	}
}

func selectorLabels(p *billingv1alpha1.CustomerPortal) map[string]string {
	return map[string]string{LabelName: PortalAppName, LabelInstance: p.Name}
}

func ownerRef(p *billingv1alpha1.CustomerPortal) *metav1ac.OwnerReferenceApplyConfiguration {
	return metav1ac.OwnerReference().
		WithAPIVersion(billingv1alpha1.GroupVersion.String()).
		WithKind("CustomerPortal").
		WithName(p.Name).
		WithUID(p.UID).
		WithController(true).
		WithBlockOwnerDeletion(true)
}

// LocalURLAnnotation carries the URL `make run` serves a portal on (see --local-urls).
const LocalURLAnnotation = "billing.portero.dev/local-url"

// referencedSecrets returns the names of the Secrets the portal's spec names, sorted and unique.
func referencedSecrets(spec *billingv1alpha1.CustomerPortalSpec) []string {
	set := map[string]struct{}{}
	if spec.Email != nil {
		set[spec.Email.SMTPSecretRef.Name] = struct{}{}
	}
	if spec.MerchantAPI != nil {
		set[spec.MerchantAPI.KeySecretRef.Name] = struct{}{}
	}
	if spec.Storage != nil && spec.Storage.Postgres != nil {
		set[spec.Storage.Postgres.SecretRef.Name] = struct{}{}
	}
	for _, wh := range spec.Webhooks {
		set[wh.SecretRef.Name] = struct{}{}
	}
	if spec.Processor != nil && spec.Processor.SecretRef != nil {
		set[spec.Processor.SecretRef.Name] = struct{}{}
	}
	out := make([]string, 0, len(set))
	for n := range set {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

func buildServiceAccount(p *billingv1alpha1.CustomerPortal, n childNames) *corev1ac.ServiceAccountApplyConfiguration {
	return corev1ac.ServiceAccount(n.serviceAccount, p.Namespace).
		WithLabels(ownedLabels(p)).
		WithOwnerReferences(ownerRef(p))
}

// buildRole grants the portal pod exactly what it needs in its own namespace: read its own
// CustomerPortal, manage PortalSessions, and get (never list or watch) the Secrets its spec names
// and the link Secrets of the sessions it created.
// linkSecrets are the link Secrets of the Active sessions the portal itself created.
func buildRole(p *billingv1alpha1.CustomerPortal, n childNames, linkSecrets []string) *rbacv1ac.RoleApplyConfiguration {
	rules := []*rbacv1ac.PolicyRuleApplyConfiguration{
		rbacv1ac.PolicyRule().WithAPIGroups(billingv1alpha1.GroupVersion.Group).
			WithResources("customerportals").WithResourceNames(p.Name).WithVerbs("get", "list", "watch"),
		rbacv1ac.PolicyRule().WithAPIGroups(billingv1alpha1.GroupVersion.Group).
			WithResources("portalsessions").WithVerbs("get", "list", "watch", "create", "update", "patch"),
		// No portalsessions/status: only the operator writes a session's status, and the link
		// Secrets below are granted from it (phase Active).
	}
	if secrets := referencedSecrets(&p.Spec); len(secrets) > 0 {
		rules = append(rules, rbacv1ac.PolicyRule().WithAPIGroups("").
			WithResources("secrets").WithResourceNames(secrets...).WithVerbs("get"))
	}
	if len(linkSecrets) > 0 {
		rules = append(rules, rbacv1ac.PolicyRule().WithAPIGroups("").
			WithResources("secrets").WithResourceNames(linkSecrets...).WithVerbs("get"))
	}
	return rbacv1ac.Role(n.role, p.Namespace).
		WithLabels(ownedLabels(p)).
		WithOwnerReferences(ownerRef(p)).
		WithRules(rules...)
}

func buildRoleBinding(p *billingv1alpha1.CustomerPortal, n childNames) *rbacv1ac.RoleBindingApplyConfiguration {
	return rbacv1ac.RoleBinding(n.roleBinding, p.Namespace).
		WithLabels(ownedLabels(p)).
		WithOwnerReferences(ownerRef(p)).
		WithRoleRef(rbacv1ac.RoleRef().WithAPIGroup("rbac.authorization.k8s.io").WithKind("Role").WithName(n.role)).
		WithSubjects(rbacv1ac.Subject().WithKind("ServiceAccount").WithName(n.serviceAccount).WithNamespace(p.Namespace))
}

// buildDeployment is the portal server. Only what needs a restart is in the pod template: image,
// replicas, storage and the database Secret. Rules (permissions, methods, OTP, branding, access,
// returnURL) are read live by the portal from the CustomerPortal, so editing them never rolls pods.
func buildDeployment(p *billingv1alpha1.CustomerPortal, n childNames, image string) *appsv1ac.DeploymentApplyConfiguration {
	replicas := int32(1)
	if p.Spec.Replicas != nil {
		replicas = *p.Spec.Replicas
	}
	probe := func(path string, period int32) *corev1ac.ProbeApplyConfiguration {
		return corev1ac.Probe().
			WithHTTPGet(corev1ac.HTTPGetAction().WithPath(path).WithPort(intstr.FromString(portalPortName))).
			WithPeriodSeconds(period).WithTimeoutSeconds(2).WithFailureThreshold(3)
	}
	container := corev1ac.Container().
		WithName(portalContainer).
		WithImage(image).
		WithArgs(
			"--portal="+p.Namespace+"/"+p.Name,
			fmt.Sprintf("--listen=:%d", portalPort),
			fmt.Sprintf("--metrics-listen=:%d", metricsPort),
		).
		WithPorts(
			corev1ac.ContainerPort().WithName(portalPortName).WithContainerPort(portalPort).WithProtocol(corev1.ProtocolTCP),
			corev1ac.ContainerPort().WithName(metricsPortName).WithContainerPort(metricsPort).WithProtocol(corev1.ProtocolTCP)).
		WithReadinessProbe(probe("/readyz", 5)).
		WithLivenessProbe(probe("/healthz", 10)).
		WithResources(corev1ac.ResourceRequirements().
			WithRequests(corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("50m"), corev1.ResourceMemory: resource.MustParse("64Mi")}).
			WithLimits(corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("256Mi")})).
		WithSecurityContext(corev1ac.SecurityContext().
			WithRunAsNonRoot(true).
			WithAllowPrivilegeEscalation(false).
			WithReadOnlyRootFilesystem(true).
			WithCapabilities(corev1ac.Capabilities().WithDrop("ALL")).
			WithSeccompProfile(corev1ac.SeccompProfile().WithType(corev1.SeccompProfileTypeRuntimeDefault))).
		WithVolumeMounts(corev1ac.VolumeMount().WithName("tmp").WithMountPath("/tmp"))

	pod := corev1ac.PodSpec().
		WithServiceAccountName(n.serviceAccount).
		WithSecurityContext(corev1ac.PodSecurityContext().
			WithRunAsNonRoot(true).
			WithRunAsUser(65532).WithRunAsGroup(65532).WithFSGroup(65532).
			WithSeccompProfile(corev1ac.SeccompProfile().WithType(corev1.SeccompProfileTypeRuntimeDefault))).
		WithVolumes(corev1ac.Volume().WithName("tmp").WithEmptyDir(corev1ac.EmptyDirVolumeSource()))

	strategy := appsv1ac.DeploymentStrategy().WithType("RollingUpdate")
	st := p.Spec.Storage
	switch {
	case st != nil && st.Postgres != nil:
		container.WithArgs("--database-dsn-env=" + EnvDatabaseDSN).
			WithEnv(corev1ac.EnvVar().WithName(EnvDatabaseDSN).WithValueFrom(corev1ac.EnvVarSource().
				WithSecretKeyRef(corev1ac.SecretKeySelector().WithName(st.Postgres.SecretRef.Name).WithKey(secretKey(st.Postgres.SecretRef.Key, "dsn")))))
	default:
		// SQLite is one file on one volume: never two pods at once, so replace rather than roll.
		strategy = appsv1ac.DeploymentStrategy().WithType("Recreate")
		container.WithArgs("--data-dir=" + portalDataDir).
			WithVolumeMounts(corev1ac.VolumeMount().WithName("data").WithMountPath(portalDataDir))
		pod.WithVolumes(corev1ac.Volume().WithName("data").
			WithPersistentVolumeClaim(corev1ac.PersistentVolumeClaimVolumeSource().WithClaimName(n.pvc)))
	}
	pod.WithContainers(container)

	return appsv1ac.Deployment(n.deployment, p.Namespace).
		WithLabels(ownedLabels(p)).
		WithOwnerReferences(ownerRef(p)).
		WithSpec(appsv1ac.DeploymentSpec().
			WithReplicas(replicas).
			WithStrategy(strategy).
			WithSelector(metav1ac.LabelSelector().WithMatchLabels(selectorLabels(p))).
			WithTemplate(corev1ac.PodTemplateSpec().
				WithLabels(ownedLabels(p)).
				WithSpec(pod)))
}

func secretKey(key, def string) string {
	if key == "" {
		return def
	}
	return key
}

func buildService(p *billingv1alpha1.CustomerPortal, n childNames) *corev1ac.ServiceApplyConfiguration {
	return corev1ac.Service(n.service, p.Namespace).
		WithLabels(ownedLabels(p)).
		WithOwnerReferences(ownerRef(p)).
		WithSpec(corev1ac.ServiceSpec().
			WithType(corev1.ServiceTypeClusterIP).
			WithSelector(selectorLabels(p)).
			WithPorts(corev1ac.ServicePort().WithName(portalPortName).WithPort(80).
				WithTargetPort(intstr.FromString(portalPortName)).WithProtocol(corev1.ProtocolTCP)))
}

func buildIngress(p *billingv1alpha1.CustomerPortal, n childNames) *networkingv1ac.IngressApplyConfiguration {
	ex := p.Spec.Exposure
	spec := networkingv1ac.IngressSpec().
		WithRules(networkingv1ac.IngressRule().WithHost(ex.Host).
			WithHTTP(networkingv1ac.HTTPIngressRuleValue().WithPaths(
				networkingv1ac.HTTPIngressPath().WithPath("/").WithPathType("Prefix").
					WithBackend(networkingv1ac.IngressBackend().WithService(
						networkingv1ac.IngressServiceBackend().WithName(n.service).
							WithPort(networkingv1ac.ServiceBackendPort().WithName(portalPortName)))))))
	if ex.IngressClassName != nil {
		spec.WithIngressClassName(*ex.IngressClassName)
	}
	if ex.TLSSecretName != "" {
		spec.WithTLS(networkingv1ac.IngressTLS().WithHosts(ex.Host).WithSecretName(ex.TLSSecretName))
	}
	return networkingv1ac.Ingress(n.ingress, p.Namespace).
		WithLabels(ownedLabels(p)).
		WithOwnerReferences(ownerRef(p)).
		WithSpec(spec)
}

// buildPVC is the SQLite volume. Without the keep annotation it is owned by the portal and goes
// with it; with billing.portero.dev/keep-storage-on-delete: "true" it carries no owner reference
// and outlives the portal (the customer data survives a mistaken delete).
func buildPVC(p *billingv1alpha1.CustomerPortal, n childNames) *corev1ac.PersistentVolumeClaimApplyConfiguration {
	size := resource.MustParse("1Gi")
	var class *string
	if s := p.Spec.Storage; s != nil && s.SQLite != nil {
		if s.SQLite.Size != nil {
			size = *s.SQLite.Size
		}
		class = s.SQLite.StorageClassName
	}
	spec := corev1ac.PersistentVolumeClaimSpec().
		WithAccessModes(corev1.ReadWriteOnce).
		WithResources(corev1ac.VolumeResourceRequirements().WithRequests(corev1.ResourceList{corev1.ResourceStorage: size}))
	if class != nil {
		spec.WithStorageClassName(*class)
	}
	pvc := corev1ac.PersistentVolumeClaim(n.pvc, p.Namespace).WithLabels(ownedLabels(p)).WithSpec(spec)
	if !keepStorage(p) {
		pvc.WithOwnerReferences(ownerRef(p))
	}
	return pvc
}

func keepStorage(p *billingv1alpha1.CustomerPortal) bool {
	return p.Annotations[AnnotationKeepPVC] == "true"
}

// portalURL is where customers reach the portal: exposure.publicURL verbatim, else the Ingress host,
// else the Service's in-cluster address.
//
// With localURLs (`make run`, where portals are local processes and no Service or Ingress
// reaches them) the URL the local runner published in the LocalURLAnnotation wins.
func portalURL(p *billingv1alpha1.CustomerPortal, n childNames, localURLs bool) string {
	if u := p.Annotations[LocalURLAnnotation]; localURLs && u != "" {
		return u
	}
	if ex := p.Spec.Exposure; ex != nil {
		if ex.PublicURL != "" {
			return ex.PublicURL
		}
		if ex.Host != "" {
			if ex.TLSSecretName != "" {
				return "https://" + ex.Host + "/"
			}
			return "http://" + ex.Host + "/"
		}
	}
	return fmt.Sprintf("http://%s.%s.svc.cluster.local/", n.service, p.Namespace)
}
