// Command image builds Portero's container image — the operator and the portal server in one
// image, as config/manager/manager.yaml (command /manager) and the portal Deployments the
// operator writes (the image's entrypoint, /portal) expect it — without Docker: the binaries come
// from `go build` (static, CGO_ENABLED=0), the image is assembled with go-containerregistry on an
// empty base and either written as a tarball `docker load` / `kind load image-archive` accept, or
// pushed to a registry (one platform or several, as an index).
//
// The image is reproducible: it holds only what the commit and its go.sum pin (the CA roots too,
// compiled in), file times and the creation time are the commit's, so the same commit built
// under the same tag gives the same digest on any machine. (The tag is compiled into the
// operator as its default portal image.)
package main

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// NonRoot is the user and group the image runs as; the Deployments set the same numbers
// (runAsNonRoot needs a numeric user to check).
const NonRoot = 65532

// Binary is one program put in the image: the package built and the path it gets.
type Binary struct {
	Package string // import path or ./relative to Root, e.g. ./cmd/manager
	Path    string // absolute path in the image, e.g. /manager
	LDFlags string // extra -ldflags, e.g. -X main.defaultPortalImage=<tag>
}

// Options describe one build.
type Options struct {
	Root       string   // the main module's directory
	Binaries   []Binary // what goes in; the first is not special, Entrypoint says what runs
	Entrypoint []string
	Platforms  []v1.Platform
	// CACerts, when set, is a CA bundle file put at /etc/ssl/certs/ca-certificates.crt (a private
	// CA for the SMTP server, say). Without it the binaries trust the Mozilla roots they carry
	// (golang.org/x/crypto/x509roots/fallback), pinned by go.sum like any dependency.
	CACerts string
	Created time.Time // every file's mtime and the image's creation time
	Labels  map[string]string
	WorkDir string // scratch space for the binaries
}

// DefaultBinaries is Portero's image: the operator and the portal server, which the operator
// configures as the default portal image (so both come from one tag).
func DefaultBinaries(tag string) []Binary {
	return []Binary{
		{Package: "./cmd/manager", Path: "/manager", LDFlags: "-X main.defaultPortalImage=" + tag},
		{Package: "./cmd/portal", Path: "/portal"},
	}
}

// Build returns one image per platform, in the order of o.Platforms.
func Build(o Options) ([]v1.Image, error) {
	var out []v1.Image
	for _, p := range o.Platforms {
		img, err := buildOne(o, p)
		if err != nil {
			return nil, fmt.Errorf("%s/%s: %w", p.OS, p.Architecture, err)
		}
		out = append(out, img)
	}
	return out, nil
}

func buildOne(o Options, p v1.Platform) (v1.Image, error) {
	files := map[string]file{}
	for _, b := range o.Binaries {
		data, err := goBuild(o, p, b)
		if err != nil {
			return nil, err
		}
		files[b.Path] = file{data: data, mode: 0o755}
	}
	// The user database the runtime and `ps` read, with the non-root user the pods run as.
	files["/etc/passwd"] = file{data: fmt.Appendf(nil, "root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:%d:%d:nonroot:/home/nonroot:/sbin/nologin\n", NonRoot, NonRoot), mode: 0o644}
	files["/etc/group"] = file{data: fmt.Appendf(nil, "root:x:0:\nnonroot:x:%d:\n", NonRoot), mode: 0o644}
	if o.CACerts != "" {
		ca, err := os.ReadFile(o.CACerts)
		if err != nil {
			return nil, fmt.Errorf("CA bundle: %w", err)
		}
		// Where Go's crypto/x509 looks first on Linux.
		files["/etc/ssl/certs/ca-certificates.crt"] = file{data: ca, mode: 0o644}
	}
	dirs := map[string]dir{
		"/tmp":             {mode: 0o1777},
		"/home/nonroot":    {mode: 0o700, owner: NonRoot},
		"/var/lib/portero": {mode: 0o700, owner: NonRoot}, // the SQLite ledger's mount point
		"/etc/ssl/certs":   {mode: 0o755},
	}
	layerTar, err := tarLayer(files, dirs, o.Created)
	if err != nil {
		return nil, err
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(layerTar)), nil
	}, tarball.WithMediaType(types.OCILayer))
	if err != nil {
		return nil, err
	}
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	img, err = mutate.Append(img, mutate.Addendum{Layer: layer, History: v1.History{
		Created: v1.Time{Time: o.Created}, CreatedBy: "hack/image: " + strings.Join(paths(o.Binaries), " "), Comment: "Portero binaries, non-root user",
	}})
	if err != nil {
		return nil, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture, cf.Variant = p.OS, p.Architecture, p.Variant
	cf.Created = v1.Time{Time: o.Created}
	cf.Config.Entrypoint = o.Entrypoint
	cf.Config.User = fmt.Sprintf("%d:%d", NonRoot, NonRoot)
	cf.Config.WorkingDir = "/"
	cf.Config.Env = []string{"PATH=/"}
	if o.CACerts != "" {
		cf.Config.Env = append(cf.Config.Env, "SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt")
	}
	cf.Config.Labels = o.Labels
	return mutate.ConfigFile(img, cf)
}

