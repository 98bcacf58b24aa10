package auth

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

const testPortal = "default/acme"

var policy = CodePolicy{Length: 6, TTL: 10 * time.Minute, MaxAttempts: 3, ResendCooldown: 30 * time.Second,
	MaxSendsPerHour: 6, MaxSendsPerClientPerHour: 4}

// jane is the client most tests ask from.
var jane = Requester{Client: "203.0.113.7"}

func wrong(code string) string {
	// The same length, never equal: shift every digit by one.
	b := []byte(code)
	for i := range b {
		b[i] = '0' + (b[i]-'0'+1)%10
	}
	return string(b)
}

func TestCodeIsAcceptedOnceAndStoredHashed(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e *env) {
		iss, err := e.store.StartLogin(e.ctx, testPortal, "jane@example.com", "", jane, policy)
		if err != nil {
			t.Fatal(err)
		}
		if len(iss.Code) != 6 || iss.Handle == "" || iss.Email != "jane@example.com" {
			t.Fatalf("issue = %+v", iss)
		}
		// Neither the code nor the handle is in the database; only hashes are.
		var hash, id string
		if err := e.store.queryRow(e.ctx, "SELECT id, code_hash FROM auth_login_challenges").Scan(&id, &hash); err != nil {
			t.Fatal(err)
		}
		if strings.Contains(hash, iss.Code) || id == iss.Handle || id != hashHandle(iss.Handle) {
			t.Fatalf("stored id %q / hash %q reveal the handle or code", id, hash)
		}
		// Another portal's browser cannot use the challenge.
		if _, err := e.store.VerifyCode(e.ctx, "default/other", iss.Handle, iss.Code, policy); !errors.Is(err, ErrNoChallenge) {
			t.Fatalf("other portal: err = %v", err)
		}
		email, err := e.store.VerifyCode(e.ctx, testPortal, iss.Handle, iss.Code, policy)
		if err != nil || email != "jane@example.com" {
			t.Fatalf("VerifyCode = %q, %v", email, err)
		}
		if _, err := e.store.VerifyCode(e.ctx, testPortal, iss.Handle, iss.Code, policy); !errors.Is(err, ErrNoChallenge) {
			t.Fatalf("second use: err = %v, want ErrNoChallenge", err)
		}
	})
}

func TestWrongCodesLockTheChallenge(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e *env) {
		iss, err := e.store.StartLogin(e.ctx, testPortal, "jane@example.com", "", jane, policy)
		if err != nil {
			t.Fatal(err)
		}
		for want := 2; want >= 1; want-- {
			_, err := e.store.VerifyCode(e.ctx, testPortal, iss.Handle, wrong(iss.Code), policy)
			var w *WrongCodeError
			if !errors.As(err, &w) || w.Remaining != want || !errors.Is(err, ErrWrongCode) {
				t.Fatalf("wrong code: err = %v, want %d remaining", err, want)
			}
		}
		if _, err := e.store.VerifyCode(e.ctx, testPortal, iss.Handle, wrong(iss.Code), policy); !errors.Is(err, ErrLocked) {
			t.Fatalf("third wrong code: err = %v, want ErrLocked", err)
		}
		// Locked means locked: the right code no longer works and a resend does not unlock.
		if _, err := e.store.VerifyCode(e.ctx, testPortal, iss.Handle, iss.Code, policy); !errors.Is(err, ErrLocked) {
			t.Fatalf("right code after lock: err = %v, want ErrLocked", err)
		}
		e.clock.Step(time.Minute)
		if iss2, err := e.store.Resend(e.ctx, testPortal, iss.Handle, jane, policy); !errors.Is(err, ErrLocked) || iss2.Code != "" {
			t.Fatalf("resend after lock = %+v, %v", iss2, err)
		}
		c, err := e.store.Challenge(e.ctx, testPortal, iss.Handle, policy)
		if err != nil || !c.Locked || c.Remaining != 0 {
			t.Fatalf("Challenge = %+v, %v", c, err)
		}
	})
}

func TestParallelGuessesNeverExceedMaxAttempts(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e *env) {
		iss, err := e.store.StartLogin(e.ctx, testPortal, "jane@example.com", "", jane, policy)
		if err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		var mu sync.Mutex
		compared := 0
		for i := 0; i < 20; i++ {
			wg.Add(1)
			go func(i int) {
				defer wg.Done()
				_, err := e.store.VerifyCode(e.ctx, testPortal, iss.Handle, fmt.Sprintf("%06d", i), policy)
				if errors.Is(err, ErrWrongCode) || err == nil {
					mu.Lock()
					compared++
					mu.Unlock()
				}
			}(i)
		}
		wg.Wait()
		if compared > policy.MaxAttempts {
			t.Fatalf("%d guesses were compared, max %d", compared, policy.MaxAttempts)
		}
	})
}

