#!/usr/bin/env bash
# Builds the kubectl-portero release archives krew installs and points hack/krew/portero.yaml at
# them: hack/krew/release.sh v0.2.0 [OUTDIR] (default bin/krew). Upload OUTDIR/*.tar.gz to the
# GitHub release of that tag, then submit hack/krew/portero.yaml to kubernetes-sigs/krew-index.
# The archives are reproducible — static binaries built with -trimpath, tar entries with fixed
# owner and time, gzip without a timestamp — so anyone can rebuild one and compare its sha256.
# PLATFORMS overrides the os/arch list (e.g. PLATFORMS=linux/amd64 for a quick check); the
# manifest is then written to OUTDIR only, since it would name archives that were not built.
set -euo pipefail
version=${1:?usage: hack/krew/release.sh VERSION [OUTDIR], e.g. v0.2.0}
[[ $version =~ ^v[0-9]+\.[0-9]+\.[0-9]+(-[0-9A-Za-z.-]+)?$ ]] || { echo "VERSION must be semver with a leading v, e.g. v0.2.0" >&2; exit 1; }
root=$(cd "$(dirname "$0")/../.." && pwd)
out=${2:-$root/bin/krew}
manifest=$root/hack/krew/portero.yaml
platforms=${PLATFORMS:-linux/amd64 linux/arm64 darwin/amd64 darwin/arm64 windows/amd64}
mkdir -p "$out"

sums=()
for p in $platforms; do
  os=${p%/*} arch=${p#*/}
  exe=kubectl-portero
  [[ $os == windows ]] && exe=kubectl-portero.exe
  name=kubectl-portero_${version}_${os}_${arch}.tar.gz
  work=$(mktemp -d)
  echo ">> $name" >&2
  (cd "$root" && CGO_ENABLED=0 GOOS=$os GOARCH=$arch go build -trimpath \
    -ldflags "-s -w -X main.version=$version" -o "$work/$exe" ./cmd/kubectl-portero)
  touch -d @0 "$work/$exe"
  tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -C "$work" -cf - "$exe" | gzip -n -9 >"$out/$name"
  rm -rf "$work"
  sums+=("${os}_${arch}=$(sha256sum "$out/$name" | cut -d' ' -f1)")
done

# The manifest with the version, and each platform's uri and the sha256 after it.
awk -v version="$version" -v sums="${sums[*]}" '
  BEGIN { n = split(sums, kv, " "); for (i = 1; i <= n; i++) { split(kv[i], a, "="); sum[a[1]] = a[2] } }
  /^  version: / { print "  version: " version; next }
  /^    uri: / {
    match($0, /_[a-z0-9]+_[a-z0-9]+\.tar\.gz$/); plat = substr($0, RSTART + 1, RLENGTH - 8)
    print "    uri: https://github.com/portero-dev/portero/releases/download/" version "/kubectl-portero_" version "_" plat ".tar.gz"
    pending = plat; next
  }
  /^    sha256: / && pending != "" {
    if (pending in sum) print "    sha256: \"" sum[pending] "\""; else print
    pending = ""; next
  }
  { print }
' "$manifest" >"$out/portero.yaml"
if [[ -z ${PLATFORMS:-} ]]; then
  cp "$out/portero.yaml" "$manifest"
  echo "archives in $out; $manifest now names $version" >&2
else
  echo "archives and manifest in $out (PLATFORMS set: $manifest left as it was)" >&2
fi
