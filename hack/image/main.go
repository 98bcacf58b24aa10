package main

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

func main() {
	var (
		root      = flag.String("root", "../..", "The main module's directory.")
		tag       = flag.String("tag", "ghcr.io/portero-dev/portero:dev", "The image's name and tag; the operator inside defaults portals to this same image.")
		out       = flag.String("out", "", "Write the image as a tarball for `docker load` / `kind load image-archive` (one platform only).")
		push      = flag.Bool("push", false, "Push to the registry in -tag (credentials from ~/.docker/config.json, as docker login writes them).")
		platforms = flag.String("platforms", "linux/"+runtime.GOARCH, "Comma-separated platforms, e.g. linux/amd64,linux/arm64 (several only with -push: they become one index).")
		caCerts   = flag.String("ca-certs", "", "A CA bundle file to put in the image (e.g. with a private CA for SMTP or PostgreSQL); without it the binaries trust the Mozilla roots compiled into them.")
	)
	flag.Parse()
	if err := run(*root, *tag, *out, *push, *platforms, *caCerts); err != nil {
		fmt.Fprintln(os.Stderr, "image:", err)
		os.Exit(1)
	}
}

func run(root, tag, out string, push bool, platforms, caCerts string) error {
	if out == "" && !push {
		return fmt.Errorf("nothing to do: give -out FILE, -push, or both")
	}
	ps, err := ParsePlatforms(platforms)
	if err != nil {
		return err
	}
	if out != "" && len(ps) > 1 {
		return fmt.Errorf("a tarball holds one platform; use -push for %s", platforms)
	}
	ref, err := name.NewTag(tag)
	if err != nil {
		return fmt.Errorf("-tag: %w", err)
	}
	root, err = filepath.Abs(root)
	if err != nil {
		return err
	}
	work, err := os.MkdirTemp("", "portero-image-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	created, revision := sourceInfo(root)
	imgs, err := Build(Options{
		Root: root, Binaries: DefaultBinaries(ref.String()), Entrypoint: []string{"/portal"},
		Platforms: ps, CACerts: caCerts, Created: created, WorkDir: work,
		Labels: map[string]string{
			"org.opencontainers.image.title":       "Portero",
			"org.opencontainers.image.description": "Kubernetes operator (/manager) and portal server (/portal, the entrypoint) for self-service customer billing portals",
			"org.opencontainers.image.source":      "https://github.com/portero-dev/portero",
			"org.opencontainers.image.revision":    revision,
			"org.opencontainers.image.created":     created.Format(time.RFC3339),
		},
	})
	if err != nil {
		return err
	}
	if out != "" {
		if err := WriteTarball(out, ref.String(), imgs[0]); err != nil {
			return err
		}
		d, _ := imgs[0].Digest()
		fmt.Printf("wrote %s (%s %s, %s)\n", out, ref, d, platformString(ps[0]))
	}
	if push {
		opt := remote.WithAuthFromKeychain(authn.DefaultKeychain)
		if len(imgs) == 1 {
			if err := remote.Write(ref, imgs[0], opt); err != nil {
				return err
			}
			d, _ := imgs[0].Digest()
			fmt.Printf("pushed %s@%s\n", ref, d)
			return nil
		}
		idx := Index(imgs, ps)
		if err := remote.WriteIndex(ref, idx, opt); err != nil {
			return err
		}
		d, _ := idx.Digest()
		fmt.Printf("pushed %s@%s (%d platforms)\n", ref, d, len(ps))
	}
	return nil
}

func platformString(p v1.Platform) string {
	s := p.OS + "/" + p.Architecture
	if p.Variant != "" {
		s += "/" + p.Variant
	}
	return s
}

// sourceInfo is the commit's time (or SOURCE_DATE_EPOCH) and hash: the image's creation time and
// file times come from the source, not the clock, so rebuilds are identical. (No `git describe`:
// a tag added later, a shallow clone or a dirty tree would change the digest.)
func sourceInfo(root string) (created time.Time, revision string) {
	git := func(args ...string) string {
		cmd := exec.Command("git", args...)
		cmd.Dir = root
		b, err := cmd.Output()
		if err != nil {
			return ""
		}
		return strings.TrimSpace(string(b))
	}
	created = time.Unix(0, 0).UTC()
	if s := os.Getenv("SOURCE_DATE_EPOCH"); s != "" {
		if n, err := strconv.ParseInt(s, 10, 64); err == nil {
			created = time.Unix(n, 0).UTC()
		}
	} else if n, err := strconv.ParseInt(git("log", "-1", "--format=%ct"), 10, 64); err == nil {
		created = time.Unix(n, 0).UTC()
	}
	return created, git("rev-parse", "HEAD")
}
