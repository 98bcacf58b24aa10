package chaos

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/portero-dev/portero/internal/testenv"
)

// Abuse (scenario 9) attacks a portal process from the outside, through HTTP only:
//   - distributed one-time-code guessing: attackers on many client addresses ask for codes for
//     a few customers' e-mail addresses and guess them; no guess may sign in, the limits must
//     answer, and the addresses' owners must still sign in afterwards;
//   - an IDOR sweep: a signed-in customer requests every route of the portal that takes an id
//     (read from the portal's route table) with another customer's ids; every answer must be
//     404, carry nothing of the other customer, and change nothing;
//   - session fixation: a cookie planted before sign-in is never the signed-in session;
//   - bodies over the limits and malformed multipart and JSON are refused, and store nothing;
//   - slow clients (slowloris: headers or a body dribbled in) are cut off by the server's
//     timeouts, and idle connections closed, while others are served.
func Abuse(ctx context.Context, cfg Config) Outcome {
	guesses := cfg.size(10000, 450)
	ips := cfg.size(100, 8)
	emails := cfg.size(10, 3)
	return run("Abuse", func(o *Outcome) error {
		sys, err := startSystem(ctx, cfg, "abuse", systemOptions{manager: true, mailpit: true})
		if err != nil {
			return err
		}
		defer sys.stop()
		u, err := sys.createPortal(ctx, "shop", nil)
		if err != nil {
			return err
		}
		p, err := sys.runPortal(ctx, "shop", u, portalStorage{dataDir: filepath.Join(sys.dir, "shop")})
		if err != nil {
			return err
		}
		m := sys.merchant(u)
		o.Faults = fmt.Sprintf("%d code guesses from %d addresses at %d e-mails; IDOR sweep; session fixation; oversized and malformed bodies; slow and idle clients", guesses, ips, emails)

		// Slow clients run beside everything else: they take the server's timeouts to finish.
		var slow slowResult
		slowDone := make(chan error, 1)
		go func() { slowDone <- slowClients(ctx, u, cfg.Full, &slow) }()

		cfg.step("abuse: IDOR sweep, fixation, bodies")
		if err := idorSweep(ctx, sys, u, m, o); err != nil {
			return fmt.Errorf("IDOR sweep: %w", err)
		}
		if err := fixation(ctx, u, m, o); err != nil {
			return fmt.Errorf("session fixation: %w", err)
		}
		if err := badBodies(ctx, u, m, o); err != nil {
			return fmt.Errorf("bodies: %w", err)
		}
		cfg.step("abuse: %d code guesses from %d addresses", guesses, ips)
		if err := codeGuessing(ctx, sys, u, m, guesses, ips, emails, o); err != nil {
			return fmt.Errorf("code guessing (portal log %s): %w", p.proc.LogPath, err)
		}
		if err := <-slowDone; err != nil {
			return fmt.Errorf("slow clients: %w", err)
		}
		slow.report(o)
		return nil
	})
}

