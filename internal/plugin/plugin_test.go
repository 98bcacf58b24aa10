package plugin

import (
	"context"
	"image"
	"image/color"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/makiuchi-d/gozxing"
	zxingqr "github.com/makiuchi-d/gozxing/qrcode"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"sigs.k8s.io/controller-runtime/pkg/client"

	billingv1alpha1 "github.com/portero-dev/portero/api/v1alpha1"
	"github.com/portero-dev/portero/controllers"
	"github.com/portero-dev/portero/internal/testenv"
)

// checkLink asserts that link is the session's link: the portal's URL, /s/, and a token whose
// SHA-256 is the session's status.tokenHash — what the portal checks when the link is opened.
func checkLink(t *testing.T, link string, s *billingv1alpha1.PortalSession) {
	t.Helper()
	token, ok := strings.CutPrefix(link, testPortalURL+"s/")
	if !ok {
		t.Fatalf("link %q is not under %ss/", link, testPortalURL)
	}
	if len(token) != controllers.TokenLength {
		t.Fatalf("link token has %d characters, want %d", len(token), controllers.TokenLength)
	}
	if !controllers.TokenMatches(token, s.Status.TokenHash) {
		t.Fatalf("the link's token does not hash to PortalSession %s's status.tokenHash", s.Name)
	}
}

func TestShareByIDPrintsTheSessionsLink(t *testing.T) {
	f := newPortal(t, nil, nil)
	r := mustRun(t, f.ns, "share", "cus_123", "--portal", "acme", "--ttl", "45m",
		"--flow", "complete_payment", "--payment", "pay_9", "--return-url", "https://acme.example/back")

	out := lines(r.out)
	if len(out) != 1 {
		t.Fatalf("stdout should be the link alone (for $(kubectl portero share …)), got %q", r.out)
	}
	s := f.onlySession(t)
	checkLink(t, out[0], s)
	if s.Status.Phase != billingv1alpha1.SessionActive {
		t.Errorf("phase %q, want Active", s.Status.Phase)
	}
	if !strings.HasPrefix(s.Name, "acme-") || s.GenerateName != "acme-" {
		t.Errorf("session name %q (generateName %q): want one generated from the portal's name", s.Name, s.GenerateName)
	}
	if s.Labels[labelCreatedBy] != "kubectl-portero" || s.Labels[labelPortal] != "acme" {
		t.Errorf("labels %v: want created-by kubectl-portero and the portal", s.Labels)
	}
	want := billingv1alpha1.PortalSessionSpec{
		PortalRef: billingv1alpha1.PortalReference{Name: "acme"},
		Customer:  billingv1alpha1.CustomerReference{ID: "cus_123"},
		TTL:       &metav1.Duration{Duration: 45 * time.Minute},
		ReturnURL: "https://acme.example/back",
		Flow:      &billingv1alpha1.Flow{Type: billingv1alpha1.FlowCompletePayment, PaymentID: "pay_9"},
	}
	if s.Spec.PortalRef != want.PortalRef || s.Spec.Customer != want.Customer || s.Spec.TTL.Duration != want.TTL.Duration ||
		s.Spec.ReturnURL != want.ReturnURL || *s.Spec.Flow != *want.Flow || s.Spec.Delivery != nil || s.Spec.Revoked {
		t.Errorf("spec %+v, want %+v", s.Spec, want)
	}
	if !strings.Contains(r.errOut, "kubectl portero revoke "+s.Name+" -n "+f.ns) {
		t.Errorf("stderr should say how to end the link; got %q", r.errOut)
	}
	if strings.Contains(r.errOut, out[0]) {
		t.Error("the link must appear once, on stdout")
	}
}

func TestShareByEmailPrintsAndEmailsTheLink(t *testing.T) {
	mp := testenv.StartMailpit(t, testenv.MailpitOptions{})
	f := newPortal(t, mp, nil)
	r := mustRun(t, f.ns, "share", "Jane.Doe@Example.com", "--portal", "acme", "--email")

	s := f.onlySession(t)
	if s.Spec.Customer != (billingv1alpha1.CustomerReference{Email: "jane.doe@example.com"}) {
		t.Errorf("customer %+v: want the e-mail address, lower case", s.Spec.Customer)
	}
	if s.Spec.Delivery == nil || !s.Spec.Delivery.Email {
		t.Errorf("delivery %+v: --email asks for the e-mail", s.Spec.Delivery)
	}
	link := lines(r.out)[0]
	checkLink(t, link, s)
	if !strings.Contains(r.errOut, "e-mailed") {
		t.Errorf("stderr should report the e-mail; got %q", r.errOut)
	}
	msgs, err := mp.Messages("jane.doe@example.com")
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) != 1 {
		t.Fatalf("Mailpit holds %d messages for the customer, want 1", len(msgs))
	}
	m, err := mp.Message(msgs[0].ID)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(m.Text, link) {
		t.Errorf("the e-mail does not carry the printed link:\n%s", m.Text)
	}
}

