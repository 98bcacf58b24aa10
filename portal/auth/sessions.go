package auth

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// Method is how a browser session was signed in.
type Method string

// Sign-in methods.
const (
	// MethodCode is the public login: e-mail address and one-time code.
	MethodCode Method = "code"
	// MethodLink is a PortalSession link exchanged for a browser session.
	MethodLink Method = "link"
)

// ErrNoSession means the cookie names no live session: unknown, signed out, idle too long or
// past its absolute lifetime.
var ErrNoSession = errors.New("no browser session")

// touchEvery limits last-seen writes to one a minute per session; the idle timeout is
// therefore exact to within that minute.
const touchEvery = time.Minute

// NewSession describes a browser session to create.
type NewSession struct {
	// Portal is the portal's namespace/name; a session opens only that portal.
	Portal string
	// CustomerID is who is signed in; "" while the person must choose among the customers
	// sharing Email.
	CustomerID string
	// Email is the address the person proved (code) or the link named.
	Email string
	// PortalSession is the name of the PortalSession behind a link session, and
	// PortalSessionUID its UID: the session stands on that object, not on whatever has the
	// name later.
	PortalSession    string
	PortalSessionUID string
	Method           Method
	// NotAfter caps the session's lifetime (a PortalSession's expiresAt); zero means no cap
	// beyond the absolute timeout.
	NotAfter time.Time
}

// Session is a live browser session.
type Session struct {
	// ID is the stored hash of the cookie, used to refer to the session server-side; the cookie
	// value itself is never kept.
	ID               string
	Portal           string
	CustomerID       string
	Email            string
	PortalSession    string
	PortalSessionUID string
	Method           Method
	// CSRFToken is the synchronizer token every form of the session carries.
	CSRFToken  string
	Flash      string
	CreatedAt  time.Time
	LastSeenAt time.Time
	ExpiresAt  time.Time
}

// CreateSession stores a new session and returns the cookie value that opens it.
func (s *Store) CreateSession(ctx context.Context, in NewSession) (string, Session, error) {
	if in.Portal == "" || (in.Method != MethodCode && in.Method != MethodLink) {
		return "", Session{}, errors.New("create session: portal and method are required")
	}
	now := s.now()
	exp := now.Add(s.absolute)
	if !in.NotAfter.IsZero() && in.NotAfter.Before(exp) {
		exp = in.NotAfter.UTC().Truncate(time.Millisecond)
	}
	if !exp.After(now) {
		return "", Session{}, ErrNoSession
	}
	cookie := newHandle()
	sess := Session{ID: hashHandle(cookie), Portal: in.Portal, CustomerID: in.CustomerID, Email: in.Email,
		PortalSession: in.PortalSession, PortalSessionUID: in.PortalSessionUID, Method: in.Method, CSRFToken: newHandle(),
		CreatedAt: now, LastSeenAt: now, ExpiresAt: exp}
	_, err := s.exec(ctx, `INSERT INTO auth_sessions (id, portal, customer_id, email, portal_session, portal_session_uid,
		method, csrf_token, created_at, last_seen_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		sess.ID, sess.Portal, sess.CustomerID, sess.Email, sess.PortalSession, sess.PortalSessionUID, string(sess.Method),
		sess.CSRFToken, now.UnixMilli(), now.UnixMilli(), exp.UnixMilli())
	if err != nil {
		return "", Session{}, fmt.Errorf("create session: %w", err)
	}
	return cookie, sess, nil
}

// Session returns the live session the cookie opens on portal, refreshing its idle timer. An
// expired one is deleted and reported as ErrNoSession.
func (s *Store) Session(ctx context.Context, portal, cookie string) (Session, error) {
	if _, ok := ParseLinkToken(cookie); !ok {
		return Session{}, ErrNoSession
	}
	id := hashHandle(cookie)
	var sess Session
	var method string
	var created, seen, exp int64
	err := s.queryRow(ctx, `SELECT id, portal, customer_id, email, portal_session, portal_session_uid, method,
		csrf_token, flash, created_at, last_seen_at, expires_at FROM auth_sessions WHERE id = ? AND portal = ?`, id, portal).
		Scan(&sess.ID, &sess.Portal, &sess.CustomerID, &sess.Email, &sess.PortalSession, &sess.PortalSessionUID, &method,
			&sess.CSRFToken, &sess.Flash, &created, &seen, &exp)
	if errors.Is(err, sql.ErrNoRows) {
		return Session{}, ErrNoSession
	}
	if err != nil {
		return Session{}, fmt.Errorf("read session: %w", err)
	}
	sess.Method = Method(method)
	sess.CreatedAt, sess.LastSeenAt, sess.ExpiresAt = time.UnixMilli(created).UTC(), time.UnixMilli(seen).UTC(), time.UnixMilli(exp).UTC()
	now := s.now()
	if !now.Before(sess.ExpiresAt) || now.Sub(sess.LastSeenAt) >= s.idle {
		if err := s.EndSession(ctx, sess.ID); err != nil {
			return Session{}, err
		}
		return Session{}, ErrNoSession
	}
	if now.Sub(sess.LastSeenAt) >= touchEvery {
		if _, err := s.exec(ctx, "UPDATE auth_sessions SET last_seen_at = ? WHERE id = ?", now.UnixMilli(), id); err != nil {
			return Session{}, fmt.Errorf("touch session: %w", err)
		}
		sess.LastSeenAt = now
	}
	return sess, nil
}

// ChooseCustomer settles which customer a session acts for, once; the caller has checked that
// the customer has the session's e-mail address.
func (s *Store) ChooseCustomer(ctx context.Context, id, customerID string) error {
	ok, err := s.execOne(ctx, "UPDATE auth_sessions SET customer_id = ? WHERE id = ? AND customer_id = ''", customerID, id)
	if err != nil {
		return fmt.Errorf("choose customer: %w", err)
	}
	if !ok {
		return ErrNoSession
	}
	return nil
}

// SetFlash stores a one-time notice for the session's next page.
func (s *Store) SetFlash(ctx context.Context, id, flash string) error {
	if _, err := s.exec(ctx, "UPDATE auth_sessions SET flash = ? WHERE id = ?", flash, id); err != nil {
		return fmt.Errorf("set flash: %w", err)
	}
	return nil
}

// ClearFlash removes the notice once shown.
func (s *Store) ClearFlash(ctx context.Context, id string) error { return s.SetFlash(ctx, id, "") }

// EndSession signs a session out.
func (s *Store) EndSession(ctx context.Context, id string) error {
	if _, err := s.exec(ctx, "DELETE FROM auth_sessions WHERE id = ?", id); err != nil {
		return fmt.Errorf("end session: %w", err)
	}
	return nil
}

// EndLinkSessions ends every browser session standing on the named PortalSession, e.g. when
// it is revoked; it returns how many there were.
func (s *Store) EndLinkSessions(ctx context.Context, portal, portalSession string) (int64, error) {
	res, err := s.exec(ctx, "DELETE FROM auth_sessions WHERE portal = ? AND portal_session = ? AND method = 'link'", portal, portalSession)
	if err != nil {
		return 0, fmt.Errorf("end link sessions: %w", err)
	}
	return res.RowsAffected()
}
