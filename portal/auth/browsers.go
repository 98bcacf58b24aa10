package auth

import (
	"context"
	"fmt"
	"time"
)

// KnownBrowserTTL is how long a browser stays known to an address after its last code
// sign-in to it.
const KnownBrowserTTL = 90 * 24 * time.Hour

// RememberBrowser records that the browser holding cookie value browser ("" for one that has
// none yet) signed in to portal with a code e-mailed to email, and returns the value for the
// browser to keep. Only a code sign-in proves the inbox is the browser's: a session link does
// not (whoever holds it may not own the address).
func (s *Store) RememberBrowser(ctx context.Context, portal, email, browser string) (string, error) {
	if browser == "" {
		browser = newHandle()
	}
	now := s.nowMs()
	// The address's own stale rows go here, so a busy table needs no sweep of its own.
	if _, err := s.exec(ctx, `DELETE FROM auth_known_browsers WHERE portal = ? AND email = ? AND expires_at <= ?`,
		portal, email, now); err != nil {
		return "", fmt.Errorf("forget stale browsers: %w", err)
	}
	if _, err := s.exec(ctx, `INSERT INTO auth_known_browsers (id, portal, email, created_at, expires_at)
		VALUES (?, ?, ?, ?, ?) ON CONFLICT (id, portal, email) DO UPDATE SET expires_at = excluded.expires_at`,
		hashHandle(browser), portal, email, now, now+KnownBrowserTTL.Milliseconds()); err != nil {
		return "", fmt.Errorf("remember browser: %w", err)
	}
	return browser, nil
}

// knownBrowser reports whether browser signed in to portal with a code for email lately.
func (s *Store) knownBrowser(ctx context.Context, portal, email, browser string) (bool, error) {
	var n int
	if err := s.queryRow(ctx, `SELECT COUNT(*) FROM auth_known_browsers
		WHERE id = ? AND portal = ? AND email = ? AND expires_at > ?`,
		hashHandle(browser), portal, email, s.nowMs()).Scan(&n); err != nil {
		return false, fmt.Errorf("look up known browser: %w", err)
	}
	return n > 0, nil
}
