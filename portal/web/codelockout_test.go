package web

import (
	"fmt"
	"net/http"
	"net/url"
	"testing"
	"time"
)

// mails is how many e-mails Mailpit holds for to, once every send in flight has finished.
func (f *fixture) mails(to string) int {
	f.t.Helper()
	f.h.Wait()
	msgs, err := f.mailpit.Messages(to)
	if err != nil {
		f.t.Fatal(err)
	}
	return len(msgs)
}

// signInWithCode asks for a code for email in b, reads it from Mailpit (the newest of want
// e-mails there) and types it.
func (f *fixture) signInWithCode(t *testing.T, b *browser, email string, want int) *response {
	t.Helper()
	b.get("/login")
	wantRedirect(t, b.submit("/login", url.Values{"email": {email}}), "/login/code")
	b.get("/login/code")
	codes := f.codes(email, want)
	if len(codes) != want {
		t.Fatalf("%d e-mails for %s, want %d", len(codes), email, want)
	}
	return b.submit("/login/code", url.Values{"code": {codes[want-1]}})
}

// An attacker who knows a customer's address asks for codes for it from other networks, over
// and over, and guesses. The customer, from their own network, still gets a code and signs in,
// and the inbox gets a bounded number of e-mails.
func TestStrangersCannotKeepACustomerFromSigningIn(t *testing.T) {
	f := newFixture(t, withMailpit())
	f.atNextHour()
	const victim = "victim@example.com"
	f.customer(victim, "Victim")
	attackers := []string{"198.51.100.1", "198.51.100.2", "192.0.2.9",
		// Addresses of one IPv6 /64 are one client.
		"[2001:db8:bad:1::1]", "[2001:db8:bad:1::2]", "[2001:db8:bad:1:ffff::3]"}
	for round := 0; round < 5; round++ {
		for _, ip := range attackers {
			// Each time a fresh browser, which asks, guesses and asks again as far as the
			// portal lets it (its per-IP limits answer some of these with 429).
			a := f.browser()
			a.ip = ip
			a.get("/login")
			a.submit("/login", url.Values{"email": {victim}})
			if a.get("/login/code").Code != http.StatusOK {
				continue
			}
			for i := 0; i < 3; i++ {
				a.submit("/login/code", url.Values{"code": {fmt.Sprintf("%06d", round*10+i)}})
			}
			a.submit("/login/resend", nil)
		}
		f.clock.Step(31 * time.Second)
	}
	sent := f.mails(victim)
	if max := 4 * f.h.limits.CodesPerEmailPerClientPerHour; sent > max {
		t.Fatalf("four client networks had %d codes e-mailed to the victim, more than %d", sent, max)
	}

	owner := f.browser()
	owner.ip = "203.0.113.50"
	wantRedirect(t, f.signInWithCode(t, owner, victim, sent+1), "/")
	wantBody(t, owner.get("/"), "Hola, Victim")
	if total := f.mails(victim); total > f.h.limits.CodesPerEmailPerHour {
		t.Fatalf("the inbox got %d codes in the hour, cap %d", total, f.h.limits.CodesPerEmailPerHour)
	}
}

// With enough networks a stranger can use up an address's e-mails for the hour: a browser new
// to the address then gets none (that is what bounds the inbox), and its page does not say so.
// A browser that signed in to the address with a code before keeps a quota of its own.
func TestAKnownBrowserStillGetsItsCode(t *testing.T) {
	f := newFixture(t, withMailpit())
	f.atNextHour()
	const victim = "victim@example.com"
	f.customer(victim, "Victim")
	owner := f.browser()
	owner.ip = "203.0.113.50"
	wantRedirect(t, f.signInWithCode(t, owner, victim, 1), "/")
	known := owner.cookies["__Host-"+cookieKnown]
	if known == "" {
		t.Fatal("a code sign-in did not mark the browser as known")
	}

	f.clock.Step(time.Hour)
	for i := 0; i < 2*f.h.limits.CodesPerEmailPerHour; i++ {
		a := f.browser()
		a.ip = fmt.Sprintf("198.51.100.%d", i+1)
		a.get("/login")
		wantRedirect(t, a.submit("/login", url.Values{"email": {victim}}), "/login/code")
	}
	sent := f.mails(victim)
	if sent != 1+f.h.limits.CodesPerEmailPerHour {
		t.Fatalf("%d e-mails, want the first sign-in's and the hour's cap of %d", sent, f.h.limits.CodesPerEmailPerHour)
	}
	stranger := f.browser()
	stranger.ip = owner.ip
	stranger.get("/login")
	wantRedirect(t, stranger.submit("/login", url.Values{"email": {victim}}), "/login/code")
	wantStatus(t, stranger.get("/login/code"), http.StatusOK)
	if n := f.mails(victim); n != sent {
		t.Fatalf("a browser new to the address got a code past the cap (%d e-mails)", n)
	}

	// The owner's browser, its session over, signs in again.
	again := f.browser()
	again.ip = "192.0.2.77" // on the move: another network
	again.cookies["__Host-"+cookieKnown] = known
	wantRedirect(t, f.signInWithCode(t, again, victim, sent+1), "/")
	wantBody(t, again.get("/"), "Hola, Victim")
}