func TestShareEmailByIDNeedsAnAddress(t *testing.T) {
	mp := testenv.StartMailpit(t, testenv.MailpitOptions{})
	f := newPortal(t, mp, nil)
	r := kubectlPortero(t, f.ns, nil, "share", "cus_7", "--portal", "acme", "--email")
	if r.err == nil || !strings.Contains(r.err.Error(), "--email-to") {
		t.Fatalf("want an error pointing at --email-to, got %v", r.err)
	}
	if n := len(f.sessions(t)); n != 0 {
		t.Fatalf("a refused share created %d sessions", n)
	}

	mustRun(t, f.ns, "share", "cus_7", "--portal", "acme", "--email-to", "ana@example.com")
	s := f.onlySession(t)
	if s.Annotations[annotationCustomerEmail] != "ana@example.com" || s.Spec.Delivery == nil || !s.Spec.Delivery.Email {
		t.Errorf("annotations %v, delivery %+v: --email-to names where the operator sends the link", s.Annotations, s.Spec.Delivery)
	}
	if msgs, err := mp.Messages("ana@example.com"); err != nil || len(msgs) != 1 {
		t.Errorf("Mailpit holds %d messages for ana@example.com (%v), want 1", len(msgs), err)
	}
}

func TestShareQRScansAsTheLink(t *testing.T) {
	f := newPortal(t, nil, nil)
	r := mustRun(t, f.ns, "share", "cus_123", "--portal", "acme", "--qr")
	out := strings.Split(strings.TrimRight(r.out, "\n"), "\n")
	link := out[0]
	checkLink(t, link, f.onlySession(t))
	if got := scanTerminalQR(t, out[1:]); got != link {
		t.Fatalf("the QR code reads %q, want the link %q", got, link)
	}
}

// scanTerminalQR reads a QR code drawn with half blocks, as qrterminal draws it for a dark
// terminal: a full block is two light modules, a space two dark ones, ▀ light above dark, ▄ dark
// above light. It is rasterized as a screen shows it and decoded by an independent reader, told
// that the image is the code alone, pixel-exact (zxing's "pure barcode"): its general detector,
// made for photographs, misjudges the module size of about 1 in 200 perfect renderings.
func scanTerminalQR(t *testing.T, rows []string) string {
	t.Helper()
	var grid [][]bool // true: dark
	for _, row := range rows {
		var top, bottom []bool
		for _, r := range row {
			switch r {
			case '█':
				top, bottom = append(top, false), append(bottom, false)
			case ' ':
				top, bottom = append(top, true), append(bottom, true)
			case '▀':
				top, bottom = append(top, false), append(bottom, true)
			case '▄':
				top, bottom = append(top, true), append(bottom, false)
			default:
				t.Fatalf("unexpected %q in the QR block", r)
			}
		}
		grid = append(grid, top, bottom)
	}
	// With an odd number of module rows, the lower half of the last line is the terminal's own
	// background (▀ all along), not part of the code.
	if last := grid[len(grid)-1]; !slices.Contains(last, false) {
		grid = grid[:len(grid)-1]
	}
	if len(grid) < 21*2/2 {
		t.Fatalf("QR block too small: %d rows", len(grid))
	}
	const px, margin = 4, 8
	w, h := len(grid[0])*px+2*margin, len(grid)*px+2*margin
	img := image.NewGray(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			c := color.Gray{Y: 0xff}
			gy, gx := (y-margin)/px, (x-margin)/px
			if y >= margin && x >= margin && gy < len(grid) && gx < len(grid[gy]) && grid[gy][gx] {
				c.Y = 0
			}
			img.SetGray(x, y, c)
		}
	}
	bmp, err := gozxing.NewBinaryBitmapFromImage(img)
	if err != nil {
		t.Fatal(err)
	}
	res, err := zxingqr.NewQRCodeReader().Decode(bmp, map[gozxing.DecodeHintType]any{gozxing.DecodeHintType_PURE_BARCODE: true})
	if err != nil {
		t.Fatalf("the QR block does not scan: %v", err)
	}
	return res.GetText()
}

