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
func (s *Store) Allow(ctx context.Context, bucket string, l Limit) (bool, time.Duration, error) {
	if l.Hits <= 0 || l.Window <= 0 {
		return true, 0, nil
	}
	now := s.nowMs()
	win := l.Window.Milliseconds()
	start := now - now%win
	key := hex.EncodeToString(mac(s.rateKey, []byte(bucket)))
	var hits int
	err := s.queryRow(ctx, `INSERT INTO auth_rate_limits (bucket, window_start, hits) VALUES (?, ?, 1)
		ON CONFLICT (bucket, window_start) DO UPDATE SET hits = auth_rate_limits.hits + 1
		RETURNING hits`, key, start).Scan(&hits)
	if err != nil {
		return false, 0, fmt.Errorf("count rate limit: %w", err)
	}
	if hits > l.Hits {
		return false, time.Duration(start+win-now) * time.Millisecond, nil
	}
	return true, 0, nil
}
