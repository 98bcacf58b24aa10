package auth

import (
	"errors"
	"fmt"
	"testing"
	"time"
)

// lockoutPolicy has the default caps: three e-mails per client, fifteen per address.
var lockoutPolicy = CodePolicy{Length: 6, TTL: 10 * time.Minute, MaxAttempts: 5, ResendCooldown: 30 * time.Second}

// An attacker who knows a customer's address asks for codes for it from other networks, again
// and again. The owner, from their own network, still gets a code and signs in; the inbox gets
// no more than the address's cap; the attacker's guesses lock only the attacker's challenges.
func TestStrangersCannotLockTheOwnerOut(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e *env) {
		const victim = "victim@example.com"
		mails := 0
		policy := lockoutPolicy.normalized()
		attackers := []Requester{{Client: "198.51.100.1"}, {Client: "198.51.100.2"}, {Client: "192.0.2.9"}, {Client: "2001:db8:bad::/64"}}
		for round := 0; round < 20; round++ {
			for _, a := range attackers {
				// A fresh browser each time (no challenge cookie), and one that keeps asking.
				iss, err := e.store.StartLogin(e.ctx, testPortal, victim, "", a, policy)
				if err != nil {
					t.Fatal(err)
				}
				if iss.Code != "" {
					mails++
				}
				// Wrong guesses spend the attacker's own challenge.
				for i := 0; i < policy.MaxAttempts+1; i++ {
					if _, err := e.store.VerifyCode(e.ctx, testPortal, iss.Handle, fmt.Sprintf("%06d", i), policy); err == nil {
						t.Fatal("a guess signed the attacker in")
					}
				}
				if iss, err := e.store.Resend(e.ctx, testPortal, iss.Handle, a, policy); err == nil && iss.Code != "" {
					mails++
				}
			}
			e.clock.Step(time.Second)
		}
		if limit := len(attackers) * policy.MaxSendsPerClientPerHour; mails > limit {
			t.Fatalf("the attackers had %d codes e-mailed, more than %d", mails, limit)
		}

		owner := Requester{Client: "203.0.113.7"}
		iss, err := e.store.StartLogin(e.ctx, testPortal, victim, "", owner, policy)
		if err != nil || iss.Code == "" {
			t.Fatalf("the owner got no code: %+v, %v", iss, err)
		}
		mails++
		if email, err := e.store.VerifyCode(e.ctx, testPortal, iss.Handle, iss.Code, policy); err != nil || email != victim {
			t.Fatalf("the owner could not sign in: %q, %v", email, err)
		}
		if mails > policy.MaxSendsPerHour {
			t.Fatalf("the inbox got %d codes in the hour, cap %d", mails, policy.MaxSendsPerHour)
		}
	})
}

