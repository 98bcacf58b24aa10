package web

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	clocktesting "k8s.io/utils/clock/testing"
	"k8s.io/utils/ptr"

	billingv1alpha1 "github.com/portero-dev/portero/api/v1alpha1"
	"github.com/portero-dev/portero/portal/auth"
	"github.com/portero-dev/portero/portal/charging/flowtest"
	"github.com/portero-dev/portero/portal/ledger"
	"github.com/portero-dev/portero/portal/ledger/ledgertest"
	"github.com/portero-dev/portero/portal/mail"
	"github.com/portero-dev/portero/portal/payments"
)

// Fuzz targets for every parser of customer input: the add-method form (card fields, CBU/CVU,
// wallet), the billing form, reorder buttons, and, end to end, whatever body a POST carries.
// Properties: no panic; what is accepted is canonical; errors never echo the input.

var fuzzNow = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func FuzzDecodeNewMethod(f *testing.F) {
	f.Add("card", fmt.Sprintf("number=4242+4242+4242+4242&exp_month=12&exp_year=%02d&cvc=123&holder=Jane", (fuzzNow.Year()+4)%100))
	f.Add("card", fmt.Sprintf("number=378282246310005&exp_month=1&exp_year=%d&cvc=1234", fuzzNow.Year()+5))
	f.Add("card", fmt.Sprintf("number=4242424242424241&exp_month=13&exp_year=%02d&cvc=12a", (fuzzNow.Year()-6)%100))
	f.Add("card", "number=%00%ff&exp_month=-1&exp_year=99999&cvc=")
	f.Add("direct_debit", "account=0110599552000000123456")
	f.Add("direct_debit", "account=0110-5995-5200-0000-1234-57")
	f.Add("cvu", "account=0000003110000000123456")
	f.Add("wallet", "wallet=mercadopago")
	f.Add("qr", "")
	f.Add("bitcoin", "x=1")
	f.Fuzz(func(t *testing.T, typ, query string) {
		vals, _ := url.ParseQuery(query)
		mt, ok := parseMethodType(typ)
		if !ok {
			return
		}
		in, errs := decodeNewMethod(vals, mt, fuzzNow)
		for field, err := range errs {
			var pe *payments.Error
			var key msgKey
			if !errors.As(err, &pe) && !errors.As(err, &key) {
				t.Fatalf("%s: uncoded error %v", field, err)
			}
			for _, v := range vals {
				for _, s := range v {
					if d := digits(s); len(d) >= 8 && strings.Contains(err.Error(), d) {
						t.Fatalf("error echoes input %q: %v", s, err)
					}
				}
			}
		}
		if len(errs) > 0 {
			return
		}
		switch mt {
		case payments.MethodCard:
			c := in.Card
			if _, _, err := payments.ParseCardNumber(c.Number); err != nil || digits(c.Number) != c.Number {
				t.Fatalf("accepted card number %q: %v", c.Number, err)
			}
			if payments.CheckExpiry(c.ExpMonth, c.ExpYear, fuzzNow) != nil || c.ExpYear < 2000 {
				t.Fatalf("accepted expiry %d/%d", c.ExpMonth, c.ExpYear)
			}
			if len(c.CVC) < 3 || len(c.CVC) > 4 || digits(c.CVC) != c.CVC {
				t.Fatalf("accepted CVC %q", c.CVC)
			}
		case payments.MethodDirectDebit, payments.MethodCVU:
			if len(in.Account) != 22 || digits(in.Account) != in.Account {
				t.Fatalf("accepted account %q", in.Account)
			}
		case payments.MethodWallet:
			if walletName(in.Wallet) == in.Wallet {
				t.Fatalf("accepted wallet %q", in.Wallet)
			}
		}
	})
}

func digits(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] >= '0' && s[i] <= '9' {
			b.WriteByte(s[i])
		}
	}
	return b.String()
}