// codeGuessing runs the distributed guessing. Each attacker is a browser on an address of its
// own; it asks for a code for one of the targets, guesses until the challenge locks or the
// limits answer, and starts again.
func codeGuessing(ctx context.Context, sys *system, u string, m merchant, guesses, ips, emails int, o *Outcome) error {
	targets := make([]string, emails)
	for i := range targets {
		targets[i] = fmt.Sprintf("victima%02d@chaos.example", i)
		if _, err := m.customer(ctx, targets[i], "Víctima"); err != nil {
			return err
		}
	}
	// The first address's owner signs in with a code before the attack: the browser is then
	// known for the address and keeps a quota of its own.
	owner := newBrowser(u, net.IPv4(127, 0, 9, 1))
	if err := codeSignIn(ctx, sys.mail, owner, targets[0]); err != nil {
		return fmt.Errorf("owner's sign-in before the attack: %w", err)
	}
	if _, err := owner.post(ctx, "/logout", nil); err != nil {
		return err
	}

	var made, wrong, locked, limited, loginLimited, other, breaches atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for a := range ips {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := mrand.New(mrand.NewPCG(uint64(a), 99))
			b := newBrowser(u, net.IPv4(127, 0, 20+byte(a/250), 1+byte(a%250)))
			for ctx.Err() == nil && made.Load() < int64(guesses) {
				target := targets[rng.IntN(len(targets))]
				if _, err := b.get(ctx, "/login"); err != nil {
					other.Add(1)
					return
				}
				p, err := b.post(ctx, "/login", url.Values{"email": {target}})
				if err != nil {
					other.Add(1)
					return
				}
				if p.Status == http.StatusTooManyRequests {
					loginLimited.Add(1)
				}
				for range 6 {
					if made.Add(1) > int64(guesses) {
						return
					}
					p, err := b.post(ctx, "/login/code", url.Values{"code": {fmt.Sprintf("%06d", rng.IntN(1000000))}})
					switch {
					case err != nil:
						other.Add(1)
					case signedIn(b):
						breaches.Add(1)
					case p.Status == http.StatusTooManyRequests:
						limited.Add(1)
					case strings.Contains(p.Body, "demasiados intentos") || strings.Contains(p.Body, "too many tries"):
						locked.Add(1)
					case p.Status == http.StatusUnprocessableEntity:
						wrong.Add(1)
					default:
						other.Add(1)
					}
				}
			}
		}()
	}
	wg.Wait()
	took := time.Since(start)

	// Guesses that could have matched: those spent on challenges a code was e-mailed for.
	db, err := openDB("sqlite://" + filepath.Join(sys.dir, "shop", "ledger.db"))
	if err != nil {
		return err
	}
	defer db.Close()
	effective, err := count(ctx, db, "SELECT COALESCE(SUM(attempts), 0) FROM auth_login_challenges WHERE sends > 0")
	if err != nil {
		return err
	}
	coded, err := count(ctx, db, "SELECT COUNT(*) FROM auth_login_challenges WHERE sends > 0")
	if err != nil {
		return err
	}
	sessions, err := count(ctx, db, "SELECT COUNT(*) FROM auth_sessions WHERE method = 'code'")
	if err != nil {
		return err
	}
	// After the attack, the owner's known browser still gets a code and signs in.
	ownerErr := codeSignIn(ctx, sys.mail, owner, targets[0])
	n := int(made.Load())
	if n > guesses {
		n = guesses
	}
	o.Attempted += n
	o.Completed += int(wrong.Load() + locked.Load() + limited.Load())
	o.check("no session from guessing", breaches.Load() == 0 && sessions == 0,
		"%d guesses signed in; %d code sessions in the database (the owner had signed out)", breaches.Load(), sessions)
	o.check("limits tripped", limited.Load() > 0 && locked.Load() > 0,
		"guesses: %d answered 429, %d on a locked challenge, %d wrong-code answers, %d other; code requests answered 429: %d",
		limited.Load(), locked.Load(), wrong.Load(), other.Load(), loginLimited.Load())
	o.check("guesses that could match are bounded", effective <= coded*5,
		"%d guesses on %d challenges with an e-mailed code (≤ 5 each): chance of any hit ≤ %.3f%%", effective, coded, 100*float64(effective)/1e6)
	o.check("the owner still signs in", ownerErr == nil, "owner's known browser after the attack: %v", errOrOK(ownerErr))
	o.figure("guessing: %d guesses in %s (%.0f/s) from %d addresses at %d addresses' codes", n, took.Round(time.Millisecond), float64(n)/took.Seconds(), ips, emails)
	return nil
}

func errOrOK(err error) string {
	if err == nil {
		return "signed in"
	}
	return err.Error()
}

// signedIn reports whether the browser holds the portal's session cookie.
func signedIn(b *browser) bool {
	u, _ := url.Parse(b.base)
	for _, c := range b.client.Jar.Cookies(u) {
		if c.Name == "portero" && c.Value != "" {
			return true
		}
	}
	return false
}

var sixDigits = regexp.MustCompile(`\b(\d{6})\b`)

