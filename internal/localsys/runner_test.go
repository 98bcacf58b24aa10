package localsys

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A new portal never takes a port another portal remembers from the previous run and has not
// started yet: that portal would find its port taken and move, and its URL, the links minted
// for it and the demo link `make run` prints would all break.
func TestNewPortalAvoidsRememberedPorts(t *testing.T) {
	state := t.TempDir()
	if err := os.WriteFile(filepath.Join(state, "ports.json"), []byte(`{"default/general": "41001", "default/general#metrics": "41002"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	r, err := newRunner(&System{opts: Options{State: state}}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	offers := []string{"41001", "41002", "41003"} // what the kernel happens to hand out
	r.free = func() string { p := offers[0]; offers = offers[1:]; return p }
	got, err := r.port("team-a/acme")
	if err != nil {
		t.Fatal(err)
	}
	if got != "41003" {
		t.Errorf("a new portal got port %s, which default/general remembers", got)
	}
	if p, err := r.port("default/general"); err != nil || p != "41001" {
		t.Errorf("default/general moved to %s (%v), want its remembered 41001", p, err)
	}
}

// A portal process the runner restarts (it crashed) appends to its log: the lines that say why
// it stopped are still there. And the runner keeps no descriptor of the log open per start, so a
// portal in a crash loop does not exhaust the runner's file descriptors.
func TestRestartedProcessKeepsItsLog(t *testing.T) {
	s := &System{opts: Options{State: t.TempDir()}}
	fds := func() int {
		ents, err := os.ReadDir("/proc/self/fd")
		if err != nil {
			t.Skip("no /proc/self/fd")
		}
		return len(ents)
	}
	run := func(line string) {
		cmd, err := s.spawnDetached(context.Background(), "acme", nil, "/bin/sh", "-c", "echo "+line)
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Wait(); err != nil {
			t.Fatal(err)
		}
	}
	run("first start: panic: database is locked")
	before := fds()
	run("second start")
	if after := fds(); after > before {
		t.Errorf("%d file descriptors open after a restart, %d before: the log's stays open", after, before)
	}
	b, err := os.ReadFile(filepath.Join(s.opts.State, "acme.log"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), "panic: database is locked") || !strings.Contains(string(b), "second start") {
		t.Errorf("log after a restart:\n%s\nwant both starts' lines", b)
	}
}