func FuzzDecodeBilling(f *testing.F) {
	f.Add("legal_name=Jane+SRL&tax_id=30-71234567-1&tax_condition=responsable_inscripto&line1=Calle+1&city=CABA&country=ar")
	f.Add("tax_id=20123456786&tax_condition=monotributista")
	f.Add("tax_condition=exento")
	f.Add("legal_name=%00&country=ARG&tax_condition=x")
	f.Add("line1=" + strings.Repeat("é", 300))
	f.Fuzz(func(t *testing.T, query string) {
		vals, _ := url.ParseQuery(query)
		b, errs := decodeBilling(vals)
		if len(errs) > 0 {
			return
		}
		if b.TaxID != "" {
			if id, err := payments.ParseCUIT(b.TaxID); err != nil || id != b.TaxID {
				t.Fatalf("accepted tax ID %q", b.TaxID)
			}
		}
		if b.TaxCondition != "" && b.TaxCondition != ledger.ConsumidorFinal && b.TaxID == "" {
			t.Fatalf("condition %s without a tax ID", b.TaxCondition)
		}
		if c := b.Address.Country; c != "" && (len(c) != 2 || !isUpperASCII(c)) {
			t.Fatalf("accepted country %q", c)
		}
		for _, s := range []string{b.LegalName, b.Address.Line1, b.Address.Line2, b.Address.City, b.Address.Province, b.Address.PostalCode} {
			if again, ok := cleanText(s, 200); !ok || again != s {
				t.Fatalf("accepted text %q", s)
			}
		}
	})
}

func FuzzMoveOrder(f *testing.F) {
	f.Add(uint8(3), uint8(1), "up")
	f.Add(uint8(3), uint8(2), "top")
	f.Add(uint8(1), uint8(0), "down")
	f.Add(uint8(0), uint8(0), "sideways")
	f.Fuzz(func(t *testing.T, n, i uint8, to string) {
		n %= 20
		ids := make([]string, n)
		for k := range ids {
			ids[k] = string(rune('a' + k))
		}
		dir, ok := parseMove(to)
		if !ok {
			return
		}
		out, ok := moveOrder(ids, int(i), dir)
		if !ok {
			return
		}
		if len(out) != len(ids) || strings.Join(sorted(out), "") != strings.Join(ids, "") {
			t.Fatalf("moveOrder(%v, %d, %s) = %v: not a permutation", ids, i, dir, out)
		}
		moved := ids[i]
		pos := map[string]int{"up": int(i) - 1, "down": int(i) + 1, "top": 0}[dir]
		if out[pos] != moved {
			t.Fatalf("moveOrder(%v, %d, %s) = %v", ids, i, dir, out)
		}
	})
}

func sorted(s []string) []string {
	out := append([]string(nil), s...)
	for i := range out {
		for j := i + 1; j < len(out); j++ {
			if out[j] < out[i] {
				out[i], out[j] = out[j], out[i]
			}
		}
	}
	return out
}

// staticRules serves a fixed portal, for fuzzing the handler without an API server.
type staticRules struct {
	p *billingv1alpha1.CustomerPortal
}

func (s staticRules) Portal(context.Context) *billingv1alpha1.CustomerPortal { return s.p.DeepCopy() }
func (staticRules) Session(context.Context, string) *billingv1alpha1.PortalSession {
	return nil
}
func (staticRules) AwaitSessionByTokenHash(context.Context, string, time.Duration) *billingv1alpha1.PortalSession {
	return nil
}

type discardSender struct{}

func (discardSender) Send(context.Context, mail.Message) error { return nil }

