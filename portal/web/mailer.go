package web

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	billingv1alpha1 "github.com/portero-dev/portero/api/v1alpha1"
	"github.com/portero-dev/portero/portal/mail"
)

// Mailer gives a sender for a portal's SMTP settings as they are now.
type Mailer interface {
	Sender(ctx context.Context, p *billingv1alpha1.CustomerPortal) (mail.Sender, error)
}

// MailerFunc adapts a function to Mailer.
type MailerFunc func(ctx context.Context, p *billingv1alpha1.CustomerPortal) (mail.Sender, error)

// Sender implements Mailer.
func (f MailerFunc) Sender(ctx context.Context, p *billingv1alpha1.CustomerPortal) (mail.Sender, error) {
	return f(ctx, p)
}

// SecretMailer reads the portal's spec.email.smtpSecretRef Secret on every send, so a rotated
// password or a new server applies at once. The read is a live GET: the portal's Role allows get
// on that one Secret by name, not list or watch, so it must never go through an informer. The
// rules client already skips its cache for Secrets; reading an unstructured object keeps the
// read live with any cache-backed client.
type SecretMailer struct {
	Reader client.Reader
}

// Sender implements Mailer.
func (m SecretMailer) Sender(ctx context.Context, p *billingv1alpha1.CustomerPortal) (mail.Sender, error) {
	if p.Spec.Email == nil {
		return nil, errors.New("CustomerPortal has no spec.email")
	}
	name := p.Spec.Email.SMTPSecretRef.Name
	u := &unstructured.Unstructured{}
	u.SetAPIVersion("v1")
	u.SetKind("Secret")
	if err := m.Reader.Get(ctx, types.NamespacedName{Namespace: p.Namespace, Name: name}, u); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, fmt.Errorf("SMTP Secret %s (spec.email.smtpSecretRef) does not exist", name)
		}
		return nil, fmt.Errorf("get SMTP Secret %s: %w", name, err)
	}
	raw, _, err := unstructured.NestedStringMap(u.Object, "data")
	if err != nil {
		return nil, fmt.Errorf("SMTP Secret %s: %w", name, err)
	}
	data := make(map[string][]byte, len(raw))
	for k, v := range raw {
		b, err := base64.StdEncoding.DecodeString(v)
		if err != nil {
			return nil, fmt.Errorf("SMTP Secret %s: key %s is not base64", name, k)
		}
		data[k] = b
	}
	cfg, err := mail.SMTPConfigFromSecret(data)
	if err != nil {
		return nil, fmt.Errorf("SMTP Secret %s: %w", name, err)
	}
	return mail.NewSMTPSender(cfg), nil
}