// codeSignIn signs in with an e-mailed code, read from Mailpit.
func codeSignIn(ctx context.Context, mail *testenv.Mailpit, b *browser, email string) error {
	before, err := mail.Messages(email)
	if err != nil {
		return err
	}
	if _, err := b.get(ctx, "/login"); err != nil {
		return err
	}
	p, err := b.post(ctx, "/login", url.Values{"email": {email}})
	if err != nil {
		return err
	}
	if p.Status != http.StatusOK {
		return fmt.Errorf("asking for a code: %d", p.Status)
	}
	var code string
	deadline := time.Now().Add(30 * time.Second)
	for code == "" && time.Now().Before(deadline) {
		msgs, err := mail.Messages(email)
		if err != nil {
			return err
		}
		if len(msgs) > len(before) {
			m, err := mail.Message(msgs[0].ID) // newest first
			if err != nil {
				return err
			}
			if sm := sixDigits.FindStringSubmatch(m.Text); sm != nil {
				code = sm[1]
			}
		}
		waitFor(ctx, 100*time.Millisecond)
	}
	if code == "" {
		return errors.New("no code e-mail arrived within 30 s")
	}
	if _, err := b.post(ctx, "/login/code", url.Values{"code": {code}}); err != nil {
		return err
	}
	if !signedIn(b) {
		return errors.New("the e-mailed code did not sign in")
	}
	return nil
}

// idorRoutes reads the portal's route table (portal/web/web.go) for the routes that take an
// id, so a route added later is swept too, or fails the check until the sweep knows its kind.
func idorRoutes(root string) ([]string, error) {
	b, err := os.ReadFile(filepath.Join(root, "portal", "web", "web.go"))
	if err != nil {
		return nil, err
	}
	re := regexp.MustCompile(`m\.Handle(?:Func)?\("((?:GET|POST) /[^"]*\{id\}[^"]*)"`)
	var out []string
	for _, m := range re.FindAllStringSubmatch(string(b), -1) {
		out = append(out, m[1])
	}
	if len(out) == 0 {
		return nil, errors.New("no route with {id} found in portal/web/web.go")
	}
	return out, nil
}

// idorSweep signs customer A in and requests every id route with customer B's ids.
func idorSweep(ctx context.Context, sys *system, u string, m merchant, o *Outcome) error {
	mk := func(email, name string) (cust, method, sub, pay string, err error) {
		if cust, err = m.customer(ctx, email, name); err != nil {
			return
		}
		var out idJSON
		if err = m.call(ctx, http.MethodPost, "/customers/"+cust+"/payment_methods", map[string]any{"type": "card",
			"card": map[string]any{"number": "5555555555554444", "exp_month": 11, "exp_year": time.Now().Year() + 2, "cvc": "321"}}, &out); err != nil {
			return
		}
		method = out.ID
		if sub, err = m.subscription(ctx, cust); err != nil {
			return
		}
		var p idJSON
		p, err = m.payment(ctx, cust, "idor-"+cust, 77000)
		pay = p.ID
		return
	}
	a, _, aSub, _, err := mk("ana@chaos.example", "Ana Atacante")
	if err != nil {
		return err
	}
	bCust, bMethod, bSub, bPay, err := mk("beto@chaos.example", "Beto Víctima")
	if err != nil {
		return err
	}
	link, err := m.session(ctx, a)
	if err != nil {
		return err
	}
	br := newBrowser(u, net.IPv4(127, 0, 9, 2))
	if err := br.openLink(ctx, link); err != nil {
		return err
	}
	routes, err := idorRoutes(sys.cfg.Root)
	if err != nil {
		return err
	}
	dbPath := "sqlite://" + filepath.Join(sys.dir, "shop", "ledger.db")
	db, err := openDB(dbPath)
	if err != nil {
		return err
	}
	defer db.Close()
	state := func() (string, error) {
		var s string
		err := db.QueryRowContext(ctx, `SELECT (SELECT COUNT(*) FROM payment_methods WHERE detached_at IS NULL AND customer_id = `+lit(bCust)+`)
			|| '/' || (SELECT status || cancel_at_period_end || COALESCE(payment_method_id, '') FROM subscriptions WHERE id = `+lit(bSub)+`)
			|| '/' || (SELECT status || attempt_count FROM payments WHERE id = `+lit(bPay)+`)`).Scan(&s)
		return s, err
	}
	before, err := state()
	if err != nil {
		return err
	}
	secrets := []string{"beto@chaos.example", "Beto", "4444", bCust, bMethod, bSub, bPay}
	var not404, leaked, unknown []string
	requests := 0
	for _, r := range routes {
		method, path, _ := strings.Cut(r, " ")
		var id string
		switch {
		case strings.HasPrefix(path, "/methods/"):
			id = bMethod
		case strings.HasPrefix(path, "/subscriptions/"):
			id = bSub
		case strings.HasPrefix(path, "/payments/"):
			id = bPay
		default:
			unknown = append(unknown, r)
			continue
		}
		target := strings.Replace(path, "{id}", id, 1)
		form := url.Values{"to": {"top"}, "method": {bMethod}, "reason": {"idor"}, "type": {"wallet"}, "wallet": {"mercadopago"}}
		var p page
		if method == http.MethodGet {
			p, err = br.get(ctx, target)
		} else {
			p, err = br.post(ctx, target, form)
		}
		requests++
		if err != nil {
			return err
		}
		if p.Status != http.StatusNotFound {
			not404 = append(not404, fmt.Sprintf("%s %s → %d", method, path, p.Status))
		}
		for _, s := range secrets {
			if strings.Contains(p.Body, s) {
				leaked = append(leaked, fmt.Sprintf("%s %s shows %q", method, path, s))
			}
		}
	}
	// A's own subscription pointed at B's method: the reference inside the form is checked too.
	p, err := br.post(ctx, "/subscriptions/"+aSub+"/method", url.Values{"method": {bMethod}})
	requests++
	if err != nil {
		return err
	}
	if p.Status != http.StatusNotFound && p.Status != http.StatusUnprocessableEntity {
		not404 = append(not404, fmt.Sprintf("POST /subscriptions/{own}/method with the other's method → %d", p.Status))
	}
	after, err := state()
	if err != nil {
		return err
	}
	var attached int
	if attached, err = count(ctx, db, "SELECT COUNT(*) FROM subscriptions WHERE payment_method_id = "+lit(bMethod)+" AND id = "+lit(aSub)); err != nil {
		return err
	}
	o.Attempted += requests
	o.Completed += requests - len(not404)
	o.check("IDOR: 404 on every id route", len(not404) == 0 && len(unknown) == 0,
		"%d routes with an id swept with the other customer's ids; not 404: %v; routes the sweep has no id for: %v", len(routes), not404, unknown)
	o.check("IDOR: nothing leaked", len(leaked) == 0, "%d bodies with the other customer's data %v", len(leaked), leaked)
	o.check("IDOR: nothing changed", before == after && attached == 0, "the other customer's state %s → %s; own subscription on the other's method: %d", before, after, attached)
	return nil
}

