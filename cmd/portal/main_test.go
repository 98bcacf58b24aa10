package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// Saved cards are tokens under the processor key: processes starting together on one data
// directory (make run's two portals) must end up with one key, the one on disk, and a damaged
// key file is an error rather than silently replaced.
func TestProcessorKeyIsCreatedOnce(t *testing.T) {
	path := filepath.Join(t.TempDir(), "processor.key")
	const n = 16
	keys := make([][]byte, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			k, err := loadOrCreateKey(path)
			if err != nil {
				t.Error(err)
			}
			keys[i] = k
		}()
	}
	wg.Wait()
	onDisk, err := os.ReadFile(path)
	if err != nil || len(onDisk) != 32 {
		t.Fatalf("key file: %d bytes, %v", len(onDisk), err)
	}
	for i, k := range keys {
		if !bytes.Equal(k, onDisk) {
			t.Fatalf("process %d uses a key that is not the one on disk", i)
		}
	}
	again, err := loadOrCreateKey(path)
	if err != nil || !bytes.Equal(again, onDisk) {
		t.Fatalf("restart: %v", err)
	}
	if left, _ := filepath.Glob(filepath.Join(filepath.Dir(path), ".processor.key-*")); len(left) != 0 {
		t.Fatalf("temporary files left: %v", left)
	}

	if err := os.WriteFile(path, onDisk[:7], 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := loadOrCreateKey(path); err == nil || !strings.Contains(err.Error(), "holds 7 bytes") {
		t.Fatalf("short key file: %v", err)
	}
	if b, _ := os.ReadFile(path); len(b) != 7 {
		t.Fatal("the damaged key file was replaced")
	}
}
