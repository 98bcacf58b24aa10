package auth

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"math/big"
	"time"
)

// CodePolicy is the portal's otp settings as they are at the time of the request.
type CodePolicy struct {
	// Length is the number of digits (6 to 10).
	Length int
	// TTL is how long a code works after it is issued.
	TTL time.Duration
	// MaxAttempts is how many tries a challenge gets; then it is locked.
	MaxAttempts int
	// ResendCooldown is the wait between two codes for the same address.
	ResendCooldown time.Duration
	// MaxSendsPerHour caps the codes one address receives, across browsers (default 5).
	MaxSendsPerHour int
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
		p.MaxSendsPerHour = 5
	}
	return p
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
	// Code is a fresh code to e-mail now, or "" when none is due (cooldown, hourly cap, lock).
	// It is never stored or logged; only its HMAC is kept.
	Code string
	// RetryAfter is how long until another code may be sent to the address.
	RetryAfter time.Duration
}

// Challenge describes a login in progress, for the code page.
type Challenge struct {
	Email      string
	Sent       bool
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
func (s *Store) StartLogin(ctx context.Context, portal, email, current string, p CodePolicy) (Issue, error) {
	p = p.normalized()
	if current != "" {
		if c, err := s.challenge(ctx, portal, hashHandle(current)); err == nil && c.email == email &&
			c.attempts < p.MaxAttempts && c.expiresAt > s.nowMs() {
			return s.issue(ctx, current, c, p)
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
	return s.issue(ctx, handle, c, p)
}

// Resend issues a new code for the browser's challenge when one is due. A locked challenge
// gets none (ErrLocked): the lock would be worthless if a resend lifted it.
func (s *Store) Resend(ctx context.Context, portal, handle string, p CodePolicy) (Issue, error) {
	p = p.normalized()
	c, err := s.challenge(ctx, portal, hashHandle(handle))
	if err != nil {
		return Issue{}, err
	}
	if c.attempts >= p.MaxAttempts {
		return Issue{Handle: handle, Email: c.email}, ErrLocked
	}
	return s.issue(ctx, handle, c, p)
}

// issue puts a fresh code on challenge c unless the address had one within the cooldown or
// reached its hourly cap. Attempts are kept: a new code does not buy new guesses beyond the cap.
func (s *Store) issue(ctx context.Context, handle string, c challengeRow, p CodePolicy) (Issue, error) {
	out := Issue{Handle: handle, Email: c.email}
	now := s.nowMs()
	var last sql.NullInt64
	if err := s.queryRow(ctx, `SELECT MAX(sent_at) FROM auth_login_challenges WHERE portal = ? AND email = ?`,
		c.portal, c.email).Scan(&last); err != nil {
		return out, fmt.Errorf("read last code time: %w", err)
	}
	if last.Valid {
		if wait := time.Duration(last.Int64+p.ResendCooldown.Milliseconds()-now) * time.Millisecond; wait > 0 {
			out.RetryAfter = wait
			return out, nil
		}
	}
	ok, retry, err := s.Allow(ctx, "code-sends:"+c.portal+":"+c.email, Limit{Hits: p.MaxSendsPerHour, Window: time.Hour})
	if err != nil {
		return out, err
	}
	if !ok {
		out.RetryAfter = retry
		return out, nil
	}
	code, err := randomDigits(p.Length)
	if err != nil {
		return out, err
	}
	hash := s.codeHash(c, code)
	ok, err = s.execOne(ctx, `UPDATE auth_login_challenges SET code_hash = ?, sent_at = ?, sends = sends + 1,
		expires_at = ? WHERE id = ? AND consumed_at IS NULL`, hash, now, now+p.TTL.Milliseconds(), c.id)
	if err != nil {
		return out, fmt.Errorf("store login code: %w", err)
	}
	if !ok {
		return out, ErrNoChallenge
	}
	out.Code = code
	out.RetryAfter = p.ResendCooldown
	return out, nil
}

func (s *Store) codeHash(c challengeRow, code string) string {
	return hex.EncodeToString(mac(s.codeKey, []byte(c.salt+"|"+c.id+"|"+code)))
}

// randomDigits returns n uniformly random decimal digits (leading zeros kept).
func randomDigits(n int) (string, error) {
	limit := new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(n)), nil)
	v, err := rand.Int(rand.Reader, limit)
	if err != nil {
		return "", fmt.Errorf("generate code: %w", err)
	}
	return fmt.Sprintf("%0*s", n, v.String()), nil
}

// Challenge describes the browser's login in progress.
func (s *Store) Challenge(ctx context.Context, portal, handle string, p CodePolicy) (Challenge, error) {
	p = p.normalized()
	c, err := s.challenge(ctx, portal, hashHandle(handle))
	if err != nil {
		return Challenge{}, err
	}
	now := s.nowMs()
	out := Challenge{Email: c.email, Sent: c.sentAt.Valid, Locked: c.attempts >= p.MaxAttempts,
		Expired: c.expiresAt <= now, Remaining: max(p.MaxAttempts-c.attempts, 0)}
	var last sql.NullInt64
	if err := s.queryRow(ctx, `SELECT MAX(sent_at) FROM auth_login_challenges WHERE portal = ? AND email = ?`,
		c.portal, c.email).Scan(&last); err != nil {
		return out, fmt.Errorf("read last code time: %w", err)
	}
	if last.Valid {
		out.RetryAfter = max(time.Duration(last.Int64+p.ResendCooldown.Milliseconds()-now)*time.Millisecond, 0)
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
