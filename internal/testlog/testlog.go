// Package testlog captures log output in tests, so a test can assert what was (and was never)
// logged — a token, a code, a card number.
package testlog

import (
	"bytes"
	"sync"
)

// Buffer is an io.Writer safe for the concurrent goroutines of a server or a controller.
type Buffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

// Write appends p.
func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// String returns everything written so far.
func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
