package api

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	billingv1alpha1 "github.com/portero-dev/portero/api/v1alpha1"
	"github.com/portero-dev/portero/controllers"
)

// TestCreatePortalSession runs the whole path: the API creates a PortalSession as the portal's
// ServiceAccount, the real operator mints the link and grants the portal access to its Secret,
// and the API returns the link.
func TestCreatePortalSession(t *testing.T) {
	f := newFixture(t, nil)
	email := "session@" + f.ns + ".example" // Mailpit keeps earlier runs' mail under -count=N
	c := f.customer(email)
	p := f.pay(c.ID, 5000) // incomplete: the flow deep-links to it
	before := time.Now()

	var s sessionJSON
	f.expect(req{method: "POST", path: "/api/v1/portal_sessions", body: map[string]any{
		"customer_id": c.ID, "ttl": "30m", "return_url": "https://acme.example/account",
		"flow": map[string]any{"type": "complete_payment", "payment_id": p.ID}, "deliver_by_email": true,
	}}, 201, "").json(t, &s)

	obj := &billingv1alpha1.PortalSession{}
	if err := k8s.Get(f.ctx, client.ObjectKey{Namespace: f.ns, Name: s.ID}, obj); err != nil {
		t.Fatal(err)
	}
	sec := &corev1.Secret{}
	if err := k8s.Get(f.ctx, client.ObjectKey{Namespace: f.ns, Name: obj.Status.LinkSecretName}, sec); err != nil {
		t.Fatal(err)
	}
	token := string(sec.Data["token"])
	if len(token) < 32 || !strings.Contains(s.URL, "/s/") || !strings.HasSuffix(s.URL, "/s/"+token) || !strings.HasPrefix(s.URL, strings.TrimSuffix(portalURL, "/")) {
		t.Fatalf("url %q does not carry the link Secret's token", s.URL)
	}
	if d := s.ExpiresAt.Sub(before); d < 29*time.Minute || d > 31*time.Minute {
		t.Errorf("expires_at %s is not 30m from now", s.ExpiresAt)
	}
	if s.CustomerID != c.ID || s.Flow == nil || s.Flow.PaymentID != p.ID || !s.DeliverByEmail {
		t.Errorf("response: %+v", s)
	}
	want := billingv1alpha1.PortalSessionSpec{
		PortalRef: billingv1alpha1.PortalReference{Name: portalName},
		Customer:  billingv1alpha1.CustomerReference{ID: c.ID},
		TTL:       obj.Spec.TTL, ReturnURL: "https://acme.example/account",
		Flow:                   &billingv1alpha1.Flow{Type: billingv1alpha1.FlowCompletePayment, PaymentID: p.ID},
		Delivery:               &billingv1alpha1.Delivery{Email: true},
		TTLSecondsAfterExpired: ptr.To[int64](sessionRetention),
		// Not set by the API: the CRD schema's default, filled in by the API server.
		AfterExpiration: billingv1alpha1.AfterExpiration{Recovery: billingv1alpha1.RecoveryLogin},
	}
	if obj.Spec.TTL == nil || obj.Spec.TTL.Duration != 30*time.Minute || !equality.Semantic.DeepEqual(obj.Spec, want) {
		t.Errorf("spec = %+v", obj.Spec)
	}
	if obj.Labels[labelCreatedBy] != createdByPortal || obj.Labels[labelPortal] != portalName ||
		obj.Annotations[annotationCustomerEmail] != email {
		t.Errorf("labels %v annotations %v", obj.Labels, obj.Annotations)
	}
	eventually(t, "link e-mailed to the customer", func() error {
		msgs := mailer.to(email)
		if len(msgs) != 1 || !strings.Contains(msgs[0].Text, s.URL) {
			return fmt.Errorf("messages: %d", len(msgs))
		}
		return nil
	})
	if strings.Contains(f.logs.String(), token) {
		t.Error("the link token was logged")
	}

	t.Run("by e-mail address, with the portal's default ttl", func(t *testing.T) {
		var s2 sessionJSON
		f.expect(req{method: "POST", path: "/api/v1/portal_sessions", body: map[string]any{"customer_email": strings.ToUpper(email)}}, 201, "").json(t, &s2)
		if s2.CustomerEmail != email || !strings.Contains(s2.URL, "/s/") {
			t.Fatalf("response: %+v", s2)
		}
		if d := time.Until(s2.ExpiresAt); d < 55*time.Minute || d > 61*time.Minute {
			t.Errorf("expires_at %s is not the portal's defaultTTL (1h) from now", s2.ExpiresAt)
		}
	})

	t.Run("refusals create nothing", func(t *testing.T) {
		other := f.customer("other@example.com")
		otherPay := f.pay(other.ID, 100)
		for _, tc := range []struct {
			name        string
			body        map[string]any
			status      int
			code, field string
			message     string
		}{
			{"ttl above the portal's maxTTL", map[string]any{"customer_id": c.ID, "ttl": "48h"}, 400, CodeTTLExceedsPortalMaximum, "ttl", "at most 24h0m0s"},
			{"ttl below the CRD's minimum", map[string]any{"customer_id": c.ID, "ttl": "10s"}, 400, "invalid_field", "ttl", "ttl must be between 30s and 168h"},
			{"ttl not a duration", map[string]any{"customer_id": c.ID, "ttl": "thirty minutes"}, 400, "invalid_field", "ttl", ""},
			{"return_url not https", map[string]any{"customer_id": c.ID, "return_url": "http://acme.example/"}, 400, "invalid_field", "return_url", "https://"},
			{"no customer", map[string]any{"ttl": "1h"}, 400, "invalid_field", "customer_id", ""},
			{"both customer forms", map[string]any{"customer_id": c.ID, "customer_email": email}, 400, "invalid_field", "customer_id", ""},
			{"unknown customer", map[string]any{"customer_id": "cus_missing"}, 404, "not_found", "customer_id", ""},
			{"unknown e-mail", map[string]any{"customer_email": "nobody@example.com"}, 404, "not_found", "customer_email", ""},
			{"another customer's payment", map[string]any{"customer_id": c.ID, "flow": map[string]any{"type": "complete_payment", "payment_id": otherPay.ID}}, 404, "not_found", "flow.payment_id", ""},
			{"flow without its payment", map[string]any{"customer_id": c.ID, "flow": map[string]any{"type": "complete_payment"}}, 400, "required", "flow.payment_id", ""},
			{"unknown flow", map[string]any{"customer_id": c.ID, "flow": map[string]any{"type": "pay_everything"}}, 400, "invalid_field", "flow.type", ""},
			{"unknown field", map[string]any{"customer_id": c.ID, "expires_in": 60}, 400, CodeUnknownField, "expires_in", ""},
		} {
			res := f.do(req{method: "POST", path: "/api/v1/portal_sessions", body: tc.body})
			e := res.err(t)
			if res.status != tc.status || e.Code != tc.code || e.Field != tc.field || !strings.Contains(e.Message, tc.message) {
				t.Errorf("%s: %d %s, want %d %s (%s) %q", tc.name, res.status, res.body, tc.status, tc.code, tc.field, tc.message)
			}
		}
		list := &billingv1alpha1.PortalSessionList{}
		if err := k8s.List(f.ctx, list, client.InNamespace(f.ns)); err != nil {
			t.Fatal(err)
		}
		if len(list.Items) != 2 {
			t.Fatalf("%d sessions exist, want the 2 created above", len(list.Items))
		}
	})
}

