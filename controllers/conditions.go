package controllers

import (
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Condition types, following the kstatus contract: Ready is the summary; Reconciling is present
// (True) only while work is in flight; Stalled is present (True) only when progress needs a human.
const (
	ConditionReady       = "Ready"
	ConditionReconciling = "Reconciling"
	ConditionStalled     = "Stalled"
)

// outcome is what one reconcile concluded; toConditions turns it into the kstatus conditions.
// It is the one place that decides Ready, Reconciling and Stalled, as in Flux's reconcile package.
type outcome struct {
	// ready reports the object fully reconciled and serving.
	ready bool
	// stalled reports an error only a person can fix (a missing Secret, a taken host, a bad reference).
	stalled bool
	// reason is a CamelCase reason; message a sentence a person understands.
	reason, message string
}

// applyConditions writes the outcome into conds for generation gen. It returns true if anything changed.
func applyConditions(conds *[]metav1.Condition, gen int64, o outcome) bool {
	before := append([]metav1.Condition(nil), *conds...)
	switch {
	case o.ready:
		meta.SetStatusCondition(conds, metav1.Condition{Type: ConditionReady, Status: metav1.ConditionTrue, Reason: o.reason, Message: o.message, ObservedGeneration: gen})
		meta.RemoveStatusCondition(conds, ConditionReconciling)
		meta.RemoveStatusCondition(conds, ConditionStalled)
	case o.stalled:
		meta.SetStatusCondition(conds, metav1.Condition{Type: ConditionReady, Status: metav1.ConditionFalse, Reason: o.reason, Message: o.message, ObservedGeneration: gen})
		meta.SetStatusCondition(conds, metav1.Condition{Type: ConditionStalled, Status: metav1.ConditionTrue, Reason: o.reason, Message: o.message, ObservedGeneration: gen})
		meta.RemoveStatusCondition(conds, ConditionReconciling)
	default:
		meta.SetStatusCondition(conds, metav1.Condition{Type: ConditionReady, Status: metav1.ConditionFalse, Reason: o.reason, Message: o.message, ObservedGeneration: gen})
		meta.SetStatusCondition(conds, metav1.Condition{Type: ConditionReconciling, Status: metav1.ConditionTrue, Reason: o.reason, Message: o.message, ObservedGeneration: gen})
		meta.RemoveStatusCondition(conds, ConditionStalled)
	}
	return !equality.Semantic.DeepEqual(before, *conds)
}
