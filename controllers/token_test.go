package controllers

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"regexp"
	"testing"
)

func TestTokenMintsAreDistinctAndWellFormed(t *testing.T) {
	const n = 10000
	urlSafe := regexp.MustCompile(`^[A-Za-z0-9_-]{43}$`)
	seen := make(map[string]struct{}, n)
	for i := 0; i < n; i++ {
		tok, err := MintToken()
		if err != nil {
			t.Fatal(err)
		}
		if len(tok) != 43 || len(tok) != TokenLength {
			t.Fatalf("token %d has length %d, want 43", i, len(tok))
		}
		if !urlSafe.MatchString(tok) {
			t.Fatalf("token %d is not unpadded base64url: %q", i, tok)
		}
		raw, err := base64.RawURLEncoding.DecodeString(tok)
		if err != nil || len(raw) != TokenBytes {
			t.Fatalf("token %d does not decode to %d bytes: %v", i, TokenBytes, err)
		}
		if _, dup := seen[tok]; dup {
			t.Fatalf("token %d repeats an earlier token", i)
		}
		seen[tok] = struct{}{}
	}
}

func TestTokenHash(t *testing.T) {
	tok, err := MintToken()
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256([]byte(tok))
	if got, want := HashToken(tok), hex.EncodeToString(sum[:]); got != want {
		t.Fatalf("HashToken = %s, want %s", got, want)
	}
	if !TokenMatches(tok, HashToken(tok)) {
		t.Fatal("TokenMatches rejects the token's own hash")
	}
	other, _ := MintToken()
	if TokenMatches(other, HashToken(tok)) {
		t.Fatal("TokenMatches accepts another token")
	}
	if TokenMatches(tok, "") {
		t.Fatal("TokenMatches accepts an empty hash")
	}
}
