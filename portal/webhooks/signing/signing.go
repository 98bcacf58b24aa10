// Package signing holds what the sender and the operator share about Standard Webhooks
// secrets and signatures, with nothing but the standard library: the operator checks secrets
// with it without linking the portal's ledger.
package signing

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"net"
	"net/url"
	"strconv"
	"strings"
)

// SecretPrefix starts every endpoint secret, as Standard Webhooks' libraries expect.
const SecretPrefix = "whsec_"

// PreviousKey is the Secret key of the secret being rotated out: while it is present, every
// delivery is signed under it too (and the operator checks it like the current one).
const PreviousKey = "previous"

// Secret lengths in bytes, after base64 decoding (the specification asks for 24 to 64).
const (
	MinSecretBytes = 24
	MaxSecretBytes = 64
)

// ErrBadSecret explains what a usable secret looks like; it never repeats the value.
var ErrBadSecret = errors.New(`a webhook secret must be "whsec_" followed by the base64 of 24 to 64 random bytes (e.g. "whsec_" + $(head -c 32 /dev/urandom | base64))`)

// ParseSecret decodes "whsec_<base64>" into the HMAC key.
func ParseSecret(s string) ([]byte, error) {
	raw, ok := strings.CutPrefix(strings.TrimSpace(s), SecretPrefix)
	if !ok {
		return nil, ErrBadSecret
	}
	key, err := base64.StdEncoding.DecodeString(raw)
	if err != nil || len(key) < MinSecretBytes || len(key) > MaxSecretBytes {
		return nil, ErrBadSecret
	}
	return key, nil
}

// Sign returns the webhook-signature header for one attempt: a "v1,<base64>" signature under each
// key, in order, space-separated.
func Sign(keys [][]byte, id string, timestamp int64, body []byte) string {
	msg := make([]byte, 0, len(id)+len(body)+22)
	msg = append(msg, id...)
	msg = append(msg, '.')
	msg = strconv.AppendInt(msg, timestamp, 10)
	msg = append(msg, '.')
	msg = append(msg, body...)
	sigs := make([]string, 0, len(keys))
	for _, k := range keys {
		mac := hmac.New(sha256.New, k)
		mac.Write(msg)
		sigs = append(sigs, "v1,"+base64.StdEncoding.EncodeToString(mac.Sum(nil)))
	}
	return strings.Join(sigs, " ")
}

// CheckURL reports whether u may receive webhooks: https, or plain http only to loopback and
// cluster-local hosts (where nothing crosses a network in clear). The CRD's CEL rule says the same.
func CheckURL(u string) error {
	p, err := url.Parse(u)
	if err != nil || p.Host == "" || p.User != nil {
		return errors.New("a webhook url must be an absolute https:// URL without credentials")
	}
	switch p.Scheme {
	case "https":
		return nil
	case "http":
		if LocalHost(p.Hostname()) {
			return nil
		}
		return errors.New("a webhook url must use https:// (plain http:// only for localhost, 127.0.0.1, ::1 and cluster-local *.svc hosts)")
	}
	return errors.New("a webhook url must be an absolute https:// URL")
}

// LocalHost reports loopback names and addresses, and cluster-local Service names.
func LocalHost(h string) bool {
	h = strings.ToLower(strings.TrimSuffix(h, "."))
	if h == "localhost" || strings.HasSuffix(h, ".svc") || strings.HasSuffix(h, ".svc.cluster.local") {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}