// TestPortalSessionNotReadyIsWithdrawn: a link not made in time is answered 503 and its session
// revoked, so no link works after the merchant was told it failed; with delivery asked for, the
// answer warns that the link may have been e-mailed, and the session's delivery says whether.
func TestPortalSessionNotReadyIsWithdrawn(t *testing.T) {
	f := newFixture(t, nil)
	c := f.customer("slow@example.com")
	f.api.sessionWait = time.Millisecond // far less than the operator needs
	res := f.expect(req{method: "POST", path: "/api/v1/portal_sessions", body: map[string]any{"customer_id": c.ID, "deliver_by_email": true}},
		http.StatusServiceUnavailable, CodeSessionNotReady)
	var withdrawn billingv1alpha1.PortalSession
	eventually(t, "withdrawn session revoked", func() error {
		list := &billingv1alpha1.PortalSessionList{}
		if err := k8s.List(f.ctx, list, client.InNamespace(f.ns)); err != nil {
			return err
		}
		if len(list.Items) != 1 || !list.Items[0].Spec.Revoked || list.Items[0].Status.Phase != billingv1alpha1.SessionRevoked {
			return fmt.Errorf("sessions: %+v", list.Items)
		}
		withdrawn = list.Items[0]
		return nil
	})
	// The withdrawal races the operator: an operator quicker than the API's patch (it waited 1 ms
	// here) may have e-mailed the link already — whose link the revocation then closes. What
	// must hold either way: at most one e-mail, and none the session does not account for.
	// The operator records Sending before it sends, so a read after counting the e-mails sees it.
	n := len(mailer.to("slow@example.com"))
	if err := k8s.Get(f.ctx, client.ObjectKeyFromObject(&withdrawn), &withdrawn); err != nil {
		t.Fatal(err)
	}
	delivered := meta.FindStatusCondition(withdrawn.Status.Conditions, controllers.ConditionDelivered)
	accounted := delivered != nil && (delivered.Reason == controllers.DeliveryReasonSending ||
		delivered.Reason == controllers.DeliveryReasonSent || delivered.Reason == controllers.DeliveryReasonInterrupted)
	switch {
	case n > 1:
		t.Errorf("%d e-mails sent for one withdrawn session", n)
	case n == 1 && !accounted:
		t.Errorf("an e-mail went out that the session does not record: Delivered = %+v", delivered)
	}

	// The answer warns that the link may have been e-mailed, and where to look.
	if msg := res.err(t).Message; !strings.Contains(msg, "may already have been e-mailed") ||
		!strings.Contains(msg, "GET /api/v1/portal_sessions/"+withdrawn.Name) || !strings.Contains(msg, "revoked") {
		t.Errorf("message does not warn about the e-mail: %q", msg)
	}
	// And there the delivery, once settled, agrees with the mailbox. The state is read before the
	// e-mails are counted: the operator records Sent only after sending.
	var got sessionStateJSON
	eventually(t, "withdrawn session's delivery settled", func() error {
		f.expect(req{method: "GET", path: "/api/v1/portal_sessions/" + withdrawn.Name}, 200, "").json(t, &got)
		if got.Phase != "revoked" || !got.Revoked || got.Delivery == nil ||
			(got.Delivery.State != "sent" && got.Delivery.State != "not_sent" && got.Delivery.State != "unknown") {
			return fmt.Errorf("session: %+v %+v", got, got.Delivery)
		}
		return nil
	})
	n = len(mailer.to("slow@example.com"))
	if (got.Delivery.State == "sent" && n != 1) || (got.Delivery.State == "not_sent" && n != 0) {
		t.Errorf("delivery %q, but %d e-mails sent", got.Delivery.State, n)
	}

	// Without deliver_by_email nothing can have been e-mailed, and the answer does not say so.
	res = f.expect(req{method: "POST", path: "/api/v1/portal_sessions", body: map[string]any{"customer_id": c.ID},
		headers: map[string]string{"Accept-Language": "es"}}, http.StatusServiceUnavailable, CodeSessionNotReady)
	if msg := res.err(t).Message; strings.Contains(msg, "por e-mail") || !strings.Contains(msg, "se revocó: intentá de nuevo") {
		t.Errorf("message without delivery: %q", msg)
	}
}