func TestCodeExpires(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e *env) {
		iss, err := e.store.StartLogin(e.ctx, testPortal, "jane@example.com", "", jane, policy)
		if err != nil {
			t.Fatal(err)
		}
		e.clock.Step(policy.TTL)
		if _, err := e.store.VerifyCode(e.ctx, testPortal, iss.Handle, iss.Code, policy); !errors.Is(err, ErrCodeExpired) {
			t.Fatalf("expired code: err = %v", err)
		}
		// A resend puts a fresh code with a fresh lifetime on the same challenge.
		iss2, err := e.store.Resend(e.ctx, testPortal, iss.Handle, jane, policy)
		if err != nil || iss2.Code == "" || iss2.Handle != iss.Handle {
			t.Fatalf("resend = %+v, %v", iss2, err)
		}
		if _, err := e.store.VerifyCode(e.ctx, testPortal, iss.Handle, iss.Code, policy); err == nil && iss.Code != iss2.Code {
			t.Fatal("the replaced code still works")
		}
	})
}

func TestCooldownAndHourlyCaps(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e *env) {
		first, err := e.store.StartLogin(e.ctx, testPortal, "jane@example.com", "", jane, policy)
		if err != nil || first.Code == "" || first.Again {
			t.Fatalf("first = %+v, %v", first, err)
		}
		// The same browser asking again within the cooldown keeps its challenge, gets no new code.
		again, err := e.store.StartLogin(e.ctx, testPortal, "jane@example.com", first.Handle, jane, policy)
		if err != nil || again.Handle != first.Handle || again.Code != "" || again.RetryAfter != policy.ResendCooldown {
			t.Fatalf("again = %+v, %v", again, err)
		}
		// The cooldown is the challenge's: another browser gets its own challenge and code, and
		// neither code opens the other's challenge.
		other, err := e.store.StartLogin(e.ctx, testPortal, "jane@example.com", "", jane, policy)
		if err != nil || other.Handle == first.Handle || other.Code == "" {
			t.Fatalf("other = %+v, %v", other, err)
		}
		if _, err := e.store.VerifyCode(e.ctx, testPortal, other.Handle, first.Code, policy); !errors.Is(err, ErrWrongCode) && first.Code != other.Code {
			t.Fatalf("first browser's code in the second browser: err = %v", err)
		}
		// Another address is independent.
		if iss, err := e.store.StartLogin(e.ctx, testPortal, "john@example.com", "", jane, policy); err != nil || iss.Code == "" {
			t.Fatalf("other address = %+v, %v", iss, err)
		}
		// One client gets MaxSendsPerClientPerHour e-mails for an address, whatever it asks.
		sent := 2
		for i := 0; i < 4; i++ {
			e.clock.Step(policy.ResendCooldown)
			iss, err := e.store.Resend(e.ctx, testPortal, first.Handle, jane, policy)
			if err != nil {
				t.Fatal(err)
			}
			if iss.Code != "" {
				sent++
			}
		}
		if sent != policy.MaxSendsPerClientPerHour {
			t.Fatalf("%d codes sent to one client in an hour, cap %d", sent, policy.MaxSendsPerClientPerHour)
		}
		// Other clients share what is left of the address's cap, and no more.
		for i := 0; i < 4; i++ {
			iss, err := e.store.StartLogin(e.ctx, testPortal, "jane@example.com", "", Requester{Client: fmt.Sprintf("198.51.100.%d", i)}, policy)
			if err != nil {
				t.Fatal(err)
			}
			if iss.Code != "" {
				sent++
			} else if iss.RetryAfter <= 0 || iss.RetryAfter > time.Hour {
				t.Fatalf("refused without a sensible wait: %+v", iss)
			}
		}
		if sent != policy.MaxSendsPerHour {
			t.Fatalf("%d codes sent to the address in an hour, cap %d", sent, policy.MaxSendsPerHour)
		}
		// The next hour's window allows codes again, even on an expired challenge.
		e.clock.Step(time.Hour)
		if iss, err := e.store.Resend(e.ctx, testPortal, first.Handle, jane, policy); err != nil || iss.Code == "" {
			t.Fatalf("next hour: %+v, %v", iss, err)
		}
	})
}

// Asking again while the code is good for at least half its lifetime sends the same code (a
// delayed first e-mail still works); later, a new code with a full lifetime replaces it.
func TestResendSendsTheStillValidCode(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e *env) {
		first, err := e.store.StartLogin(e.ctx, testPortal, "jane@example.com", "", jane, policy)
		if err != nil || first.Code == "" {
			t.Fatalf("first = %+v, %v", first, err)
		}
		e.clock.Step(policy.ResendCooldown)
		same, err := e.store.Resend(e.ctx, testPortal, first.Handle, jane, policy)
		if err != nil || same.Code != first.Code || !same.Again {
			t.Fatalf("resend within half the lifetime = %+v, %v; want the same code again", same, err)
		}
		e.clock.Step(policy.TTL/2 - policy.ResendCooldown + time.Second)
		fresh, err := e.store.Resend(e.ctx, testPortal, first.Handle, jane, policy)
		if err != nil || fresh.Code == "" || fresh.Again {
			t.Fatalf("resend past half the lifetime = %+v, %v; want a new code", fresh, err)
		}
		// The new code has a full lifetime; the one it replaced no longer works.
		e.clock.Step(policy.TTL - time.Second)
		if first.Code != fresh.Code {
			if _, err := e.store.VerifyCode(e.ctx, testPortal, first.Handle, first.Code, policy); !errors.Is(err, ErrWrongCode) {
				t.Fatalf("replaced code: err = %v", err)
			}
		}
		if email, err := e.store.VerifyCode(e.ctx, testPortal, first.Handle, fresh.Code, policy); err != nil || email != "jane@example.com" {
			t.Fatalf("new code near the end of its lifetime = %q, %v", email, err)
		}
	})
}