func TestShareMissingPortalFailsClearly(t *testing.T) {
	f := newPortal(t, nil, nil)
	r := kubectlPortero(t, f.ns, nil, "share", "cus_123", "--portal", "acmee")
	if r.err == nil {
		t.Fatal("share on a missing portal succeeded")
	}
	for _, want := range []string{`CustomerPortal "acmee" not found in namespace "` + f.ns + `"`, "portals there: acme"} {
		if !strings.Contains(r.err.Error(), want) {
			t.Errorf("error %q does not say %q", r.err, want)
		}
	}
	if r.out != "" {
		t.Errorf("stdout %q: nothing should be printed as a link", r.out)
	}
	if n := len(f.sessions(t)); n != 0 {
		t.Errorf("share on a missing portal created %d PortalSessions", n)
	}
}

func TestShareTTLAboveThePortalsMaximumFailsBeforeCreating(t *testing.T) {
	f := newPortal(t, nil, func(p *billingv1alpha1.CustomerPortal) {
		p.Spec.Access.Sessions.MaxTTL = &metav1.Duration{Duration: time.Hour}
	})
	r := kubectlPortero(t, f.ns, nil, "share", "cus_123", "--portal", "acme", "--ttl", "2h")
	if r.err == nil || !strings.Contains(r.err.Error(), "maxTTL 1h0m0s") || !strings.Contains(r.err.Error(), "at most 1h0m0s") {
		t.Fatalf("want an error naming the portal's maxTTL, got %v", r.err)
	}
	if n := len(f.sessions(t)); n != 0 {
		t.Errorf("a refused share created %d PortalSessions", n)
	}
}

// A session the operator refuses (here a ttl above the portal's maximum, as when the portal's
// maxTTL drops between share's check and the operator's) is reported with the operator's reason
// and withdrawn, so it cannot turn into a live link later (say, once the maximum goes up again).
func TestShareReportsAndWithdrawsARefusedSession(t *testing.T) {
	f := newPortal(t, nil, func(p *billingv1alpha1.CustomerPortal) {
		p.Spec.Access.Sessions.MaxTTL = &metav1.Duration{Duration: time.Hour}
	})
	s := &billingv1alpha1.PortalSession{
		ObjectMeta: metav1.ObjectMeta{Namespace: f.ns, Name: "too-long"},
		Spec: billingv1alpha1.PortalSessionSpec{
			PortalRef: billingv1alpha1.PortalReference{Name: "acme"},
			Customer:  billingv1alpha1.CustomerReference{ID: "cus_1"},
			TTL:       &metav1.Duration{Duration: 2 * time.Hour},
		},
	}
	if err := k8s.Create(context.Background(), s); err != nil {
		t.Fatal(err)
	}
	streams, _, _, _ := genericiooptions.NewTestIOStreams()
	o := &Options{IOStreams: streams, Flags: flagsFor(f.ns)}
	c, err := o.connect()
	if err != nil {
		t.Fatal(err)
	}
	_, seen, err := c.awaitLink(context.Background(), s.Name, 30*time.Second)
	if err == nil || !strings.Contains(err.Error(), "the operator refused PortalSession too-long") || !strings.Contains(err.Error(), "maxTTL") {
		t.Fatalf("want the operator's refusal, got %v", err)
	}
	if seen == nil || stalled(seen) == nil {
		t.Fatalf("awaitLink returned %v as the session it saw, want the stalled session", seen)
	}
	err = c.withdraw(s, err)
	if !strings.Contains(err.Error(), "withdrawn") {
		t.Errorf("error %q should say the session was withdrawn", err)
	}
	got := f.onlySession(t)
	if !got.Spec.Revoked || got.Spec.RevocationReason == "" {
		t.Errorf("spec %+v: the refused session should be revoked, with a reason", got.Spec)
	}
}

// flagsFor is the connection flags as `--kubeconfig <test control plane> -n ns` sets them.
func flagsFor(ns string) *genericclioptions.ConfigFlags {
	kc := kubeconfig
	f := genericclioptions.NewConfigFlags(true)
	f.KubeConfig = &kc
	f.Namespace = &ns
	return f
}