// TestPortalSessionReadAndRevoke: the merchant reads and revokes its portal's sessions, never
// another portal's, and never sees a link again after creating it.
func TestPortalSessionReadAndRevoke(t *testing.T) {
	f := newFixture(t, nil)
	c := f.customer("read@example.com")
	var created sessionJSON
	f.expect(req{method: "POST", path: "/api/v1/portal_sessions", body: map[string]any{
		"customer_id": c.ID, "flow": map[string]any{"type": "update_payment_method"}, "deliver_by_email": true,
	}}, 201, "").json(t, &created)
	path := "/api/v1/portal_sessions/" + created.ID

	var got sessionStateJSON
	eventually(t, "link e-mailed", func() error {
		res := f.expect(req{method: "GET", path: path}, 200, "")
		f.checker.validate(t, "PortalSessionState", res.body)
		if strings.Contains(string(res.body), created.URL) || strings.Contains(string(res.body), `"url"`) {
			t.Fatalf("GET gives the link out again: %s", res.body)
		}
		res.json(t, &got)
		if got.Delivery == nil || got.Delivery.State != "sent" {
			return fmt.Errorf("delivery %+v", got.Delivery)
		}
		return nil
	})
	if got.ID != created.ID || got.Phase != "active" || got.Revoked || got.ExpiresAt == nil || !got.ExpiresAt.Equal(created.ExpiresAt) ||
		got.CustomerID != c.ID || got.Flow == nil || got.Flow.Type != "update_payment_method" || !got.DeliverByEmail ||
		got.Delivery.Reason != controllers.DeliveryReasonSent || time.Since(got.CreatedAt) > time.Minute {
		t.Errorf("session: %+v", got)
	}

	t.Run("another portal's session answers exactly like a missing one", func(t *testing.T) {
		theirs := &billingv1alpha1.PortalSession{
			ObjectMeta: metav1.ObjectMeta{Namespace: f.ns, Name: "other-portals-session"},
			Spec: billingv1alpha1.PortalSessionSpec{
				PortalRef: billingv1alpha1.PortalReference{Name: "other"},
				Customer:  billingv1alpha1.CustomerReference{ID: c.ID},
			},
		}
		if err := k8s.Create(f.ctx, theirs); err != nil {
			t.Fatal(err)
		}
		missing := f.expect(req{method: "GET", path: "/api/v1/portal_sessions/api-0000000000000000000"}, 404, "not_found")
		for _, r := range []req{
			{method: "GET", path: "/api/v1/portal_sessions/" + theirs.Name},
			{method: "POST", path: "/api/v1/portal_sessions/" + theirs.Name + "/revoke"},
			{method: "POST", path: "/api/v1/portal_sessions/api-0000000000000000000/revoke"},
			{method: "GET", path: "/api/v1/portal_sessions/Not_A_Name"},
		} {
			res := f.expect(r, 404, "not_found")
			if string(res.body) != string(missing.body) {
				t.Errorf("%s %s: %s, unlike a missing session's %s", r.method, r.path, res.body, missing.body)
			}
		}
		if err := k8s.Get(f.ctx, client.ObjectKeyFromObject(theirs), theirs); err != nil || theirs.Spec.Revoked {
			t.Fatalf("another portal's session was revoked: %v %v", theirs.Spec.Revoked, err)
		}
		res := f.expect(req{method: "GET", path: "/api/v1/portal_sessions/" + theirs.Name, headers: map[string]string{"Accept-Language": "es"}}, 404, "not_found")
		if msg := res.err(t).Message; msg != "Este portal no tiene ninguna sesión de portal con este id." {
			t.Errorf("Spanish message = %q", msg)
		}
	})

	t.Run("a session made with kubectl for this portal is this portal's", func(t *testing.T) {
		ours := &billingv1alpha1.PortalSession{
			ObjectMeta: metav1.ObjectMeta{Namespace: f.ns, Name: "made-with-kubectl"},
			Spec: billingv1alpha1.PortalSessionSpec{
				PortalRef: billingv1alpha1.PortalReference{Name: portalName},
				Customer:  billingv1alpha1.CustomerReference{Email: "read@example.com"},
			},
		}
		if err := k8s.Create(f.ctx, ours); err != nil {
			t.Fatal(err)
		}
		var s sessionStateJSON
		f.expect(req{method: "GET", path: "/api/v1/portal_sessions/" + ours.Name}, 200, "").json(t, &s)
		if s.ID != ours.Name || s.CustomerEmail != "read@example.com" || s.DeliverByEmail || s.Delivery != nil ||
			(s.Phase != "pending" && s.Phase != "active") {
			t.Errorf("session: %+v", s)
		}
	})

	t.Run("revoke, twice", func(t *testing.T) {
		var revoked, again, read sessionStateJSON
		res := f.expect(req{method: "POST", path: path + "/revoke"}, 200, "")
		f.checker.validate(t, "PortalSessionState", res.body)
		res.json(t, &revoked)
		if !revoked.Revoked || revoked.Phase != "revoked" || revoked.ID != created.ID {
			t.Fatalf("revoke answered %+v", revoked)
		}
		// Read at once, it is revoked: GET reads the API server, not a lagging cache.
		f.expect(req{method: "GET", path: path}, 200, "").json(t, &read)
		if !read.Revoked || read.Phase != "revoked" {
			t.Fatalf("GET after revoke: %+v", read)
		}
		obj := &billingv1alpha1.PortalSession{}
		eventually(t, "operator ended the session", func() error {
			if err := k8s.Get(f.ctx, client.ObjectKey{Namespace: f.ns, Name: created.ID}, obj); err != nil {
				return err
			}
			if !obj.Spec.Revoked || obj.Status.Phase != billingv1alpha1.SessionRevoked {
				return fmt.Errorf("revoked %v, phase %q", obj.Spec.Revoked, obj.Status.Phase)
			}
			return nil
		})
		f.expect(req{method: "POST", path: path + "/revoke", body: map[string]any{}}, 200, "").json(t, &again)
		if !again.Revoked || again.Phase != "revoked" || again.ID != created.ID {
			t.Fatalf("second revoke answered %+v", again)
		}
		f.expect(req{method: "POST", path: path + "/revoke", body: map[string]any{"now": true}}, 400, CodeUnknownField)
	})
}

// TestPortalSessionRefusedByOperator: a session the operator stalls (here one asking for more
// than the portal's maxTTL, created behind the API's back) is reported with the operator's reason.
func TestPortalSessionRefusedByOperator(t *testing.T) {
	f := newFixture(t, nil)
	s := &billingv1alpha1.PortalSession{
		ObjectMeta: metav1.ObjectMeta{Namespace: f.ns, Name: "too-long"},
		Spec: billingv1alpha1.PortalSessionSpec{
			PortalRef: billingv1alpha1.PortalReference{Name: portalName},
			Customer:  billingv1alpha1.CustomerReference{ID: "cus_x"},
			TTL:       &metav1.Duration{Duration: 48 * time.Hour},
		},
	}
	if err := k8s.Create(f.ctx, s); err != nil {
		t.Fatal(err)
	}
	_, e := f.api.awaitLink(f.ctx, s)
	if e == nil || e.status != http.StatusUnprocessableEntity || e.code != CodeSessionRefused || !strings.Contains(e.message("en"), "maxTTL") {
		t.Fatalf("got %+v", e)
	}
}