// With more networks than the address's cap allows for, strangers can use up the address's
// e-mails for the hour, and a browser new to the address then gets none: that bounds the inbox.
// A browser that signed in to the address before has a quota of its own and still gets its
// code; its cookie means nothing for another address.
func TestKnownBrowserKeepsItsOwnQuota(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e *env) {
		policy := lockoutPolicy.normalized()
		const victim = "victim@example.com"
		owner := Requester{Client: "203.0.113.7"}
		iss, err := e.store.StartLogin(e.ctx, testPortal, victim, "", owner, policy)
		if err != nil || iss.Code == "" {
			t.Fatalf("first code = %+v, %v", iss, err)
		}
		if _, err := e.store.VerifyCode(e.ctx, testPortal, iss.Handle, iss.Code, policy); err != nil {
			t.Fatal(err)
		}
		browser, err := e.store.RememberBrowser(e.ctx, testPortal, victim, "")
		if err != nil || browser == "" {
			t.Fatalf("RememberBrowser = %q, %v", browser, err)
		}
		if again, err := e.store.RememberBrowser(e.ctx, testPortal, "other@example.com", browser); err != nil || again != browser {
			t.Fatalf("remembering another address keeps the cookie: %q, %v", again, err)
		}

		e.clock.Step(time.Hour) // a new window
		mails := 0
		for i := 0; i < 3*policy.MaxSendsPerHour; i++ {
			iss, err := e.store.StartLogin(e.ctx, testPortal, victim, "", Requester{Client: fmt.Sprintf("198.51.100.%d", i)}, policy)
			if err != nil {
				t.Fatal(err)
			}
			if iss.Code != "" {
				mails++
			}
		}
		if mails != policy.MaxSendsPerHour {
			t.Fatalf("%d codes e-mailed to many networks, want the address's cap %d", mails, policy.MaxSendsPerHour)
		}
		if iss, err := e.store.StartLogin(e.ctx, testPortal, victim, "", owner, policy); err != nil || iss.Code != "" {
			t.Fatalf("a browser new to the address got a code past the cap: %+v, %v", iss, err)
		}
		// Another address's cookie is no pass for this one.
		stranger, err := e.store.RememberBrowser(e.ctx, testPortal, "attacker@example.com", "")
		if err != nil {
			t.Fatal(err)
		}
		if iss, err := e.store.StartLogin(e.ctx, testPortal, victim, "", Requester{Client: "198.51.100.200", Browser: stranger}, policy); err != nil || iss.Code != "" {
			t.Fatalf("another address's browser got a code past the cap: %+v, %v", iss, err)
		}

		known := Requester{Client: "192.0.2.50", Browser: browser} // the owner, on another network
		iss, err = e.store.StartLogin(e.ctx, testPortal, victim, "", known, policy)
		if err != nil || iss.Code == "" {
			t.Fatalf("the owner's browser got no code: %+v, %v", iss, err)
		}
		if email, err := e.store.VerifyCode(e.ctx, testPortal, iss.Handle, iss.Code, policy); err != nil || email != victim {
			t.Fatalf("the owner could not sign in: %q, %v", email, err)
		}
		// Its quota is its own and capped like a client's.
		sent := 1
		for i := 0; i < 5; i++ {
			if iss, err := e.store.StartLogin(e.ctx, testPortal, victim, "", known, policy); err == nil && iss.Code != "" {
				sent++
			}
		}
		if sent != policy.MaxSendsPerClientPerHour {
			t.Fatalf("the known browser had %d codes in the hour, cap %d", sent, policy.MaxSendsPerClientPerHour)
		}
		// Remembered for KnownBrowserTTL after its last code sign-in, then new again.
		e.clock.Step(KnownBrowserTTL)
		for i := 0; i < 3*policy.MaxSendsPerHour; i++ {
			if _, err := e.store.StartLogin(e.ctx, testPortal, victim, "", Requester{Client: fmt.Sprintf("198.51.100.%d", i)}, policy); err != nil {
				t.Fatal(err)
			}
		}
		if iss, err := e.store.StartLogin(e.ctx, testPortal, victim, "", known, policy); err != nil || iss.Code != "" {
			t.Fatalf("a browser forgotten after %v still has its own quota: %+v, %v", KnownBrowserTTL, iss, err)
		}
	})
}

// A refused bucket gives back the hits the buckets before it took.
func TestAllowAllRefundsTheBucketsItPassed(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e *env) {
		one := Limit{Hits: 1, Window: time.Hour}
		if ok, _, err := e.store.Allow(e.ctx, "full", one); !ok || err != nil {
			t.Fatal(ok, err)
		}
		ok, retry, err := e.store.AllowAll(e.ctx, []string{"client", "full"}, []Limit{one, one})
		if ok || err != nil || retry <= 0 {
			t.Fatalf("AllowAll over a full bucket = %v, %v, %v", ok, retry, err)
		}
		if ok, _, err := e.store.Allow(e.ctx, "client", one); !ok || err != nil {
			t.Fatalf("the refunded bucket refused: %v, %v", ok, err)
		}
		if ok, _, _ := e.store.Allow(e.ctx, "client", one); ok {
			t.Fatal("the bucket allowed more than its limit")
		}
		if _, err := e.store.Resend(e.ctx, testPortal, "no-such-handle", jane, policy); !errors.Is(err, ErrNoChallenge) {
			t.Fatalf("resend of an unknown handle: %v", err)
		}
	})
}
