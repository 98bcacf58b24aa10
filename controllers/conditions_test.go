package controllers

import (
	"testing"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
)

// TestOutcomesReadByKStatus pins what each kind of outcome means to kstatus (Flux, the
// cli-utils poller), whatever the conditions held before. kstatus reads any Ready=False without
// Stalled as InProgress — even with Reconciling absent — which is why ended sessions are reported
// Stalled: otherwise tools waiting on them would wait forever.
func TestOutcomesReadByKStatus(t *testing.T) {
	stale := []metav1.Condition{
		{Type: ConditionReady, Status: metav1.ConditionFalse, Reason: "Old", Message: "old"},
		{Type: ConditionReconciling, Status: metav1.ConditionTrue, Reason: "Old", Message: "old"},
		{Type: ConditionStalled, Status: metav1.ConditionTrue, Reason: "Old", Message: "old"},
	}
	cases := []struct {
		name  string
		o     outcome
		ready metav1.ConditionStatus
		want  status.Status
	}{
		{"ready", outcome{ready: true, reason: "LinkReady", message: "m"}, metav1.ConditionTrue, status.CurrentStatus},
		{"in progress", outcome{reason: "PortalNotFound", message: "m"}, metav1.ConditionFalse, status.InProgressStatus},
		{"stalled", outcome{stalled: true, reason: "LinkSecretConflict", message: "m"}, metav1.ConditionFalse, status.FailedStatus},
	}
	bare := []metav1.Condition{{Type: ConditionReady, Status: metav1.ConditionFalse, Reason: "Expired", Message: "m", ObservedGeneration: 3}}
	if got := kstatusOfConditions(t, bare); got != status.InProgressStatus {
		t.Errorf("Ready=False alone: kstatus %s, want InProgress (if this changed, ended sessions need not be Stalled)", got)
	}
	for _, c := range cases {
		for _, start := range [][]metav1.Condition{nil, stale} {
			conds := append([]metav1.Condition(nil), start...)
			if !applyConditions(&conds, 3, c.o) {
				t.Errorf("%s from %d conditions: reported no change", c.name, len(start))
			}
			if applyConditions(&conds, 3, c.o) {
				t.Errorf("%s: applying the same outcome twice reported a change", c.name)
			}
			r := meta.FindStatusCondition(conds, ConditionReady)
			if r == nil || r.Status != c.ready || r.Reason != c.o.reason || r.ObservedGeneration != 3 {
				t.Errorf("%s: Ready = %+v", c.name, r)
			}
			if got := kstatusOfConditions(t, conds); got != c.want {
				t.Errorf("%s from %d conditions: kstatus %s, want %s (conditions %+v)", c.name, len(start), got, c.want, conds)
			}
		}
	}
}

// kstatusOfConditions computes kstatus for a PortalSession at generation 3, observed, holding conds.
func kstatusOfConditions(t *testing.T, conds []metav1.Condition) status.Status {
	t.Helper()
	list := make([]any, 0, len(conds))
	for i := range conds {
		m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(&conds[i])
		if err != nil {
			t.Fatal(err)
		}
		list = append(list, m)
	}
	res, err := status.Compute(&unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "billing.portero.dev/v1alpha1", "kind": "PortalSession",
		"metadata": map[string]any{"name": "s", "generation": int64(3)},
		"status":   map[string]any{"observedGeneration": int64(3), "conditions": list},
	}})
	if err != nil {
		t.Fatal(err)
	}
	return res.Status
}
