package auth

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"database/sql"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"time"
)

// CodePolicy is the portal's otp settings as they are at the time of the request, and the caps
// on code e-mails.
//
// The caps are shaped so that nobody else can keep an address's owner from signing in, while
// codes still cannot flood an inbox or be guessed at leisure:
//   - every guess counts against its challenge (one browser's login), never against the
//     address, so a stranger's wrong guesses lock only the stranger's challenge;
//   - the cooldown is per challenge too: a stranger asking again and again for the address
//     does not keep the owner's browser waiting;
//   - e-mails are capped per client (MaxSendsPerClientPerHour, counted per address and client
//     network) and per address (MaxSendsPerHour, all clients together), which is the bound on
//     the inbox; a browser that signed in to the address before (see RememberBrowser) has a
//     quota of its own outside the address's, so even a stranger with many networks who uses
//     up the address's e-mails cannot lock out the owner's browser;
//   - asking again while the code is still good for at least half its lifetime sends the same
//     code again instead of a new one, so a delayed e-mail still works and no new code to
//     guess is minted.
//
// Guesses at an address are therefore bounded by MaxAttempts per e-mailed challenge, whatever
// the number of clients; a new challenge matches nothing until a code is e-mailed for it.
type CodePolicy struct {
	// Length is the number of digits (6 to 10).
	Length int
	// TTL is how long a code works after it is issued.
	TTL time.Duration
	// MaxAttempts is how many tries a challenge gets; then it is locked.
	MaxAttempts int
	// ResendCooldown is the wait between two e-mails for the same challenge.
	ResendCooldown time.Duration
	// MaxSendsPerHour caps the code e-mails one address receives from all clients together,
	// except browsers that signed in to it before (default 15).
	MaxSendsPerHour int
	// MaxSendsPerClientPerHour caps the code e-mails one client gets sent to one address: a
	// client network (Requester.Client), or a browser that signed in to it before (default 3).
	MaxSendsPerClientPerHour int
}

func (p CodePolicy) normalized() CodePolicy {
	if p.Length < 6 || p.Length > 10 {
		p.Length = 6
	}
	if p.TTL <= 0 {
		p.TTL = 10 * time.Minute
	}
	if p.MaxAttempts < 1 {
		p.MaxAttempts = 5
	}
	if p.ResendCooldown < 0 {
		p.ResendCooldown = 0
	}
	if p.MaxSendsPerHour < 1 {
		p.MaxSendsPerHour = 15
	}
	if p.MaxSendsPerClientPerHour < 1 {
		p.MaxSendsPerClientPerHour = 3
	}
	return p
}

// Requester is who asks for a code.
type Requester struct {
	// Client identifies the client's network for the per-client cap: its IP address, or the
	// /64 of an IPv6 one (see the portal's clientIP). "" shares one bucket with every other "".
	Client string
	// Browser is the browser's known-browser cookie, "" when it has none (see RememberBrowser).
	Browser string
}

// Errors of VerifyCode and Resend. None of them says whether the address is a customer's.
var (
	// ErrNoChallenge: the browser has no login in progress (unknown, finished or swept).
	ErrNoChallenge = errors.New("no login in progress")
	// ErrCodeExpired: the code's lifetime is over; ask for a new one.
	ErrCodeExpired = errors.New("the code expired")
	// ErrLocked: too many wrong codes; start again with the e-mail address.
	ErrLocked = errors.New("too many wrong codes")
	// ErrWrongCode: the code does not match; WrongCodeError says how many tries remain.
	ErrWrongCode = errors.New("wrong code")
)

// WrongCodeError is a wrong code with tries left.
type WrongCodeError struct{ Remaining int }

func (e *WrongCodeError) Error() string { return fmt.Sprintf("wrong code, %d tries left", e.Remaining) }

// Is makes errors.Is(err, ErrWrongCode) match.
func (e *WrongCodeError) Is(target error) bool { return target == ErrWrongCode }

// Issue is what StartLogin and Resend did.
type Issue struct {
	// Handle identifies the challenge; the browser keeps it in a cookie.
	Handle string
	// Email is the normalised address the challenge is for.
	Email string
	// Code is the code to e-mail now, or "" when none is due (cooldown, hourly caps, lock). It
	// is never stored or logged (see codeFor).
	Code string
	// Again is true when Code is the challenge's current code sent once more, not a new one.
	Again bool
	// RetryAfter is how long until this challenge may be sent a code again (the cooldown, or
	// the end of the hour of a cap it reached).
	RetryAfter time.Duration
}