// fixation plants cookies in a victim's browser before it signs in through a link.
func fixation(ctx context.Context, u string, m merchant, o *Outcome) error {
	mallory, err := m.customer(ctx, "mallory@chaos.example", "Mallory")
	if err != nil {
		return err
	}
	victim, err := m.customer(ctx, "vera@chaos.example", "Vera Víctima")
	if err != nil {
		return err
	}
	// The attacker's own valid session, and a made-up value.
	att := newBrowser(u, net.IPv4(127, 0, 9, 3))
	link, err := m.session(ctx, mallory)
	if err != nil {
		return err
	}
	if err := att.openLink(ctx, link); err != nil {
		return err
	}
	base, _ := url.Parse(u)
	var attackerCookie string
	for _, c := range att.client.Jar.Cookies(base) {
		if c.Name == "portero" {
			attackerCookie = c.Value
		}
	}
	held := 0
	for _, planted := range []string{attackerCookie, "planted-" + randomHex(16)} {
		vb := newBrowser(u, net.IPv4(127, 0, 9, 4))
		vb.client.Jar.SetCookies(base, []*http.Cookie{{Name: "portero", Value: planted, Path: "/"}})
		vlink, err := m.session(ctx, victim)
		if err != nil {
			return err
		}
		if err := vb.openLink(ctx, vlink); err != nil {
			return err
		}
		var now string
		for _, c := range vb.client.Jar.Cookies(base) {
			if c.Name == "portero" {
				now = c.Value
			}
		}
		// The planted value, replayed by the attacker, must not open the victim's account.
		ab := newBrowser(u, net.IPv4(127, 0, 9, 5))
		ab.client.Jar.SetCookies(base, []*http.Cookie{{Name: "portero", Value: planted, Path: "/"}})
		p, err := ab.get(ctx, "/billing")
		if err != nil {
			return err
		}
		if now != planted && !strings.Contains(p.Body, "Vera") {
			held++
		}
	}
	o.Attempted += 2
	o.Completed += held
	o.check("session fixation: a planted cookie is never elevated", held == 2,
		"%d of 2 plants (the attacker's own session, a made-up value) left the victim on a new session the plant cannot open", held)
	return nil
}

