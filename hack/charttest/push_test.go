package charttest

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/distribution/distribution/v3/configuration"
	"github.com/distribution/distribution/v3/registry"
	_ "github.com/distribution/distribution/v3/registry/auth/htpasswd"
	_ "github.com/distribution/distribution/v3/registry/storage/driver/inmemory"
	"golang.org/x/crypto/bcrypt"
	"helm.sh/helm/v4/pkg/chart/v2/loader"
)

// startRegistry runs an OCI registry (CNCF Distribution, in memory) on loopback that lets in only
// user with password, as a private chart registry does. It returns host:port.
func startRegistry(t *testing.T, user, password string) string {
	t.Helper()
	hash, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	htpasswd := filepath.Join(t.TempDir(), "htpasswd")
	if err := os.WriteFile(htpasswd, fmt.Appendf(nil, "%s:%s\n", user, hash), 0o600); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	cfg := &configuration.Configuration{}
	cfg.HTTP.Addr = addr
	cfg.HTTP.DrainTimeout = time.Second
	cfg.Log.Level = "fatal" // its 404s for blobs a push checks before upload are the normal course
	cfg.Log.AccessLog.Disabled = true
	cfg.Storage = configuration.Storage{"inmemory": configuration.Parameters{}}
	cfg.Auth = configuration.Auth{"htpasswd": configuration.Parameters{"realm": "portero-test", "path": htpasswd}}
	ctx, cancel := context.WithCancel(context.Background())
	reg, err := registry.NewRegistry(ctx, cfg)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- reg.ListenAndServe() }()
	t.Cleanup(func() {
		_ = reg.Shutdown(context.Background())
		cancel()
		<-done
	})
	for deadline := time.Now().Add(10 * time.Second); ; {
		conn, err := net.Dial("tcp", addr)
		if err == nil {
			conn.Close()
			return addr
		}
		select {
		case err := <-done:
			t.Fatalf("registry stopped: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("registry on %s not up: %v", addr, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// `make chart` packages the chart as portero-<version>.tgz, and `make chart-push` pushes that
// package to an OCI registry with the credentials of `helm registry login`, as README says; what
// the registry then serves is the package, byte for byte.
func TestMakeChartAndChartPush(t *testing.T) {
	helm := helmCLI(t)
	env := append(helmEnv(t), "HELM="+helm)
	user, password := "platform", rand.Text()
	host := startRegistry(t, user, password)
	out := t.TempDir()
	chartRegistry := "oci://" + host + "/charts"
	makeVars := []string{"HELM=" + helm, "CHART_OUT=" + out, "CHART_PUSH_FLAGS=--plain-http"}

	runCmd := func(stdin string, name string, args ...string) (string, error) {
		t.Helper()
		cmd := exec.Command(name, args...)
		cmd.Dir, cmd.Env = root, append(withoutMake(os.Environ()), env...)
		cmd.Stdin = strings.NewReader(stdin)
		b, err := cmd.CombinedOutput()
		return string(b), err
	}

	if out, err := runCmd("", "make", append([]string{"--no-print-directory", "chart-push"}, makeVars...)...); err == nil || !strings.Contains(out, "CHART_REGISTRY") {
		t.Errorf("make chart-push without CHART_REGISTRY: %v, want an error naming it:\n%s", err, out)
	}
	if out, err := runCmd("", "make", append([]string{"--no-print-directory", "chart-push", "CHART_REGISTRY=" + chartRegistry}, makeVars...)...); err == nil || !strings.Contains(out, "credential") {
		t.Errorf("make chart-push before helm registry login: %v, want a refusal for want of credentials:\n%s", err, out)
	}
	if out, err := runCmd(password, helm, "registry", "login", host, "--username", user, "--password-stdin", "--plain-http"); err != nil {
		t.Fatalf("helm registry login: %v\n%s", err, out)
	}
	if out, err := runCmd("", "make", append([]string{"--no-print-directory", "chart-push", "CHART_REGISTRY=" + chartRegistry}, makeVars...)...); err != nil {
		t.Fatalf("make chart-push: %v\n%s", err, out)
	} else if strings.Contains(out, password) {
		t.Error("make chart-push printed the registry password")
	}

	pkg := filepath.Join(out, "portero-0.1.0.tgz")
	ch, err := loader.Load(pkg)
	if err != nil {
		t.Fatalf("load the package make chart wrote: %v", err)
	}
	if ch.Metadata.Name != "portero" || ch.Metadata.Version != "0.1.0" || ch.Metadata.AppVersion != "v0.1.0" {
		t.Errorf("packaged chart %s %s (app %s), want portero 0.1.0 (app v0.1.0)", ch.Metadata.Name, ch.Metadata.Version, ch.Metadata.AppVersion)
	}
	if n := len(ch.CRDObjects()); n != 2 {
		t.Errorf("the package holds %d CRDs, want 2", n)
	}
	for _, f := range []string{"files/manager-role.yaml", "files/prometheus-rules.yaml"} {
		found := false
		for _, file := range ch.Files {
			found = found || file.Name == f
		}
		if !found {
			t.Errorf("the package lacks %s, which its templates read", f)
		}
	}

	pulled := t.TempDir()
	if out, err := runCmd("", helm, "pull", chartRegistry+"/portero", "--version", "0.1.0", "--plain-http", "--destination", pulled); err != nil {
		t.Fatalf("helm pull: %v\n%s", err, out)
	}
	want, err := os.ReadFile(pkg)
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(filepath.Join(pulled, "portero-0.1.0.tgz"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Error("the registry serves another archive than the one make chart wrote")
	}
}

// withoutMake drops the variables of a make this test may run under (make test), so the make it
// runs is a make of its own rather than a sub-make of that one.
func withoutMake(env []string) []string {
	return slices.DeleteFunc(slices.Clone(env), func(kv string) bool {
		name, _, _ := strings.Cut(kv, "=")
		return name == "MAKEFLAGS" || name == "MFLAGS" || name == "MAKELEVEL"
	})
}