func TestSessionsListsActiveSessionsAndTheirTimeLeft(t *testing.T) {
	f := newPortal(t, nil, nil)
	mustRun(t, f.ns, "share", "cus_123", "--portal", "acme", "--ttl", "30m")
	s := f.onlySession(t)
	now := func() time.Time { return s.Status.ExpiresAt.Add(-12 * time.Minute) }

	r := kubectlPortero(t, f.ns, now, "sessions")
	if r.err != nil {
		t.Fatal(r.err)
	}
	got := lines(r.out)
	if len(got) != 2 || strings.Join(strings.Fields(got[0]), " ") != "NAME PORTAL CUSTOMER PHASE TIME LEFT" {
		t.Fatalf("want a header and one row, got:\n%s", r.out)
	}
	if row := strings.Fields(got[1]); strings.Join(row, " ") != s.Name+" acme cus_123 Active 12m" {
		t.Errorf("row %q, want %q", got[1], s.Name+" acme cus_123 Active 12m")
	}

	r = kubectlPortero(t, "", now, "sessions", "-A", "--portal", "acme")
	if r.err != nil {
		t.Fatal(r.err)
	}
	if !strings.HasPrefix(r.out, "NAMESPACE") || !strings.Contains(r.out, f.ns+" ") || !strings.Contains(r.out, s.Name) {
		t.Errorf("-A should list the session with its namespace:\n%s", r.out)
	}

	r = kubectlPortero(t, f.ns, now, "sessions", "--portal", "other")
	if r.err != nil || r.out != "" || !strings.Contains(r.errOut, `No PortalSessions found in namespace `+f.ns+` for portal "other"`) {
		t.Errorf("--portal other: out %q, err %v, stderr %q: want nothing listed and a note on stderr", r.out, r.err, r.errOut)
	}
}

func TestRevokeEndsTheSessionWithItsReason(t *testing.T) {
	f := newPortal(t, nil, nil)
	mustRun(t, f.ns, "share", "cus_123", "--portal", "acme")
	s := f.onlySession(t)
	secret := s.Status.LinkSecretName

	r := mustRun(t, f.ns, "revoke", s.Name, "--reason", "sent to the wrong person")
	if !strings.Contains(r.out, "portalsession/"+s.Name+" revoked (reason: sent to the wrong person): its link no longer works") {
		t.Errorf("stdout %q", r.out)
	}
	got := f.onlySession(t)
	if !got.Spec.Revoked || got.Spec.RevocationReason != "sent to the wrong person" || got.Status.Phase != billingv1alpha1.SessionRevoked {
		t.Fatalf("spec %+v, phase %q: want revoked with the reason, phase Revoked", got.Spec, got.Status.Phase)
	}
	err := k8s.Get(context.Background(), client.ObjectKey{Namespace: f.ns, Name: secret}, &corev1.Secret{})
	if !apierrors.IsNotFound(err) {
		t.Errorf("link Secret %s: %v, want it deleted", secret, err)
	}

	r = mustRun(t, f.ns, "revoke", s.Name)
	if !strings.Contains(r.out, "already revoked (reason: sent to the wrong person)") {
		t.Errorf("revoking again: stdout %q, want it to say it was already revoked", r.out)
	}
	r = kubectlPortero(t, f.ns, nil, "revoke", s.Name, "--reason", "another reason")
	if r.err == nil || !strings.Contains(r.err.Error(), "cannot be changed") {
		t.Errorf("changing the reason: %v, want a refusal", r.err)
	}
	if got := f.onlySession(t); got.Spec.RevocationReason != "sent to the wrong person" {
		t.Errorf("reason became %q", got.Spec.RevocationReason)
	}

	r = kubectlPortero(t, f.ns, nil, "revoke", "nope")
	if r.err == nil || !strings.Contains(r.err.Error(), `PortalSession "nope" not found in namespace "`+f.ns+`"`) {
		t.Errorf("revoking a missing session: %v", r.err)
	}
	r = mustRun(t, f.ns, "sessions")
	if row := strings.Fields(lines(r.out)[1]); strings.Join(row, " ") != s.Name+" acme cus_123 Revoked -" {
		t.Errorf("sessions after revoke: %q", lines(r.out)[1])
	}
}