// Challenge describes a login in progress, for the code page.
type Challenge struct {
	Email string
	Sent  bool
	// SendFailed: a code was issued for this challenge but its e-mail could not be sent
	// (ReleaseSend); asking again sends it at once.
	SendFailed bool
	Locked     bool
	Expired    bool
	Remaining  int
	RetryAfter time.Duration
}

type challengeRow struct {
	id, portal, email, salt, codeHash string
	attempts, sends                   int
	createdAt, expiresAt              int64
	sentAt, consumedAt                sql.NullInt64
}

func (s *Store) challenge(ctx context.Context, portal, id string) (challengeRow, error) {
	var c challengeRow
	err := s.queryRow(ctx, `SELECT id, portal, email, salt, code_hash, attempts, sends, created_at,
		expires_at, sent_at, consumed_at FROM auth_login_challenges WHERE id = ? AND portal = ?`, id, portal).
		Scan(&c.id, &c.portal, &c.email, &c.salt, &c.codeHash, &c.attempts, &c.sends, &c.createdAt,
			&c.expiresAt, &c.sentAt, &c.consumedAt)
	if errors.Is(err, sql.ErrNoRows) || err == nil && c.consumedAt.Valid {
		return c, ErrNoChallenge
	}
	if err != nil {
		return c, fmt.Errorf("read login challenge: %w", err)
	}
	return c, nil
}

// StartLogin begins (or, for the same browser and address, continues) a login by e-mail and
// issues a code when one is due. It does exactly the same work whether or not the address
// belongs to a customer; the caller decides whether to e-mail Issue.Code, so responses and
// timing do not tell the two apart. current is the handle the browser already has, if any.
func (s *Store) StartLogin(ctx context.Context, portal, email, current string, from Requester, p CodePolicy) (Issue, error) {
	p = p.normalized()
	if current != "" {
		if c, err := s.challenge(ctx, portal, hashHandle(current)); err == nil && c.email == email &&
			c.attempts < p.MaxAttempts && c.expiresAt > s.nowMs() {
			return s.issue(ctx, current, c, from, p)
		}
	}
	handle := newHandle()
	salt := make([]byte, 16)
	_, _ = rand.Read(salt)
	now := s.nowMs()
	c := challengeRow{id: hashHandle(handle), portal: portal, email: email, salt: hex.EncodeToString(salt),
		createdAt: now, expiresAt: now + p.TTL.Milliseconds()}
	if _, err := s.exec(ctx, `INSERT INTO auth_login_challenges (id, portal, email, salt, created_at, expires_at)
		VALUES (?, ?, ?, ?, ?, ?)`, c.id, c.portal, c.email, c.salt, c.createdAt, c.expiresAt); err != nil {
		return Issue{}, fmt.Errorf("create login challenge: %w", err)
	}
	return s.issue(ctx, handle, c, from, p)
}

// Resend e-mails the browser's challenge its code again, or a new one, when one is due (see
// issue). A locked challenge gets none (ErrLocked): the lock would be worthless if a resend
// lifted it.
func (s *Store) Resend(ctx context.Context, portal, handle string, from Requester, p CodePolicy) (Issue, error) {
	p = p.normalized()
	c, err := s.challenge(ctx, portal, hashHandle(handle))
	if err != nil {
		return Issue{}, err
	}
	if c.attempts >= p.MaxAttempts {
		return Issue{Handle: handle, Email: c.email}, ErrLocked
	}
	return s.issue(ctx, handle, c, from, p)
}