func TestUnknownAddressesTakeTheSamePath(t *testing.T) {
	// The store cannot know who is a customer: an address nobody has gets a challenge and a code
	// (which the web layer then does not send) exactly like a customer's.
	forEachEngine(t, func(t *testing.T, e *env) {
		iss, err := e.store.StartLogin(e.ctx, testPortal, "nobody@example.com", "", jane, policy)
		if err != nil || iss.Code == "" {
			t.Fatalf("issue = %+v, %v", iss, err)
		}
		if _, err := e.store.VerifyCode(e.ctx, testPortal, iss.Handle, wrong(iss.Code), policy); !errors.Is(err, ErrWrongCode) {
			t.Fatalf("err = %v", err)
		}
	})
}

func TestCodesAreUniformDigits(t *testing.T) {
	for n := 6; n <= 10; n++ {
		for _, v := range []uint64{0, 7, 1<<64 - 1} {
			d := digits(v, n)
			if _, ok := ParseCode(d, n); !ok || len(d) != n {
				t.Fatalf("digits(%d, %d) = %q", v, n, d)
			}
		}
	}
	if d := digits(42, 6); d != "000042" {
		t.Fatalf("leading zeros: %q", d)
	}
	// Codes of distinct challenges are distinct in practice, and every digit turns up in
	// every position.
	forEachEngine(t, func(t *testing.T, e *env) {
		seen := map[string]bool{}
		var pos [6][10]int
		for i := 0; i < 300; i++ {
			iss, err := e.store.StartLogin(e.ctx, testPortal, fmt.Sprintf("u%d@example.com", i), "", jane, policy)
			if err != nil || len(iss.Code) != 6 {
				t.Fatalf("issue %d = %+v, %v", i, iss, err)
			}
			seen[iss.Code] = true
			for j, c := range iss.Code {
				pos[j][c-'0']++
			}
		}
		if len(seen) < 295 {
			t.Fatalf("only %d distinct codes in 300", len(seen))
		}
		for j := range pos {
			for d, n := range pos[j] {
				if n == 0 {
					t.Fatalf("digit %d never appears in position %d", d, j)
				}
			}
		}
	})
}

// TestReleaseSend: a code whose e-mail could not go out holds neither the cooldown nor the caps
// (scenario 4 of the fault suite, chaos/: SMTP down, then back).
func TestReleaseSend(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e *env) {
		iss, err := e.store.StartLogin(e.ctx, testPortal, "jane@example.com", "", jane, policy)
		if err != nil || iss.Code == "" {
			t.Fatalf("StartLogin = %+v, %v", iss, err)
		}
		// Every send fails, as many times as the client's cap: each is given back.
		for i := range policy.MaxSendsPerClientPerHour + 1 {
			if err := e.store.ReleaseSend(e.ctx, testPortal, iss.Handle, jane, policy); err != nil {
				t.Fatal(err)
			}
			ch, err := e.store.Challenge(e.ctx, testPortal, iss.Handle, policy)
			if err != nil || ch.Sent || !ch.SendFailed || ch.RetryAfter != 0 {
				t.Fatalf("after a failed send %d: challenge %+v, %v", i, ch, err)
			}
			again, err := e.store.Resend(e.ctx, testPortal, iss.Handle, jane, policy)
			if err != nil || again.Code != iss.Code {
				t.Fatalf("resend %d right after a failed send: %+v, %v (want the same code, at once)", i, again, err)
			}
		}
		// The last one went out: it holds the cooldown as any send does, and works.
		ch, err := e.store.Challenge(e.ctx, testPortal, iss.Handle, policy)
		if err != nil || !ch.Sent || ch.SendFailed || ch.RetryAfter == 0 {
			t.Fatalf("after a send: %+v, %v", ch, err)
		}
		if email, err := e.store.VerifyCode(e.ctx, testPortal, iss.Handle, iss.Code, policy); err != nil || email != "jane@example.com" {
			t.Fatalf("VerifyCode = %q, %v", email, err)
		}
		// Releasing twice, or a consumed challenge, changes nothing.
		if err := e.store.ReleaseSend(e.ctx, testPortal, iss.Handle, jane, policy); !errors.Is(err, ErrNoChallenge) {
			t.Fatalf("release of a consumed challenge: %v", err)
		}
	})
}