// badBodies sends what a form or the API must refuse: too large, malformed multipart, malformed
// JSON. Nothing may be stored and the portal must keep serving.
func badBodies(ctx context.Context, u string, m merchant, o *Outcome) error {
	countCustomers := func() (int, error) {
		var out struct {
			Data []map[string]any `json:"data"`
		}
		err := m.call(ctx, http.MethodGet, "/customers?limit=100", nil, &out)
		return len(out.Data), err
	}
	before, err := countCustomers()
	if err != nil {
		return err
	}
	type probe struct {
		name, method, path, ctype string
		body                      string
		api                       bool
		want                      []int
	}
	big := strings.Repeat("a", 2<<20)
	probes := []probe{
		{"form body of 2 MiB", http.MethodPost, "/login", "application/x-www-form-urlencoded", "email=" + big, false, []int{http.StatusRequestEntityTooLarge, http.StatusBadRequest}},
		{"malformed multipart", http.MethodPost, "/login", "multipart/form-data; boundary=xyz", "--xyz\r\nContent-Disposition: form-data; name=\"email\"\r\n\r\nx@y", false, []int{http.StatusBadRequest, http.StatusUnsupportedMediaType, http.StatusForbidden}},
		{"API body of 2 MiB", http.MethodPost, "/api/v1/customers", "application/json", `{"email":"big@chaos.example","name":"` + big + `"}`, true, []int{http.StatusRequestEntityTooLarge}},
		{"API malformed JSON", http.MethodPost, "/api/v1/customers", "application/json", `{"email": "x@chaos.example", "name": `, true, []int{http.StatusBadRequest}},
		{"API JSON with unknown field", http.MethodPost, "/api/v1/customers", "application/json", `{"email": "x@chaos.example", "nmae": "typo"}`, true, []int{http.StatusBadRequest, http.StatusUnprocessableEntity}},
		{"API wrong content type", http.MethodPost, "/api/v1/customers", "text/plain", `{"email": "x@chaos.example"}`, true, []int{http.StatusUnsupportedMediaType, http.StatusBadRequest}},
	}
	var bad []string
	c := &http.Client{Timeout: 30 * time.Second}
	for _, p := range probes {
		req, _ := http.NewRequestWithContext(ctx, p.method, strings.TrimSuffix(u, "/")+p.path, strings.NewReader(p.body))
		req.Header.Set("Content-Type", p.ctype)
		if p.api {
			req.Header.Set("Authorization", "Bearer "+m.key)
			req.Header.Set("Idempotency-Key", randomHex(8))
		}
		resp, err := c.Do(req)
		if err != nil {
			bad = append(bad, fmt.Sprintf("%s: %v", p.name, err))
			continue
		}
		resp.Body.Close()
		ok := false
		for _, w := range p.want {
			ok = ok || resp.StatusCode == w
		}
		if !ok {
			bad = append(bad, fmt.Sprintf("%s → %d", p.name, resp.StatusCode))
		}
	}
	after, err := countCustomers()
	if err != nil {
		return err
	}
	o.Attempted += len(probes)
	o.Completed += len(probes) - len(bad)
	o.check("oversized and malformed bodies refused", len(bad) == 0 && after == before,
		"%d probes; wrong answers %v; customers %d → %d", len(probes), bad, before, after)
	return nil
}

// slowResult is what the slow clients saw.
type slowResult struct {
	headerConns, headerCut int
	headerMax              time.Duration
	bodyCut                bool
	bodyAfter              time.Duration
	idleCut                bool
	idleAfter              time.Duration
	servedMeanwhile        int
	full                   bool
}

