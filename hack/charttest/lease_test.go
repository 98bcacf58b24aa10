package charttest

import (
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// TestReleasesInOneNamespaceHaveTheirOwnLease: two releases in one namespace (two teams'
// namespaced installs, say) would otherwise elect one leader between them, and the other's
// namespaces would go unserved. Release "portero" keeps make deploy's Lease.
func TestReleasesInOneNamespaceHaveTheirOwnLease(t *testing.T) {
	leaseOf := func(releaseName, values string) string {
		t.Helper()
		r, err := renderChart(releaseName, "billing", values)
		if err != nil {
			t.Fatalf("render release %s: %v", releaseName, err)
		}
		for _, o := range r.objs {
			if o.GetKind() != "Deployment" {
				continue
			}
			cs, _, _ := unstructured.NestedSlice(o.Object, "spec", "template", "spec", "containers")
			args, _, _ := unstructured.NestedStringSlice(cs[0].(map[string]any), "args")
			id := "portero-operator.billing.portero.dev" // the manager's default
			for _, a := range args {
				if v, ok := strings.CutPrefix(a, "--leader-election-id="); ok {
					id = v
				}
			}
			return id
		}
		t.Fatalf("release %s renders no Deployment", releaseName)
		return ""
	}
	if got := leaseOf("portero", ""); got != "portero-operator.billing.portero.dev" {
		t.Errorf("release portero uses Lease %q, not make deploy's", got)
	}
	a := leaseOf("team-a", "watchNamespaces: [shop]")
	b := leaseOf("team-b", "watchNamespaces: [stock]")
	if a == b || a == "portero-operator.billing.portero.dev" {
		t.Errorf("releases team-a and team-b use Leases %q and %q", a, b)
	}
	if got := leaseOf("team-a", "fullnameOverride: acme-billing"); got != "acme-billing.billing.portero.dev" {
		t.Errorf("with fullnameOverride the Lease is %q", got)
	}
}
