package plugin

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	"github.com/portero-dev/portero/internal/testenv"
)

// krewManifest is the part of krew's Plugin manifest (krew.googlecontainertools.github.com/v1alpha2)
// that krew checks before installing.
type krewManifest struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Metadata   struct {
		Name string `json:"name"`
	} `json:"metadata"`
	Spec struct {
		Version          string `json:"version"`
		Homepage         string `json:"homepage"`
		ShortDescription string `json:"shortDescription"`
		Description      string `json:"description"`
		Platforms        []struct {
			Selector struct {
				MatchLabels map[string]string `json:"matchLabels"`
			} `json:"selector"`
			URI    string `json:"uri"`
			SHA256 string `json:"sha256"`
			Bin    string `json:"bin"`
		} `json:"platforms"`
	} `json:"spec"`
}

// The krew manifest follows krew's rules (name = file name, semver with a v, one platform per
// os/arch with a 64-hex sha256 and the executable) and names the archives release.sh builds.
func TestKrewManifest(t *testing.T) {
	path := filepath.Join(testenv.RepoRoot(), "hack", "krew", "portero.yaml")
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var m krewManifest
	if err := yaml.Unmarshal(data, &m); err != nil {
		t.Fatal(err)
	}
	if m.APIVersion != "krew.googlecontainertools.github.com/v1alpha2" || m.Kind != "Plugin" {
		t.Errorf("apiVersion/kind %s/%s", m.APIVersion, m.Kind)
	}
	if want := strings.TrimSuffix(filepath.Base(path), ".yaml"); m.Metadata.Name != want {
		t.Errorf("metadata.name %q must match the file name %q", m.Metadata.Name, want)
	}
	if !regexp.MustCompile(`^v\d+\.\d+\.\d+(-[0-9A-Za-z.-]+)?$`).MatchString(m.Spec.Version) {
		t.Errorf("spec.version %q is not semver with a leading v", m.Spec.Version)
	}
	if m.Spec.ShortDescription == "" || m.Spec.Description == "" || m.Spec.Homepage == "" {
		t.Error("shortDescription, description and homepage are required")
	}
	want := map[string]bool{"linux/amd64": true, "linux/arm64": true, "darwin/amd64": true, "darwin/arm64": true, "windows/amd64": true}
	hex := regexp.MustCompile(`^[0-9a-f]{64}$`)
	for _, p := range m.Spec.Platforms {
		goos, arch := p.Selector.MatchLabels["os"], p.Selector.MatchLabels["arch"]
		plat := goos + "/" + arch
		if !want[plat] {
			t.Errorf("platform %s unexpected or listed twice", plat)
			continue
		}
		delete(want, plat)
		uri := "https://github.com/portero-dev/portero/releases/download/" + m.Spec.Version +
			"/kubectl-portero_" + m.Spec.Version + "_" + goos + "_" + arch + ".tar.gz"
		if p.URI != uri {
			t.Errorf("%s: uri %q, want %q (what hack/krew/release.sh uploads)", plat, p.URI, uri)
		}
		if !hex.MatchString(p.SHA256) {
			t.Errorf("%s: sha256 %q is not 64 lower-case hex digits", plat, p.SHA256)
		}
		bin := "kubectl-portero"
		if goos == "windows" {
			bin += ".exe"
		}
		if p.Bin != bin {
			t.Errorf("%s: bin %q, want %q", plat, p.Bin, bin)
		}
	}
	for plat := range want {
		t.Errorf("platform %s missing", plat)
	}
}
