package auth

import (
	"errors"
	"testing"
	"time"
)

func TestSessionLifetimes(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e *env) {
		cookie, sess, err := e.store.CreateSession(e.ctx, NewSession{Portal: testPortal, CustomerID: "cus_1", Method: MethodCode, Email: "jane@example.com"})
		if err != nil {
			t.Fatal(err)
		}
		if sess.ID == cookie || sess.CSRFToken == "" || !sess.ExpiresAt.Equal(e.clock.Now().Add(DefaultAbsoluteTimeout)) {
			t.Fatalf("session = %+v", sess)
		}
		got, err := e.store.Session(e.ctx, testPortal, cookie)
		if err != nil || got.CustomerID != "cus_1" || got.CSRFToken != sess.CSRFToken || got.Method != MethodCode {
			t.Fatalf("Session = %+v, %v", got, err)
		}
		if _, err := e.store.Session(e.ctx, "default/other", cookie); !errors.Is(err, ErrNoSession) {
			t.Fatalf("other portal: %v", err)
		}
		if _, err := e.store.Session(e.ctx, testPortal, cookie+"x"); !errors.Is(err, ErrNoSession) {
			t.Fatalf("wrong cookie: %v", err)
		}
		// Used every 20 minutes, the session lives until its absolute timeout.
		for e.clock.Now().Add(20 * time.Minute).Before(sess.ExpiresAt) {
			e.clock.Step(20 * time.Minute)
			if _, err := e.store.Session(e.ctx, testPortal, cookie); err != nil {
				t.Fatalf("active session ended at %s: %v", e.clock.Now(), err)
			}
		}
		e.clock.SetTime(sess.ExpiresAt)
		if _, err := e.store.Session(e.ctx, testPortal, cookie); !errors.Is(err, ErrNoSession) {
			t.Fatalf("past absolute timeout: %v", err)
		}

		// Idle timeout.
		cookie, _, err = e.store.CreateSession(e.ctx, NewSession{Portal: testPortal, CustomerID: "cus_1", Method: MethodCode})
		if err != nil {
			t.Fatal(err)
		}
		e.clock.Step(DefaultIdleTimeout - time.Second)
		if _, err := e.store.Session(e.ctx, testPortal, cookie); err != nil {
			t.Fatalf("before idle timeout: %v", err)
		}
		e.clock.Step(DefaultIdleTimeout)
		if _, err := e.store.Session(e.ctx, testPortal, cookie); !errors.Is(err, ErrNoSession) {
			t.Fatalf("after idle timeout: %v", err)
		}
	})
}

func TestLinkSessionsEndWithTheirPortalSession(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e *env) {
		notAfter := e.clock.Now().Add(time.Hour)
		link := NewSession{Portal: testPortal, CustomerID: "cus_1", Method: MethodLink, PortalSession: "ps-1", NotAfter: notAfter}
		c1, s1, err := e.store.CreateSession(e.ctx, link)
		if err != nil {
			t.Fatal(err)
		}
		if !s1.ExpiresAt.Equal(notAfter) {
			t.Fatalf("expiresAt = %s, want the PortalSession's %s", s1.ExpiresAt, notAfter)
		}
		c2, _, err := e.store.CreateSession(e.ctx, link) // the same link exchanged twice
		if err != nil {
			t.Fatal(err)
		}
		c3, _, err := e.store.CreateSession(e.ctx, NewSession{Portal: testPortal, CustomerID: "cus_1", Method: MethodCode})
		if err != nil {
			t.Fatal(err)
		}
		n, err := e.store.EndLinkSessions(e.ctx, testPortal, "ps-1")
		if err != nil || n != 2 {
			t.Fatalf("EndLinkSessions = %d, %v", n, err)
		}
		for _, c := range []string{c1, c2} {
			if _, err := e.store.Session(e.ctx, testPortal, c); !errors.Is(err, ErrNoSession) {
				t.Fatalf("link session survived: %v", err)
			}
		}
		if _, err := e.store.Session(e.ctx, testPortal, c3); err != nil {
			t.Fatalf("unrelated session ended: %v", err)
		}
		// A link already past its expiry opens nothing.
		if _, _, err := e.store.CreateSession(e.ctx, NewSession{Portal: testPortal, CustomerID: "cus_1", Method: MethodLink, NotAfter: e.clock.Now()}); !errors.Is(err, ErrNoSession) {
			t.Fatalf("expired NotAfter: %v", err)
		}
	})
}

