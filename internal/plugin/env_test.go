package plugin

// Test environment: a real kube-apiserver and etcd (internal/testenv) with the operator's two
// reconcilers running as cmd/manager runs them, and Mailpit for the link e-mails. Commands run in
// process — a cobra command with buffers for its streams — against a kubeconfig made from the
// control plane's REST config, passed with --kubeconfig as a person would.

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/go-logr/logr"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/manager"

	billingv1alpha1 "github.com/portero-dev/portero/api/v1alpha1"
	"github.com/portero-dev/portero/controllers"
	"github.com/portero-dev/portero/internal/testenv"
)

var (
	env        *testenv.Env
	k8s        client.Client // admin: fixtures, and checking what the commands wrote
	kubeconfig string        // the control plane as context "envtest", its current context
)

func TestMain(m *testing.M) {
	ctrllog.SetLogger(logr.Discard())
	os.Exit(testMain(m))
}

func testMain(m *testing.M) int {
	var err error
	if env, err = testenv.Start(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer func() { _ = env.Stop() }()
	if k8s, err = client.New(env.Config, client.Options{Scheme: env.Scheme}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	dir, err := os.MkdirTemp("", "kubectl-portero-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	kubeconfig = filepath.Join(dir, "kubeconfig")
	if err := writeKubeconfig(kubeconfig, env.Config, "envtest"); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	_, stop, err := testenv.StartManager(env.Config, controllers.ManagerOptions(env.Scheme, true), func(m manager.Manager) error {
		if err := (&controllers.CustomerPortalReconciler{PortalImage: "portero:test", Client: m.GetClient(),
			APIReader: m.GetAPIReader(), Scheme: m.GetScheme(), Recorder: m.GetEventRecorder("customerportal")}).SetupWithManager(m); err != nil {
			return err
		}
		// No Mailer: the link e-mails go through the portal's SMTP Secret, to Mailpit.
		return (&controllers.PortalSessionReconciler{}).SetupWithManager(m)
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer func() { _ = stop() }()
	return m.Run()
}

// writeKubeconfig writes cfg as a kubeconfig whose current context is current. Besides the
// context "envtest" it holds "nowhere", a cluster that does not answer, for --context tests.
func writeKubeconfig(path string, cfg *rest.Config, current string) error {
	kc := clientcmdapi.NewConfig()
	kc.Clusters["envtest"] = &clientcmdapi.Cluster{Server: cfg.Host, CertificateAuthorityData: cfg.CAData}
	kc.AuthInfos["admin"] = &clientcmdapi.AuthInfo{ClientCertificateData: cfg.CertData, ClientKeyData: cfg.KeyData, Token: cfg.BearerToken}
	kc.Contexts["envtest"] = &clientcmdapi.Context{Cluster: "envtest", AuthInfo: "admin"}
	kc.Clusters["nowhere"] = &clientcmdapi.Cluster{Server: "https://127.0.0.1:1", CertificateAuthorityData: cfg.CAData}
	kc.Contexts["nowhere"] = &clientcmdapi.Context{Cluster: "nowhere", AuthInfo: "admin"}
	kc.CurrentContext = current
	return clientcmd.WriteToFile(*kc, path)
}

// result is one command's outcome.
type result struct {
	out, errOut string
	err         error
}

// kubectlPortero runs `kubectl portero args...` in process against the test control plane in
// namespace ns (unless args choose otherwise), with now as its clock (nil: time.Now).
func kubectlPortero(t *testing.T, ns string, now func() time.Time, args ...string) result {
	t.Helper()
	streams, _, out, errOut := genericiooptions.NewTestIOStreams()
	cmd := NewCommand(Options{IOStreams: streams, Flags: genericclioptions.NewConfigFlags(true), Now: now})
	full := append([]string{"--kubeconfig", kubeconfig}, args...)
	if ns != "" {
		full = append(full, "-n", ns)
	}
	cmd.SetArgs(full)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	err := cmd.ExecuteContext(ctx)
	return result{out: out.String(), errOut: errOut.String(), err: err}
}

// mustRun is kubectlPortero for a command that must succeed.
func mustRun(t *testing.T, ns string, args ...string) result {
	t.Helper()
	r := kubectlPortero(t, ns, nil, args...)
	if r.err != nil {
		t.Fatalf("kubectl portero %v: %v\nstderr: %s", args, r.err, r.errOut)
	}
	return r
}

const testPortalURL = "https://billing.acme.example/"

// portalFixture is one test's namespace with a CustomerPortal "acme" published at testPortalURL,
// e-mailing through Mailpit when mp is set.
type portalFixture struct {
	ns     string
	portal *billingv1alpha1.CustomerPortal
}

func newPortal(t *testing.T, mp *testenv.Mailpit, mutate func(*billingv1alpha1.CustomerPortal)) portalFixture {
	t.Helper()
	ctx := context.Background()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "plugin-"}}
	if err := k8s.Create(ctx, ns); err != nil {
		t.Fatal(err)
	}
	// Without Mailpit the portal has no e-mail at all, so its public login (which e-mails codes)
	// is off: session links are its only way in.
	p := &billingv1alpha1.CustomerPortal{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns.Name, Name: "acme"},
		Spec: billingv1alpha1.CustomerPortalSpec{
			DisplayName: "Acme Billing",
			Exposure:    &billingv1alpha1.Exposure{PublicURL: testPortalURL},
			Access:      billingv1alpha1.Access{Public: billingv1alpha1.PublicAccess{Enabled: ptr.To(false)}},
		},
	}
	if mp != nil {
		smtp := &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns.Name, Name: "smtp"},
			StringData: map[string]string{"host": mp.SMTPHost, "port": strconv.Itoa(mp.SMTPPort), "tls": "none"},
		}
		if err := k8s.Create(ctx, smtp); err != nil {
			t.Fatal(err)
		}
		p.Spec.Email = &billingv1alpha1.Email{SMTPSecretRef: billingv1alpha1.LocalObjectReference{Name: "smtp"}, From: "Acme <billing@acme.example>"}
		p.Spec.Access.Public.Enabled = nil
	}
	if mutate != nil {
		mutate(p)
	}
	if err := k8s.Create(ctx, p); err != nil {
		t.Fatal(err)
	}
	return portalFixture{ns: ns.Name, portal: p}
}

