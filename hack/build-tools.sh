#!/usr/bin/env bash
# Builds the hermetic control plane (kube-apiserver, etcd), kubectl, Mailpit and stripe-mock from
# the Go module proxy into bin/k8s/. Idempotent: `go build` with the build cache is fast on reruns,
# and a binary is only rebuilt when its source module changed. Prints the directory on success.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out="$root/bin/k8s"
mkdir -p "$out"
K8S_VERSION=v1.37.2
ldflags="-s -w -X k8s.io/component-base/version.gitVersion=${K8S_VERSION} -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=37 -X k8s.io/component-base/version.gitTreeState=clean"

build() { # name dir pkg ldflags
  local name=$1 dir=$2 pkg=$3 flags=$4
  local stamp="$out/.$name.stamp" want
  want=$(cd "$dir" && sha256sum go.mod go.sum | sha256sum | cut -c1-16)
  if [[ -x "$out/$name" && -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then return 0; fi
  echo ">> building $name (first build takes minutes; later runs use the Go build cache)" >&2
  (cd "$dir" && CGO_ENABLED=0 go build -trimpath -ldflags "$flags" -o "$out/$name.tmp" "$pkg")
  mv "$out/$name.tmp" "$out/$name"
  echo "$want" >"$stamp"
}

build etcd "$root/hack/tools" go.etcd.io/etcd/server/v3 "-s -w"
build kube-apiserver "$root/hack/tools" k8s.io/kubernetes/cmd/kube-apiserver "$ldflags"
build kubectl "$root/hack/tools" k8s.io/kubernetes/cmd/kubectl "$ldflags"
build mailpit "$root/hack/tools/mailpit" github.com/axllent/mailpit "-s -w"
build stripe-mock "$root/hack/tools/stripe-mock" github.com/stripe/stripe-mock \
  "-s -w -X main.version=$(cd "$root/hack/tools/stripe-mock" && go list -m -f {{.Version}} github.com/stripe/stripe-mock)"
build helm "$root/hack/tools/helm" helm.sh/helm/v4/cmd/helm \
  "-s -w -X helm.sh/helm/v4/internal/version.gitTreeState=clean -X helm.sh/helm/v4/internal/version.version=$(cd "$root/hack/tools/helm" && go list -m -f {{.Version}} helm.sh/helm/v4)"
echo "$out"