// issue e-mails challenge c a code unless the challenge had one within the cooldown or the
// e-mail would go over a cap (see CodePolicy). While the current code is good for at least
// half its lifetime the same code goes again; after that, a new one with a full lifetime
// replaces it. Attempts are kept either way: a new code does not buy new guesses.
func (s *Store) issue(ctx context.Context, handle string, c challengeRow, from Requester, p CodePolicy) (Issue, error) {
	out := Issue{Handle: handle, Email: c.email}
	now := s.nowMs()
	cooldown := p.ResendCooldown.Milliseconds()
	if c.sentAt.Valid {
		if wait := time.Duration(c.sentAt.Int64+cooldown-now) * time.Millisecond; wait > 0 {
			out.RetryAfter = wait
			return out, nil
		}
	}
	ok, retry, err := s.allowSend(ctx, c, from, p)
	if err != nil {
		return out, err
	}
	if !ok {
		out.RetryAfter = retry
		return out, nil
	}
	// The sent_at condition makes two resends racing past the cooldown check send once.
	sentBefore := now - cooldown
	again := c.codeHash != "" && c.expiresAt-now >= p.TTL.Milliseconds()/2
	if again {
		ok, err = s.execOne(ctx, `UPDATE auth_login_challenges SET sent_at = ?, sends = sends + 1
			WHERE id = ? AND consumed_at IS NULL AND code_hash = ? AND (sent_at IS NULL OR sent_at <= ?)`,
			now, c.id, c.codeHash, sentBefore)
	} else {
		salt := make([]byte, 16)
		_, _ = rand.Read(salt)
		c.salt = hex.EncodeToString(salt)
		ok, err = s.execOne(ctx, `UPDATE auth_login_challenges SET salt = ?, code_hash = ?, sent_at = ?,
			sends = sends + 1, expires_at = ? WHERE id = ? AND consumed_at IS NULL AND (sent_at IS NULL OR sent_at <= ?)`,
			c.salt, s.codeHash(c, s.codeFor(c, p.Length)), now, now+p.TTL.Milliseconds(), c.id, sentBefore)
	}
	if err != nil {
		return out, fmt.Errorf("store login code: %w", err)
	}
	if !ok {
		// Consumed meanwhile, or another request sent it a moment ago.
		out.RetryAfter = p.ResendCooldown
		return out, nil
	}
	out.Code, out.Again = s.codeFor(c, p.Length), again
	out.RetryAfter = p.ResendCooldown
	return out, nil
}

// ReleaseSend gives back what issuing a code took when its e-mail could not be sent (the SMTP
// server was down): the challenge counts as not sent — no cooldown, and the same code is sent
// when the customer asks again — and the caps get their hit back, so an outage neither keeps
// the customer waiting once it is over nor uses up the address's e-mails. The caller calls it
// alike whether the address is a customer's (its send failed) or not (a probe of the server
// failed), so the outcome says nothing about the address.
func (s *Store) ReleaseSend(ctx context.Context, portal, handle string, from Requester, p CodePolicy) error {
	p = p.normalized()
	c, err := s.challenge(ctx, portal, hashHandle(handle))
	if err != nil {
		return err
	}
	ok, err := s.execOne(ctx, `UPDATE auth_login_challenges SET sent_at = NULL, sends = sends - 1
		WHERE id = ? AND portal = ? AND consumed_at IS NULL AND sent_at IS NOT NULL AND sends > 0`, c.id, portal)
	if err != nil {
		return fmt.Errorf("release login code send: %w", err)
	}
	if !ok {
		return nil // released already, or never sent
	}
	perClient := Limit{Hits: p.MaxSendsPerClientPerHour, Window: time.Hour}
	address := "code-sends:" + c.portal + ":" + c.email
	if from.Browser != "" {
		known, err := s.knownBrowser(ctx, c.portal, c.email, from.Browser)
		if err != nil {
			return err
		}
		if known {
			return s.refund(ctx, address+":browser:"+hashHandle(from.Browser), perClient)
		}
	}
	if err := s.refund(ctx, address+":client:"+from.Client, perClient); err != nil {
		return err
	}
	return s.refund(ctx, address, Limit{Hits: p.MaxSendsPerHour, Window: time.Hour})
}

// allowSend counts one code e-mail for c's address against the caps of CodePolicy.
func (s *Store) allowSend(ctx context.Context, c challengeRow, from Requester, p CodePolicy) (bool, time.Duration, error) {
	perClient := Limit{Hits: p.MaxSendsPerClientPerHour, Window: time.Hour}
	address := "code-sends:" + c.portal + ":" + c.email
	if from.Browser != "" {
		known, err := s.knownBrowser(ctx, c.portal, c.email, from.Browser)
		if err != nil {
			return false, 0, err
		}
		if known {
			return s.Allow(ctx, address+":browser:"+hashHandle(from.Browser), perClient)
		}
	}
	return s.AllowAll(ctx, []string{address + ":client:" + from.Client, address},
		[]Limit{perClient, {Hits: p.MaxSendsPerHour, Window: time.Hour}})
}

