package chaos

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"

	billingv1alpha1 "github.com/portero-dev/portero/api/v1alpha1"
	"github.com/portero-dev/portero/bench"
	"github.com/portero-dev/portero/controllers"
)

// SMTPDown (scenario 4) takes the SMTP server down (its port closed, through a proxy in front
// of Mailpit that the portal's SMTP Secret names) while customers ask for sign-in codes and the
// merchant asks for session links to be e-mailed (the operator sends those), then brings it
// back. A code request during the outage must say it could not be sent and to try again; once
// SMTP is back every link goes out exactly once, and customers sign in with codes again.
func SMTPDown(ctx context.Context, cfg Config) Outcome {
	customers := cfg.size(40, 6)
	outage := time.Duration(cfg.size(30, 5)) * time.Second
	return run("SMTP down", func(o *Outcome) error {
		sys, err := startSystem(ctx, cfg, "smtp", systemOptions{manager: true, mailpit: true, smtpProxy: true})
		if err != nil {
			return err
		}
		defer sys.stop()
		u, err := sys.createPortal(ctx, "shop", nil)
		if err != nil {
			return err
		}
		_, err = sys.runPortal(ctx, "shop", u, portalStorage{dataDir: filepath.Join(sys.dir, "shop")})
		if err != nil {
			return err
		}
		m := sys.merchant(u)
		ids := make([]string, customers)
		emails := make([]string, customers)
		if err := bench.Parallel(ctx, 4, customers, func(i int) error {
			emails[i] = fmt.Sprintf("smtp%03d@chaos.example", i)
			var err error
			ids[i], err = m.customer(ctx, emails[i], "Cliente")
			return err
		}); err != nil {
			return err
		}

		cfg.step("smtp: down for %s; %d code requests and %d e-mailed links meanwhile", outage, customers, customers)
		sys.smtp.Down()
		downAt := time.Now()
		// The merchant asks for every link to be e-mailed; the operator cannot send them yet.
		sessions := make([]string, customers)
		if err := bench.Parallel(ctx, 4, customers, func(i int) error {
			var out idJSON
			err := m.call(ctx, http.MethodPost, "/portal_sessions", map[string]any{"customer_id": ids[i], "ttl": "2h", "deliver_by_email": true}, &out)
			sessions[i] = out.ID
			return err
		}); err != nil {
			return fmt.Errorf("create sessions: %w", err)
		}
		// Customers ask for codes: each is told whether it can expect one.
		told := 0
		browsers := make([]*browser, customers)
		for i := range customers {
			b := newBrowser(u, net.IPv4(127, 0, 40, byte(1+i)))
			browsers[i] = b
			if _, err := b.get(ctx, "/login"); err != nil {
				return err
			}
			pg, err := b.post(ctx, "/login", url.Values{"email": {emails[i]}})
			if err != nil {
				return err
			}
			// The code goes out in the background: the customer reloads the code page until it
			// says the code could not be sent (SMTP stays down until every customer has looked).
			ok := retryable(pg)
			for deadline := time.Now().Add(15 * time.Second); !ok && time.Now().Before(deadline); {
				waitFor(ctx, 100*time.Millisecond)
				pg2, err := b.get(ctx, "/login/code")
				if err != nil {
					return err
				}
				ok = retryable(pg2)
			}
			if ok {
				told++
			}
		}
		waitFor(ctx, outage-time.Since(downAt))
		if err := sys.smtp.Up(); err != nil {
			return err
		}
		upAt := time.Now()
		cfg.step("smtp: back; waiting for the links to go out")

		// Every link e-mailed once: the sessions say Sent, Mailpit has one link e-mail each.
		var sent int
		deadline := time.Now().Add(4 * time.Minute)
		for time.Now().Before(deadline) {
			if sent, err = sessionsSent(ctx, sys); err != nil {
				return err
			}
			if sent == customers {
				break
			}
			waitFor(ctx, 500*time.Millisecond)
		}
		allSent := time.Since(upAt)
		// Customers ask again now that SMTP is back (the same browser: its challenge goes on) and
		// sign in with the code that arrives.
		signedInAfter := 0
		for i, b := range browsers {
			if i >= 3 && !cfg.Full {
				break
			}
			if err := codeSignIn(ctx, sys.mail, b, emails[i]); err == nil {
				signedInAfter++
			}
		}
		tried := min(customers, 3)
		if cfg.Full {
			tried = customers
		}
		links, dupLinks, err := linkMails(sys, emails)
		if err != nil {
			return err
		}
		o.Faults = fmt.Sprintf("SMTP port closed for %s", outage)
		o.Attempted = 2 * customers
		o.Completed = links + told
		o.Lost = customers - links
		o.Duplicated = dupLinks
		o.check("code requests during the outage say to retry", told == customers,
			"%d of %d code requests led to a page saying the code could not be sent and to try again", told, customers)
		o.check("every link e-mailed once SMTP is back", sent == customers && links == customers,
			"%d of %d sessions Delivered=Sent; %d link e-mails in Mailpit", sent, customers, links)
		o.check("no duplicate e-mails", dupLinks == 0, "%d addresses got the link more than once", dupLinks)
		o.check("codes work again", signedInAfter == tried, "%d of %d customers signed in with a code after SMTP came back", signedInAfter, tried)
		o.figure("links all out %s after SMTP came back (the operator retries with backoff)", allSent.Round(100*time.Millisecond))
		return nil
	})
}

// retryable reports whether a page tells the customer the code could not be sent and to try
// again, in Spanish or English.
func retryable(p page) bool {
	if p.Status == http.StatusServiceUnavailable {
		return true
	}
	b := strings.ToLower(p.Body)
	return strings.Contains(b, "no pudimos enviar") || strings.Contains(b, "could not send") || strings.Contains(b, "couldn't send")
}

// sessionsSent counts the sessions whose link the operator recorded as e-mailed.
func sessionsSent(ctx context.Context, sys *system) (int, error) {
	var list billingv1alpha1.PortalSessionList
	if err := sys.cluster.Client.List(ctx, &list); err != nil {
		return 0, err
	}
	n := 0
	for _, s := range list.Items {
		if c := meta.FindStatusCondition(s.Status.Conditions, controllers.ConditionDelivered); c != nil && c.Reason == controllers.DeliveryReasonSent {
			n++
		}
	}
	return n, nil
}

// linkMails counts the session-link e-mails each address received.
func linkMails(sys *system, emails []string) (delivered, duplicated int, err error) {
	for _, e := range emails {
		msgs, err := sys.mail.Messages(e)
		if err != nil {
			return 0, 0, err
		}
		k := 0
		for _, m := range msgs {
			if strings.HasPrefix(m.Subject, "Tu acceso a") || strings.HasPrefix(m.Subject, "Your access to") {
				k++
			}
		}
		if k > 0 {
			delivered++
		}
		if k > 1 {
			duplicated += k - 1
		}
	}
	return delivered, duplicated, nil
}
