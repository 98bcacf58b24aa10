package plugin

import (
	"strings"
	"testing"

	billingv1alpha1 "github.com/portero-dev/portero/api/v1alpha1"
)

// --flow update_subscription deep-links the plan change of one subscription, which it needs.
func TestShareFlowUpdateSubscription(t *testing.T) {
	so := &shareOptions{flow: "update_subscription", subscriptionID: "sub_4"}
	f, err := so.buildFlow()
	if err != nil || f == nil || f.Type != billingv1alpha1.FlowUpdateSubscription || f.SubscriptionID != "sub_4" {
		t.Fatalf("buildFlow = %+v, %v", f, err)
	}
	so.subscriptionID = ""
	if _, err := so.buildFlow(); err == nil || !strings.Contains(err.Error(), "--flow update_subscription needs --subscription ID") {
		t.Fatalf("without --subscription: %v", err)
	}
	so = &shareOptions{flow: "update_subscription", subscriptionID: "sub_4", paymentID: "pay_1"}
	if _, err := so.buildFlow(); err == nil || !strings.Contains(err.Error(), "only used with --flow complete_payment") {
		t.Fatalf("with --payment: %v", err)
	}
}
