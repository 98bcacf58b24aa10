package controllers

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"fmt"
)

// TokenBytes is the entropy of a session token: 256 bits, so guessing one is hopeless even for an
// attacker who can try links at line rate for the token's whole lifetime.
const TokenBytes = 32

// TokenLength is the length of an encoded token: 32 bytes in unpadded base64url.
var TokenLength = base64.RawURLEncoding.EncodedLen(TokenBytes)

// MintToken returns a fresh session token: TokenBytes from crypto/rand, base64url without padding
// (43 characters, safe in a URL path without escaping).
func MintToken() (string, error) {
	b := make([]byte, TokenBytes)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("read %d random bytes: %w", TokenBytes, err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// HashToken returns the hex SHA-256 of token, the form status.tokenHash carries. A fast hash is
// enough: the token has 256 bits of entropy, so there is nothing to brute-force.
func HashToken(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

// TokenMatches reports, in constant time, whether token hashes to tokenHash.
func TokenMatches(token, tokenHash string) bool {
	return subtle.ConstantTimeCompare([]byte(HashToken(token)), []byte(tokenHash)) == 1
}
