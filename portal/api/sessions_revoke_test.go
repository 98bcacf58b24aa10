package api

import (
	"net/http"
	"strings"
	"testing"

	"sigs.k8s.io/controller-runtime/pkg/client"

	billingv1alpha1 "github.com/portero-dev/portero/api/v1alpha1"
	"github.com/portero-dev/portero/portal/ledger"
)

// TestPortalSessionRevokeReason: the merchant may say why it revokes a session (one line, at
// most the CRD's 256 characters), the reason lands in spec.revocationReason — written as the
// portal's ServiceAccount, under the install's admission policy — and GET and revoke show it.
// A revoked session keeps its first reason.
func TestPortalSessionRevokeReason(t *testing.T) {
	f := newFixture(t, nil)
	c := f.customer("reason@example.com")
	create := func(t *testing.T) string {
		t.Helper()
		var s sessionJSON
		f.expect(req{method: "POST", path: "/api/v1/portal_sessions", body: map[string]any{"customer_id": c.ID}}, 201, "").json(t, &s)
		return s.ID
	}
	onServer := func(t *testing.T, id string) billingv1alpha1.PortalSessionSpec {
		t.Helper()
		s := &billingv1alpha1.PortalSession{}
		if err := k8s.Get(f.ctx, client.ObjectKey{Namespace: f.ns, Name: id}, s); err != nil {
			t.Fatal(err)
		}
		return s.Spec
	}
	revoke := func(t *testing.T, id string, body any) sessionStateJSON {
		t.Helper()
		res := f.expect(req{method: "POST", path: "/api/v1/portal_sessions/" + id + "/revoke", body: body}, http.StatusOK, "")
		f.checker.validate(t, "PortalSessionState", res.body)
		var s sessionStateJSON
		res.json(t, &s)
		return s
	}

	t.Run("a bad reason is refused and revokes nothing", func(t *testing.T) {
		id := create(t)
		for _, bad := range []string{"", "   ", strings.Repeat("x", maxRevocationReason+1), "two\nlines", "a\x00b"} {
			res := f.expect(req{method: "POST", path: "/api/v1/portal_sessions/" + id + "/revoke", body: map[string]any{"reason": bad}},
				http.StatusBadRequest, ledger.CodeInvalidField)
			if e := res.err(t); e.Field != "reason" || !strings.Contains(e.Message, "reason") {
				t.Errorf("reason %q: %+v", bad, e)
			}
		}
		res := f.expect(req{method: "POST", path: "/api/v1/portal_sessions/" + id + "/revoke", body: map[string]any{"reason": "dos\nlíneas"},
			headers: map[string]string{"Accept-Language": "es"}}, http.StatusBadRequest, ledger.CodeInvalidField)
		if msg := res.err(t).Message; msg != "El motivo debe ser una sola línea de texto, sin caracteres de control." {
			t.Errorf("Spanish message = %q", msg)
		}
		f.expect(req{method: "POST", path: "/api/v1/portal_sessions/" + id + "/revoke", body: map[string]any{"reason": 5}},
			http.StatusBadRequest, "")
		if spec := onServer(t, id); spec.Revoked || spec.RevocationReason != "" {
			t.Fatalf("a refused revoke wrote %+v", spec)
		}
		var s sessionStateJSON
		f.expect(req{method: "GET", path: "/api/v1/portal_sessions/" + id}, http.StatusOK, "").json(t, &s)
		if s.Revoked || s.RevocationReason != "" {
			t.Fatalf("GET: %+v", s)
		}
	})

	t.Run("the reason given is kept and shown, and the first one stays", func(t *testing.T) {
		id := create(t)
		got := revoke(t, id, map[string]any{"reason": "  Customer asked to close access "})
		if !got.Revoked || got.Phase != sessionPhaseRevoked || got.RevocationReason != "Customer asked to close access" {
			t.Fatalf("revoke answered %+v", got)
		}
		if spec := onServer(t, id); !spec.Revoked || spec.RevocationReason != "Customer asked to close access" {
			t.Fatalf("on the API server: %+v", spec)
		}
		res := f.expect(req{method: "GET", path: "/api/v1/portal_sessions/" + id}, http.StatusOK, "")
		f.checker.validate(t, "PortalSessionState", res.body)
		if !strings.Contains(string(res.body), `"revocation_reason":"Customer asked to close access"`) {
			t.Fatalf("GET: %s", res.body)
		}
		if again := revoke(t, id, map[string]any{"reason": "another reason"}); again.RevocationReason != "Customer asked to close access" {
			t.Fatalf("a second revoke answered %+v", again)
		}
		if spec := onServer(t, id); spec.RevocationReason != "Customer asked to close access" {
			t.Fatalf("a second revoke changed the reason: %+v", spec)
		}
	})

	t.Run("the bound is the CRD's, in characters", func(t *testing.T) {
		id := create(t)
		long := strings.Repeat("ñ", maxRevocationReason) // 512 bytes
		if got := revoke(t, id, map[string]any{"reason": long}); got.RevocationReason != long {
			t.Fatalf("revoke answered %q", got.RevocationReason)
		}
	})

	t.Run("without a body, the default reason", func(t *testing.T) {
		id := create(t)
		if got := revoke(t, id, nil); !got.Revoked || got.RevocationReason != defaultRevocationReason {
			t.Fatalf("revoke answered %+v", got)
		}
		if spec := onServer(t, id); spec.RevocationReason != "revoked by the merchant API" {
			t.Fatalf("on the API server: %+v", spec)
		}
		// An empty JSON object is no reason either.
		id = create(t)
		if got := revoke(t, id, map[string]any{}); got.RevocationReason != defaultRevocationReason {
			t.Fatalf("revoke with {} answered %+v", got)
		}
	})
}