func (s *Store) codeHash(c challengeRow, code string) string {
	return hex.EncodeToString(mac(s.codeKey, []byte(c.salt+"|"+c.id+"|"+code)))
}

// codeFor is the code of challenge c's current salt: derived, not stored, so the same code can
// be sent again. The derivation key comes from the same secret as the code's HMAC, so a copy
// of the database reveals no more than it did when only the HMAC was kept (with the master key
// beside it, a few million HMACs recover any short code either way; with Options.Pepper,
// neither is possible).
func (s *Store) codeFor(c challengeRow, length int) string {
	sum := mac(mac(s.codeKey, []byte("portero auth login code derivation")), []byte(c.salt+"|"+c.id))
	return digits(binary.BigEndian.Uint64(sum), length)
}

// digits renders v modulo 10^n as n decimal digits (leading zeros kept). For n ≤ 10 the
// modulo bias on a uniform 64-bit v is below 10^-9.
func digits(v uint64, n int) string {
	mod := uint64(1)
	for range n {
		mod *= 10
	}
	return fmt.Sprintf("%0*d", n, v%mod)
}

// Challenge describes the browser's login in progress.
func (s *Store) Challenge(ctx context.Context, portal, handle string, p CodePolicy) (Challenge, error) {
	p = p.normalized()
	c, err := s.challenge(ctx, portal, hashHandle(handle))
	if err != nil {
		return Challenge{}, err
	}
	now := s.nowMs()
	out := Challenge{Email: c.email, Sent: c.sentAt.Valid, SendFailed: !c.sentAt.Valid && c.codeHash != "", Locked: c.attempts >= p.MaxAttempts,
		Expired: c.expiresAt <= now, Remaining: max(p.MaxAttempts-c.attempts, 0)}
	if c.sentAt.Valid {
		out.RetryAfter = max(time.Duration(c.sentAt.Int64+p.ResendCooldown.Milliseconds()-now)*time.Millisecond, 0)
	}
	return out, nil
}

// VerifyCode checks code against the browser's challenge and, if it matches, consumes the
// challenge and returns its e-mail address. Every call spends one of the challenge's attempts
// before the comparison, so parallel guesses cannot exceed MaxAttempts, and a code works once.
func (s *Store) VerifyCode(ctx context.Context, portal, handle, code string, p CodePolicy) (string, error) {
	p = p.normalized()
	id := hashHandle(handle)
	now := s.nowMs()
	ok, err := s.execOne(ctx, `UPDATE auth_login_challenges SET attempts = attempts + 1
		WHERE id = ? AND portal = ? AND consumed_at IS NULL AND attempts < ? AND expires_at > ?`,
		id, portal, p.MaxAttempts, now)
	if err != nil {
		return "", fmt.Errorf("count login attempt: %w", err)
	}
	c, err := s.challenge(ctx, portal, id)
	if err != nil {
		return "", err
	}
	if !ok {
		if c.attempts >= p.MaxAttempts {
			return "", ErrLocked
		}
		return "", ErrCodeExpired
	}
	// A challenge whose code was never sent (cooldown) has no hash and matches nothing; the
	// comparison still runs so both cases take the same time.
	want, _ := hex.DecodeString(c.codeHash)
	got, _ := hex.DecodeString(s.codeHash(c, code))
	if c.codeHash == "" || !hmac.Equal(want, got) {
		if c.attempts >= p.MaxAttempts {
			return "", ErrLocked
		}
		return "", &WrongCodeError{Remaining: p.MaxAttempts - c.attempts}
	}
	ok, err = s.execOne(ctx, `UPDATE auth_login_challenges SET consumed_at = ? WHERE id = ? AND consumed_at IS NULL`, now, id)
	if err != nil {
		return "", fmt.Errorf("consume login code: %w", err)
	}
	if !ok {
		return "", ErrNoChallenge
	}
	return c.email, nil
}