func TestChooseCustomerFlashAndSignOut(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e *env) {
		cookie, sess, err := e.store.CreateSession(e.ctx, NewSession{Portal: testPortal, Email: "shared@example.com", Method: MethodCode})
		if err != nil {
			t.Fatal(err)
		}
		if err := e.store.ChooseCustomer(e.ctx, sess.ID, "cus_2"); err != nil {
			t.Fatal(err)
		}
		if err := e.store.ChooseCustomer(e.ctx, sess.ID, "cus_3"); !errors.Is(err, ErrNoSession) {
			t.Fatalf("second choice: %v", err)
		}
		if err := e.store.SetFlash(e.ctx, sess.ID, "saved"); err != nil {
			t.Fatal(err)
		}
		got, err := e.store.Session(e.ctx, testPortal, cookie)
		if err != nil || got.CustomerID != "cus_2" || got.Flash != "saved" {
			t.Fatalf("Session = %+v, %v", got, err)
		}
		if err := e.store.ClearFlash(e.ctx, sess.ID); err != nil {
			t.Fatal(err)
		}
		if err := e.store.EndSession(e.ctx, sess.ID); err != nil {
			t.Fatal(err)
		}
		if _, err := e.store.Session(e.ctx, testPortal, cookie); !errors.Is(err, ErrNoSession) {
			t.Fatalf("after sign-out: %v", err)
		}
	})
}

func TestRateLimitWindows(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e *env) {
		l := Limit{Hits: 3, Window: 10 * time.Minute}
		for i := 0; i < 3; i++ {
			if ok, _, err := e.store.Allow(e.ctx, "ip:192.0.2.1", l); !ok || err != nil {
				t.Fatalf("hit %d refused: %v", i, err)
			}
		}
		ok, retry, err := e.store.Allow(e.ctx, "ip:192.0.2.1", l)
		if ok || err != nil || retry <= 0 || retry > l.Window {
			t.Fatalf("4th hit = %v, %s, %v", ok, retry, err)
		}
		if ok, _, _ := e.store.Allow(e.ctx, "ip:192.0.2.2", l); !ok {
			t.Fatal("another bucket was limited")
		}
		e.clock.Step(retry)
		if ok, _, _ := e.store.Allow(e.ctx, "ip:192.0.2.1", l); !ok {
			t.Fatal("the next window is still limited")
		}
	})
}

func TestReplicasShareKeysAndMigrationsAreSeparate(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e *env) {
		replica := e.open(t, Options{})
		pre := NewPreSession()
		if !replica.CheckPreSessionToken(pre, e.store.PreSessionToken(pre)) {
			t.Fatal("a replica does not accept the other's CSRF token")
		}
		if e.store.CheckPreSessionToken(pre, e.store.PreSessionToken(NewPreSession())) || e.store.CheckPreSessionToken(pre, "") {
			t.Fatal("a token for another cookie was accepted")
		}
		peppered := e.open(t, Options{Pepper: []byte("pepper")})
		if peppered.CheckPreSessionToken(pre, e.store.PreSessionToken(pre)) {
			t.Fatal("the pepper does not change the keys")
		}
		// auth's versions are in their own table; the ledger's table is untouched by them.
		var n int
		if err := e.store.queryRow(e.ctx, "SELECT COUNT(*) FROM "+versionTable+" WHERE version_id = 1").Scan(&n); err != nil || n != 1 {
			t.Fatalf("auth version table: %d, %v", n, err)
		}
		if err := e.store.Sweep(e.ctx); err != nil {
			t.Fatal(err)
		}
	})
}

func TestSweepRemovesWhatExpired(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e *env) {
		if _, _, err := e.store.CreateSession(e.ctx, NewSession{Portal: testPortal, CustomerID: "cus_1", Method: MethodCode}); err != nil {
			t.Fatal(err)
		}
		if _, err := e.store.StartLogin(e.ctx, testPortal, "jane@example.com", "", jane, policy); err != nil {
			t.Fatal(err)
		}
		e.clock.Step(13 * time.Hour)
		if err := e.store.Sweep(e.ctx); err != nil {
			t.Fatal(err)
		}
		for _, table := range []string{"auth_sessions", "auth_login_challenges"} {
			var n int
			if err := e.store.queryRow(e.ctx, "SELECT COUNT(*) FROM "+table).Scan(&n); err != nil || n != 0 {
				t.Fatalf("%s: %d rows left, %v", table, n, err)
			}
		}
	})
}