func paths(bs []Binary) []string {
	var out []string
	for _, b := range bs {
		out = append(out, b.Path)
	}
	return out
}

// goBuild builds one static binary for the platform and returns its bytes.
func goBuild(o Options, p v1.Platform, b Binary) ([]byte, error) {
	out := filepath.Join(o.WorkDir, p.OS+"-"+p.Architecture+p.Variant, filepath.Base(b.Path))
	cmd := exec.Command("go", "build", "-trimpath", "-buildvcs=false", "-ldflags", strings.TrimSpace("-s -w "+b.LDFlags), "-o", out, b.Package)
	cmd.Dir = o.Root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS="+p.OS, "GOARCH="+p.Architecture)
	if p.Architecture == "arm" && p.Variant != "" {
		cmd.Env = append(cmd.Env, "GOARM="+strings.TrimPrefix(p.Variant, "v"))
	}
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("go build %s: %w", b.Package, err)
	}
	return os.ReadFile(out)
}

type file struct {
	data []byte
	mode int64
}

type dir struct {
	mode  int64
	owner int
}

// tarLayer writes the files and directories (and every parent directory, root-owned 0755) as
// one tar stream in a fixed order with fixed times, so equal input gives equal bytes.
func tarLayer(files map[string]file, dirs map[string]dir, mtime time.Time) ([]byte, error) {
	all := map[string]dir{}
	addParents := func(p string) {
		for d := filepath.Dir(p); d != "/"; d = filepath.Dir(d) {
			if _, ok := all[d]; !ok {
				all[d] = dir{mode: 0o755}
			}
		}
	}
	for p := range files {
		addParents(p)
	}
	for p, d := range dirs {
		addParents(p)
		all[p] = d
	}
	var names []string
	for p := range all {
		names = append(names, p)
	}
	for p := range files {
		names = append(names, p)
	}
	sort.Strings(names)

	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, p := range names {
		h := &tar.Header{Name: strings.TrimPrefix(p, "/"), ModTime: mtime, Format: tar.FormatPAX}
		if f, ok := files[p]; ok {
			h.Typeflag, h.Mode, h.Size = tar.TypeReg, f.mode, int64(len(f.data))
			if err := tw.WriteHeader(h); err != nil {
				return nil, err
			}
			if _, err := tw.Write(f.data); err != nil {
				return nil, err
			}
			continue
		}
		d := all[p]
		h.Name += "/"
		h.Typeflag, h.Mode, h.Uid, h.Gid = tar.TypeDir, d.mode, d.owner, d.owner
		if err := tw.WriteHeader(h); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// Index puts several platforms' images under one index, as registries serve multi-arch images.
func Index(imgs []v1.Image, platforms []v1.Platform) v1.ImageIndex {
	idx := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	for i, img := range imgs {
		p := platforms[i]
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: &p}})
	}
	return idx
}

// WriteTarball writes one image as a tarball that `docker load`, `podman load`,
// `kind load image-archive` and `crane push` accept.
func WriteTarball(path, tag string, img v1.Image) error {
	ref, err := name.NewTag(tag)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := tarball.WriteToFile(tmp, ref, img); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// ParsePlatforms reads "linux/amd64,linux/arm64".
func ParsePlatforms(s string) ([]v1.Platform, error) {
	var out []v1.Platform
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		p, err := v1.ParsePlatform(f)
		if err != nil {
			return nil, err
		}
		if p.Architecture == "" {
			return nil, fmt.Errorf("platform %q: give os/arch, e.g. linux/amd64", f)
		}
		if p.OS != "linux" {
			return nil, fmt.Errorf("platform %q: the image is for Linux nodes only", f)
		}
		out = append(out, *p)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no platform in %q", s)
	}
	return out, nil
}