// FuzzFormPosts sends arbitrary bodies to every form of a signed-in customer (with a valid CSRF
// token, so decoding is reached) and to the public ones: no input may cause a server error.
func FuzzFormPosts(f *testing.F) {
	routes := []string{"/methods", "/billing", "/subscriptions/{sub}/method", "/subscriptions/{sub}/cancel",
		"/methods/{pm}/move", "/methods/{pm}/remove", "/payments/{pay}/pay", "/login", "/login/code", "/login/choose", "/logout"}
	f.Add(uint8(0), fmt.Sprintf("type=card&number=4242424242424242&exp_month=12&exp_year=%d&cvc=123", fuzzNow.Year()+14))
	f.Add(uint8(1), "tax_id=20-12345678-6&country=AR")
	f.Add(uint8(2), "method=pm_x")
	f.Add(uint8(3), "reason=%E2%80%AE")
	f.Add(uint8(4), "to=top")
	f.Add(uint8(6), "type=qr")
	f.Add(uint8(7), "email=a%40b.c")
	f.Add(uint8(8), "code=%00%00")
	f.Add(uint8(9), "customer=cus_x")
	f.Add(uint8(1), "%zz=%zz&&&=")

	ctx := context.Background()
	clock := clocktesting.NewFakeClock(fuzzNow)
	st, err := ledger.Open(ctx, ledgertest.SQLiteDSN(f), ledger.Options{Now: clock.Now})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { st.Close() })
	led, err := flowtest.NewSandbox(st, []byte("portero-web-fuzz-sandbox-secret-0123456789"), clock.Now)
	if err != nil {
		f.Fatal(err)
	}
	as, err := auth.OpenLedger(ctx, st, auth.Options{Clock: clock})
	if err != nil {
		f.Fatal(err)
	}
	portal := &billingv1alpha1.CustomerPortal{ObjectMeta: metav1.ObjectMeta{Namespace: "fuzz", Name: "p", Generation: 1},
		Spec: billingv1alpha1.CustomerPortalSpec{DisplayName: "Fuzz", Permissions: billingv1alpha1.Permissions{CancelSubscriptions: ptr.To(true)},
			Cancellation: billingv1alpha1.Cancellation{CollectReason: true},
			Email:        &billingv1alpha1.Email{From: "f@example.com"}}}
	h, err := New(Options{Ledger: st, Processors: led.Processors(), Auth: as, Rules: staticRules{portal}, Clock: clock,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Mailer: MailerFunc(func(context.Context, *billingv1alpha1.CustomerPortal) (mail.Sender, error) {
			return discardSender{}, nil
		}),
		RateLimits:  &RateLimits{},
		SendTimeout: time.Second})
	if err != nil {
		f.Fatal(err)
	}
	c, err := led.CreateCustomer(ctx, ledger.NewCustomer{Email: "fuzz@example.com", Name: "Fuzz"})
	if err != nil {
		f.Fatal(err)
	}
	pm, _ := led.AddPaymentMethod(ctx, c.ID, cardInput("4242424242424242"))
	sub, _, _ := led.CreateSubscription(ctx, ledger.NewSubscription{CustomerID: c.ID, Plan: "P", Amount: 100, Currency: ledger.ARS, Interval: ledger.Month})
	pay, _ := led.CreatePayment(ctx, ledger.NewPayment{CustomerID: c.ID, Amount: 100, Currency: ledger.ARS})
	cookie, sess, err := as.CreateSession(ctx, auth.NewSession{Portal: "fuzz/p", CustomerID: c.ID, Email: c.Email, Method: auth.MethodCode})
	if err != nil {
		f.Fatal(err)
	}
	pre := auth.NewPreSession()
	f.Fuzz(func(t *testing.T, route uint8, body string) {
		path := routes[int(route)%len(routes)]
		path = strings.NewReplacer("{sub}", sub.ID, "{pm}", pm.ID, "{pay}", pay.ID).Replace(path)
		csrf := sess.CSRFToken
		if strings.HasPrefix(path, "/login") && path != "/login/choose" {
			csrf = as.PreSessionToken(pre)
		}
		req := httptest.NewRequest(http.MethodPost, "http://portal.example"+path, strings.NewReader(body+"&csrf="+url.QueryEscape(csrf)))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.AddCookie(&http.Cookie{Name: "__Host-portero", Value: cookie})
		req.AddCookie(&http.Cookie{Name: "__Host-portero-pre", Value: pre})
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code >= 500 {
			t.Fatalf("POST %s %q → %d\n%s", path, body, rec.Code, rec.Body.String())
		}
		if path == "/logout" && rec.Code == http.StatusOK {
			// Signed out: sign the fuzzing browser in again.
			cookie, sess, _ = as.CreateSession(ctx, auth.NewSession{Portal: "fuzz/p", CustomerID: c.ID, Email: c.Email, Method: auth.MethodCode})
		}
	})
}