// slowClients dribbles headers (slowloris) on many connections and a body on one, and leaves
// one connection idle (full run: the idle timeout is two minutes), while a normal client keeps
// being served.
func slowClients(ctx context.Context, u string, full bool, r *slowResult) error {
	r.full = full
	addr := strings.TrimSuffix(strings.TrimPrefix(u, "http://"), "/")
	r.headerConns = 50
	var wg sync.WaitGroup
	var mu sync.Mutex
	cutAfter := func(c net.Conn, start time.Time, limit time.Duration, dribble func(i int) string) (bool, time.Duration) {
		rd := bufio.NewReader(c)
		done := make(chan struct{})
		go func() { // the server closing is seen as a read that ends
			_, _ = rd.ReadString(0)
			close(done)
		}()
		for i := 0; ; i++ {
			select {
			case <-done:
				return true, time.Since(start)
			case <-time.After(time.Second):
			}
			if time.Since(start) > limit {
				return false, time.Since(start)
			}
			if _, err := c.Write([]byte(dribble(i))); err != nil {
				<-done
				return true, time.Since(start)
			}
		}
	}
	for i := range r.headerConns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 30, byte(1+i))}}).DialContext(ctx, "tcp", addr)
			if err != nil {
				return
			}
			defer c.Close()
			start := time.Now()
			_, _ = c.Write([]byte("GET / HTTP/1.1\r\nHost: " + addr + "\r\n"))
			cut, after := cutAfter(c, start, 30*time.Second, func(int) string { return "X-Slow: 1\r\n" })
			mu.Lock()
			if cut {
				r.headerCut++
			}
			r.headerMax = max(r.headerMax, after)
			mu.Unlock()
		}()
	}
	wg.Add(1)
	go func() { // a body of 1000 bytes, one a second
		defer wg.Done()
		c, err := net.Dial("tcp", addr)
		if err != nil {
			return
		}
		defer c.Close()
		start := time.Now()
		_, _ = c.Write([]byte("POST /login HTTP/1.1\r\nHost: " + addr + "\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 1000\r\n\r\n"))
		cut, after := cutAfter(c, start, 60*time.Second, func(int) string { return "a" })
		mu.Lock()
		r.bodyCut, r.bodyAfter = cut, after
		mu.Unlock()
	}()
	if full {
		wg.Add(1)
		go func() { // a kept-alive connection left idle after one request
			defer wg.Done()
			c, err := net.Dial("tcp", addr)
			if err != nil {
				return
			}
			defer c.Close()
			_, _ = c.Write([]byte("GET /healthz HTTP/1.1\r\nHost: " + addr + "\r\n\r\n"))
			rd := bufio.NewReader(c)
			resp, err := http.ReadResponse(rd, nil)
			if err != nil {
				return
			}
			resp.Body.Close()
			start := time.Now()
			_ = c.SetReadDeadline(time.Now().Add(4 * time.Minute))
			_, err = rd.ReadByte()
			mu.Lock()
			r.idleCut, r.idleAfter = err != nil && !isTimeout(err), time.Since(start)
			mu.Unlock()
		}()
	}
	served := make(chan struct{})
	go func() {
		defer close(served)
		c := &http.Client{Timeout: 5 * time.Second}
		for i := 0; i < 20; i++ {
			resp, err := c.Get(u + "healthz")
			if err == nil {
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					mu.Lock()
					r.servedMeanwhile++
					mu.Unlock()
				}
			}
			waitFor(ctx, 200*time.Millisecond)
		}
	}()
	wg.Wait()
	<-served
	return ctx.Err()
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func (r *slowResult) report(o *Outcome) {
	o.Attempted += r.headerConns + 1
	o.Completed += r.headerCut
	if r.bodyCut {
		o.Completed++
	}
	o.check("slowloris: dribbled headers cut by the read-header timeout", r.headerCut == r.headerConns && r.headerMax < 10*time.Second,
		"%d of %d connections cut, the last after %s (ReadHeaderTimeout 5 s)", r.headerCut, r.headerConns, r.headerMax.Round(100*time.Millisecond))
	o.check("slow body cut by the read timeout", r.bodyCut && r.bodyAfter < 25*time.Second,
		"cut=%v after %s (ReadTimeout 15 s)", r.bodyCut, r.bodyAfter.Round(100*time.Millisecond))
	o.check("others served meanwhile", r.servedMeanwhile == 20, "%d of 20 health checks answered 200 during the slow clients", r.servedMeanwhile)
	if r.full {
		o.check("idle connection closed by the idle timeout", r.idleCut && r.idleAfter < 3*time.Minute,
			"closed=%v after %s (IdleTimeout 2 min)", r.idleCut, r.idleAfter.Round(time.Second))
	}
}