// sessions lists the PortalSessions of the fixture's namespace.
func (f portalFixture) sessions(t *testing.T) []billingv1alpha1.PortalSession {
	t.Helper()
	var list billingv1alpha1.PortalSessionList
	if err := k8s.List(context.Background(), &list, client.InNamespace(f.ns)); err != nil {
		t.Fatal(err)
	}
	return list.Items
}

// onlySession is the one PortalSession in the fixture's namespace.
func (f portalFixture) onlySession(t *testing.T) *billingv1alpha1.PortalSession {
	t.Helper()
	items := f.sessions(t)
	if len(items) != 1 {
		t.Fatalf("want exactly one PortalSession in %s, got %d", f.ns, len(items))
	}
	return &items[0]
}

// makeAvailable plays the kubelet and the Deployment controller for the portal's Deployment,
// which envtest lacks, so that the portal can turn Ready.
func (f portalFixture) makeAvailable(t *testing.T) {
	t.Helper()
	eventually(t, "portal Deployment reported available", func() error {
		d := &appsv1.Deployment{}
		if err := k8s.Get(context.Background(), client.ObjectKey{Namespace: f.ns, Name: f.portal.Name + "-portal"}, d); err != nil {
			return err
		}
		n := *d.Spec.Replicas
		d.Status = appsv1.DeploymentStatus{
			ObservedGeneration: d.Generation, Replicas: n, UpdatedReplicas: n, ReadyReplicas: n, AvailableReplicas: n,
			Conditions: []appsv1.DeploymentCondition{{Type: appsv1.DeploymentAvailable, Status: corev1.ConditionTrue,
				Reason: "MinimumReplicasAvailable", LastUpdateTime: metav1.Now(), LastTransitionTime: metav1.Now()}},
		}
		return k8s.Status().Update(context.Background(), d)
	})
}

// eventually polls f until it returns nil or 30 s pass; it never sleeps for timing, only
// between polls.
func eventually(t *testing.T, what string, f func() error) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	var err error
	for time.Now().Before(deadline) {
		if err = f(); err == nil {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s: still not true after 30s: %v", what, err)
}

// lines splits s into its non-empty lines.
func lines(s string) []string {
	var out []string
	for _, l := range bytes.Split([]byte(s), []byte("\n")) {
		if len(bytes.TrimSpace(l)) > 0 {
			out = append(out, string(l))
		}
	}
	return out
}
