package auth

import (
	"context"
	"encoding/hex"
	"fmt"
	"time"
)

// Limit is at most Hits events per Window.
type Limit struct {
	Hits   int
	Window time.Duration
}

// Allow counts one event in bucket (e.g. "code-requests:ip:203.0.113.9") and reports whether it
// is within l, and if not how long until the window ends. Counters are fixed windows in the
// database, so every replica sees the same counts; buckets are stored as HMACs, not addresses.
// A refused event is counted too: hammering a full bucket does not empty it sooner.
func (s *Store) Allow(ctx context.Context, bucket string, l Limit) (bool, time.Duration, error) {
	if l.Hits <= 0 || l.Window <= 0 {
		return true, 0, nil
	}
	now := s.nowMs()
	win := l.Window.Milliseconds()
	start := now - now%win
	var hits int
	err := s.queryRow(ctx, `INSERT INTO auth_rate_limits (bucket, window_start, hits) VALUES (?, ?, 1)
		ON CONFLICT (bucket, window_start) DO UPDATE SET hits = auth_rate_limits.hits + 1
		RETURNING hits`, s.bucketKey(bucket), start).Scan(&hits)
	if err != nil {
		return false, 0, fmt.Errorf("count rate limit: %w", err)
	}
	if hits > l.Hits {
		return false, time.Duration(start+win-now) * time.Millisecond, nil
	}
	return true, 0, nil
}

// AllowAll is Allow for an event that counts in several buckets at once (a code e-mail counts
// for its address and for the client asking): it is allowed only if every bucket allows it,
// and a bucket that allowed it gives the hit back when a later one refuses, so a client is
// not charged for e-mails that were never sent. The wait returned is the refusing bucket's.
func (s *Store) AllowAll(ctx context.Context, buckets []string, limits []Limit) (bool, time.Duration, error) {
	for i, b := range buckets {
		ok, retry, err := s.Allow(ctx, b, limits[i])
		if err == nil && ok {
			continue
		}
		for j := i - 1; j >= 0; j-- {
			if rerr := s.refund(ctx, buckets[j], limits[j]); rerr != nil && err == nil {
				err = rerr
			}
		}
		return false, retry, err
	}
	return true, 0, nil
}

// refund takes back one hit counted by Allow in the current window.
func (s *Store) refund(ctx context.Context, bucket string, l Limit) error {
	if l.Hits <= 0 || l.Window <= 0 {
		return nil
	}
	now := s.nowMs()
	win := l.Window.Milliseconds()
	if _, err := s.exec(ctx, `UPDATE auth_rate_limits SET hits = hits - 1
		WHERE bucket = ? AND window_start = ? AND hits > 0`, s.bucketKey(bucket), now-now%win); err != nil {
		return fmt.Errorf("refund rate limit: %w", err)
	}
	return nil
}

func (s *Store) bucketKey(bucket string) string {
	return hex.EncodeToString(mac(s.rateKey, []byte(bucket)))
}
