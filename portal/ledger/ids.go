package ledger

import (
	"crypto/rand"
	"encoding/base32"
	"encoding/base64"
	"fmt"
	"io/fs"
	"strconv"
	"strings"
	"time"
)

// newID returns prefix + "_" + 24 lowercase base32 characters (120 random bits), the shape
// Stripe-style ids have: unguessable, URL-safe, and typed by their prefix.
func newID(prefix string) string {
	var b [15]byte
	// crypto/rand.Read never fails on supported platforms (it panics instead).
	_, _ = rand.Read(b[:])
	return prefix + "_" + strings.ToLower(base32.StdEncoding.EncodeToString(b[:]))
}

// Id prefixes.
const (
	prefixCustomer     = "cus"
	prefixMethod       = "pm"
	prefixSubscription = "sub"
	prefixPayment      = "pay"
	prefixCredit       = "crd"
)

func fsSub(f fs.FS, dir string) (fs.FS, error) {
	sub, err := fs.Sub(f, dir)
	if err != nil {
		return nil, fmt.Errorf("embedded migrations: %w", err)
	}
	return sub, nil
}

// now returns the clock's time in UTC at the millisecond precision the database keeps, so
// values returned by a write equal what a later read returns.
func (s *Store) nowMs() time.Time { return s.now().UTC().Truncate(time.Millisecond) }

// cursor is a keyset position: lists are ordered by (created_at, id), which is stable under
// concurrent inserts, unlike OFFSET.
type cursor struct {
	createdAt int64
	id        string
}

func (c cursor) encode() string {
	return base64.RawURLEncoding.EncodeToString([]byte(strconv.FormatInt(c.createdAt, 10) + "|" + c.id))
}

func decodeCursor(s string) (cursor, error) {
	raw, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return cursor{}, newError(KindInvalid, CodeInvalidField, "cursor", nil)
	}
	ts, id, ok := strings.Cut(string(raw), "|")
	n, err := strconv.ParseInt(ts, 10, 64)
	if !ok || err != nil || id == "" {
		return cursor{}, newError(KindInvalid, CodeInvalidField, "cursor", nil)
	}
	return cursor{createdAt: n, id: id}, nil
}

// Page size bounds.
const (
	DefaultPageSize = 20
	MaxPageSize     = 100
)

func pageLimit(limit int) (int, error) {
	switch {
	case limit == 0:
		return DefaultPageSize, nil
	case limit < 0 || limit > MaxPageSize:
		return 0, newError(KindInvalid, CodeInvalidField, "limit", nil)
	}
	return limit, nil
}
