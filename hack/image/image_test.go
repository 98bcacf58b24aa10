package main

import (
	"archive/tar"
	"bytes"
	"debug/elf"
	"io"
	"log"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

var host = v1.Platform{OS: "linux", Architecture: runtime.GOARCH}

// layerFiles reads the image's filesystem: path → header and content.
func layerFiles(t *testing.T, img v1.Image) (map[string]*tar.Header, map[string][]byte) {
	t.Helper()
	rc := mutate.Extract(img)
	defer rc.Close()
	hdrs, data := map[string]*tar.Header{}, map[string][]byte{}
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return hdrs, data
		}
		if err != nil {
			t.Fatal(err)
		}
		p := "/" + strings.TrimSuffix(h.Name, "/")
		hdrs[p] = h
		if h.Typeflag == tar.TypeReg {
			b, err := io.ReadAll(tr)
			if err != nil {
				t.Fatal(err)
			}
			data[p] = b
		}
	}
}

// The real image: both binaries static, running as the non-root user the Deployments demand,
// entrypoint the portal (its Deployments give only args), and loadable from the tarball.
func TestPorteroImage(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the manager and the portal")
	}
	root, _ := filepath.Abs("../..")
	ca := filepath.Join(t.TempDir(), "ca.crt")
	if err := os.WriteFile(ca, []byte("-----BEGIN CERTIFICATE-----\ntest\n-----END CERTIFICATE-----\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	const tag = "registry.example/portero:test"
	created := time.Date(2026, 12, 5, 1, 2, 3, 0, time.UTC)
	opts := Options{Root: root, Binaries: DefaultBinaries(tag), Entrypoint: []string{"/portal"}, Platforms: []v1.Platform{host},
		CACerts: ca, Created: created, WorkDir: t.TempDir(), Labels: map[string]string{"org.opencontainers.image.revision": "abc"}}
	imgs, err := Build(opts)
	if err != nil {
		t.Fatal(err)
	}
	img := imgs[0]

	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if cf.Config.User != "65532:65532" || strings.Join(cf.Config.Entrypoint, " ") != "/portal" || cf.Architecture != runtime.GOARCH || cf.OS != "linux" {
		t.Fatalf("config: user %q entrypoint %q platform %s/%s", cf.Config.User, cf.Config.Entrypoint, cf.OS, cf.Architecture)
	}
	if !cf.Created.Time.Equal(created) || cf.Config.Labels["org.opencontainers.image.revision"] != "abc" {
		t.Fatalf("created %v labels %v", cf.Created, cf.Config.Labels)
	}

	hdrs, data := layerFiles(t, img)
	for _, p := range []string{"/manager", "/portal"} {
		h := hdrs[p]
		if h == nil || h.Mode&0o111 == 0 || h.Uid != 0 {
			t.Fatalf("%s: %+v", p, h)
		}
		if !h.ModTime.Equal(created) {
			t.Fatalf("%s mtime %v, want the source's %v", p, h.ModTime, created)
		}
		f, err := elf.NewFile(bytes.NewReader(data[p]))
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		for _, prog := range f.Progs {
			if prog.Type == elf.PT_INTERP {
				t.Fatalf("%s is dynamically linked: an image with no libc cannot run it", p)
			}
		}
	}
	if h := hdrs["/tmp"]; h == nil || h.Typeflag != tar.TypeDir || h.Mode != 0o1777 {
		t.Fatalf("/tmp: %+v", h)
	}
	if h := hdrs["/var/lib/portero"]; h == nil || h.Uid != NonRoot {
		t.Fatalf("/var/lib/portero (the SQLite mount point): %+v", h)
	}
	if !strings.Contains(string(data["/etc/passwd"]), "nonroot:x:65532:65532:") {
		t.Fatalf("/etc/passwd: %q", data["/etc/passwd"])
	}
	if !bytes.Contains(data["/etc/ssl/certs/ca-certificates.crt"], []byte("BEGIN CERTIFICATE")) {
		t.Fatal("the CA bundle asked for is not in the image")
	}
	// Without one, TLS to a public SMTP server or PostgreSQL still verifies: the binaries carry
	// Mozilla's roots (x509roots/fallback), Let's Encrypt's among them.
	for _, p := range []string{"/manager", "/portal"} {
		if !bytes.Contains(data[p], []byte("ISRG Root X1")) {
			t.Fatalf("%s carries no CA roots: in a scratch image it could verify no TLS server", p)
		}
	}

	// The binaries out of the image run here, and the manager carries the tag as the default
	// portal image, so one tag deploys both.
	bin := t.TempDir()
	for _, p := range []string{"/manager", "/portal"} {
		if err := os.WriteFile(filepath.Join(bin, p), data[p], 0o755); err != nil {
			t.Fatal(err)
		}
	}
	usage, _ := exec.Command(filepath.Join(bin, "portal"), "-h").CombinedOutput()
	if !strings.Contains(string(usage), "-portal") {
		t.Fatalf("portal -h:\n%s", usage)
	}
	usage, _ = exec.Command(filepath.Join(bin, "manager"), "-h").CombinedOutput()
	if !strings.Contains(string(usage), tag) {
		t.Fatalf("manager -h does not show %s as the default portal image:\n%s", tag, usage)
	}

	// The same source gives the same digest.
	again, err := Build(opts)
	if err != nil {
		t.Fatal(err)
	}
	d1, _ := img.Digest()
	d2, _ := again[0].Digest()
	if d1 != d2 {
		t.Fatalf("two builds of the same source differ: %s, %s", d1, d2)
	}

	// The tarball reads back as the same image under the tag.
	out := filepath.Join(t.TempDir(), "portero.tar")
	if err := WriteTarball(out, tag, img); err != nil {
		t.Fatal(err)
	}
	ref, _ := name.NewTag(tag)
	loaded, err := tarball.ImageFromPath(out, &ref)
	if err != nil {
		t.Fatal(err)
	}
	// `docker save` format keeps the config and the layers byte for byte (the manifest is
	// rewritten with Docker's media types, so its digest is not comparable).
	c1, _ := img.ConfigName()
	c2, _ := loaded.ConfigName()
	l1, _ := img.Layers()
	l2, _ := loaded.Layers()
	if c1 != c2 || len(l1) != 1 || len(l2) != 1 {
		t.Fatalf("tarball config %s (%d layers), built %s (%d layers)", c2, len(l2), c1, len(l1))
	}
	if a, b := digestOf(t, l1[0]), digestOf(t, l2[0]); a != b {
		t.Fatalf("tarball layer %s, built %s", b, a)
	}
}

func digestOf(t *testing.T, l v1.Layer) v1.Hash {
	t.Helper()
	d, err := l.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// Several platforms push as one index a node of either architecture pulls its own image from.
// Small stand-in binaries keep the cross-builds quick; the real ones are tested above.
func TestPushIndex(t *testing.T) {
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	defer srv.Close()
	u, _ := url.Parse(srv.URL)

	mod := t.TempDir()
	write := func(p, s string) {
		if err := os.WriteFile(filepath.Join(mod, p), []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("go.mod", "module hello\n\ngo 1.26\n")
	write("main.go", "package main\n\nfunc main() { println(\"hello\") }\n")
	platforms, err := ParsePlatforms("linux/amd64, linux/arm64")
	if err != nil {
		t.Fatal(err)
	}
	imgs, err := Build(Options{Root: mod, Binaries: []Binary{{Package: ".", Path: "/hello"}}, Entrypoint: []string{"/hello"},
		Platforms: platforms, Created: time.Unix(0, 0), WorkDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	ref, err := name.NewTag(u.Host+"/portero/hello:v1", name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.WriteIndex(ref, Index(imgs, platforms)); err != nil {
		t.Fatal(err)
	}
	for _, p := range platforms {
		img, err := remote.Image(ref, remote.WithPlatform(p))
		if err != nil {
			t.Fatal(err)
		}
		cf, _ := img.ConfigFile()
		if cf.Architecture != p.Architecture {
			t.Fatalf("pulled for %s, got %s", p.Architecture, cf.Architecture)
		}
		_, data := layerFiles(t, img)
		f, err := elf.NewFile(bytes.NewReader(data["/hello"]))
		if err != nil {
			t.Fatal(err)
		}
		want := map[string]elf.Machine{"amd64": elf.EM_X86_64, "arm64": elf.EM_AARCH64}[p.Architecture]
		if f.Machine != want {
			t.Fatalf("%s image holds a %v binary", p.Architecture, f.Machine)
		}
	}
}

func TestParsePlatforms(t *testing.T) {
	for _, bad := range []string{"", "windows/amd64", "linux"} {
		if _, err := ParsePlatforms(bad); err == nil {
			t.Errorf("ParsePlatforms(%q) accepted", bad)
		}
	}
	if err := run("../..", "x:y", "a.tar", false, "linux/amd64,linux/arm64", ""); err == nil || !strings.Contains(err.Error(), "one platform") {
		t.Errorf("a tarball of two platforms: %v", err)
	}
	if err := run("../..", "x:y", "", false, "linux/amd64", ""); err == nil {
		t.Error("neither -out nor -push was accepted")
	}
}

// `make image-push` end to end: the real binaries, pushed by the command's own code path.
func TestRunPushes(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the manager and the portal")
	}
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	defer srv.Close()
	u, _ := url.Parse(srv.URL)
	tag := u.Host + "/platform/portero:v0.0.1"
	if err := run("../..", tag, "", true, "linux/"+runtime.GOARCH, ""); err != nil {
		t.Fatal(err)
	}
	ref, _ := name.NewTag(tag, name.Insecure)
	img, err := remote.Image(ref)
	if err != nil {
		t.Fatal(err)
	}
	cf, _ := img.ConfigFile()
	if cf.Config.Labels["org.opencontainers.image.revision"] == "" || strings.Join(cf.Config.Entrypoint, " ") != "/portal" {
		t.Fatalf("pushed image config: %+v", cf.Config)
	}
	_, data := layerFiles(t, img)
	if data["/manager"] == nil || data["/portal"] == nil {
		t.Fatal("the pushed image lacks a binary")
	}
	if data["/etc/ssl/certs/ca-certificates.crt"] != nil || strings.Contains(strings.Join(cf.Config.Env, " "), "SSL_CERT_FILE") {
		t.Fatal("no -ca-certs was given, yet the image has a CA file: it would depend on the build machine")
	}
}