func TestURLPrintsTheReadyPortalsURL(t *testing.T) {
	f := newPortal(t, nil, nil)
	eventually(t, "the operator reports on the portal", func() error {
		p := &billingv1alpha1.CustomerPortal{}
		if err := k8s.Get(context.Background(), client.ObjectKeyFromObject(f.portal), p); err != nil {
			return err
		}
		if p.Status.ObservedGeneration != p.Generation {
			return errString("not observed yet")
		}
		return nil
	})
	r := kubectlPortero(t, f.ns, nil, "url", "acme")
	if r.err == nil || !strings.Contains(r.err.Error(), `CustomerPortal "acme" is not Ready yet`) || !strings.Contains(r.err.Error(), "kubectl wait --for=condition=Ready cportal/acme") {
		t.Fatalf("url of a portal that is not Ready: %v", r.err)
	}
	if r.out != "" {
		t.Errorf("stdout %q: no URL before the portal is Ready", r.out)
	}

	f.makeAvailable(t)
	eventually(t, "url prints the portal's URL", func() error {
		r := kubectlPortero(t, f.ns, nil, "url", "acme")
		if r.err != nil {
			return r.err
		}
		if r.out != testPortalURL+"\n" {
			t.Fatalf("stdout %q, want %q", r.out, testPortalURL+"\n")
		}
		return nil
	})

	r = kubectlPortero(t, f.ns, nil, "url", "acmee")
	if r.err == nil || !strings.Contains(r.err.Error(), "portals there: acme") {
		t.Errorf("url of a missing portal: %v", r.err)
	}
}

type errString string

func (e errString) Error() string { return string(e) }

// The connection flags are kubectl's: --context picks a kubeconfig context, -n the namespace.
func TestKubectlFlagsChooseContextAndNamespace(t *testing.T) {
	f := newPortal(t, nil, nil)
	mustRun(t, f.ns, "share", "cus_123", "--portal", "acme")
	r := kubectlPortero(t, f.ns, nil, "sessions", "--context", "nowhere", "--request-timeout", "5s")
	if r.err == nil {
		t.Fatal("--context nowhere reached the control plane")
	}
	r = mustRun(t, f.ns, "sessions", "--context", "envtest")
	if !strings.Contains(r.out, "cus_123") {
		t.Errorf("--context envtest -n %s: %q", f.ns, r.out)
	}
	other := newPortal(t, nil, nil)
	r = mustRun(t, other.ns, "sessions")
	if r.out != "" {
		t.Errorf("-n %s listed another namespace's sessions: %q", other.ns, r.out)
	}
}

// Flags that contradict each other are refused before anything is created.
func TestShareRefusesContradictoryFlags(t *testing.T) {
	f := newPortal(t, nil, nil)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"share", "cus_1"}, `required flag(s) "portal" not set`},
		{[]string{"share", "--portal", "acme"}, "exactly one CUSTOMER"},
		{[]string{"share", "cus 1", "--portal", "acme"}, "neither a customer id"},
		{[]string{"share", "cus_1", "--portal", "acme", "--payment", "pay_1"}, "--payment and --subscription go with --flow"},
		{[]string{"share", "cus_1", "--portal", "acme", "--flow", "pay"}, `--flow "pay" is not a flow`},
		{[]string{"share", "cus_1", "--portal", "acme", "--flow", "complete_payment"}, "needs --payment ID"},
		{[]string{"share", "cus_1", "--portal", "acme", "--flow", "cancel_subscription"}, "needs --subscription ID"},
		{[]string{"share", "cus_1", "--portal", "acme", "--flow", "update_billing_info", "--payment", "pay_1"}, "only used with --flow complete_payment"},
		{[]string{"share", "cus_1", "--portal", "acme", "--flow", "update_billing_info", "--subscription", "sub_1"}, "--subscription is only used with"},
		{[]string{"share", "jane@example.com", "--portal", "acme", "--email-to", "ana@example.com"}, "--email-to is for a CUSTOMER given by id"},
		{[]string{"share", "cus_1", "--portal", "acme", "--email-to", "not an address"}, "is not an e-mail address"},
		{[]string{"share", "cus_1", "--portal", "acme", "--ttl", "-5m"}, "--ttl -5m0s is negative"},
		{[]string{"share", "cus_1", "--portal", "acme", "--email-to", "ana@example.com"}, `CustomerPortal "acme" has no spec.email`},
		{[]string{"share", "jane@@example", "--portal", "acme"}, "customer.email must be an e-mail address"},
		{[]string{"share", "cus_1", "--portal", "acme", "--return-url", "http://acme.example/"}, "returnURL must be an absolute https:// URL"},
	} {
		r := kubectlPortero(t, f.ns, nil, tc.args...)
		if r.err == nil || !strings.Contains(r.err.Error(), tc.want) {
			t.Errorf("%v: error %v, want one saying %q", tc.args, r.err, tc.want)
		}
	}
	if n := len(f.sessions(t)); n != 0 {
		t.Errorf("refused shares created %d PortalSessions", n)
	}
}
