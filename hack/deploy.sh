#!/usr/bin/env bash
# Installs Portero into the cluster kubectl points at — CRDs, the operator's RBAC and its
# Deployment (config/default, namespace portero-system) — running IMAGE, the image
# `make image-push IMG=…` pushed. The operator gives new portals the same image (--portal-image),
# whatever default was built into it.
#
# Usage: hack/deploy.sh apply|delete|render IMAGE
#   IMAGE is name:tag or name@sha256:…; KUBECTL picks the kubectl (default: the one on PATH,
#   else bin/k8s/kubectl from `make envtest-assets`).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
action=${1:-} img=${2:-}
kubectl=${KUBECTL:-$(command -v kubectl || echo "$root/bin/k8s/kubectl")}
if [[ ! -x "$kubectl" ]] && ! command -v "$kubectl" >/dev/null; then
  echo "$0: no kubectl (install one, or run make envtest-assets for bin/k8s/kubectl)" >&2
  exit 2
fi
if [[ -z "$action" || -z "$img" ]]; then
  echo "usage: $0 apply|delete|render IMAGE (name:tag or name@sha256:...)" >&2
  exit 2
fi

if [[ ! "$img" =~ ^[A-Za-z0-9._:/@-]+$ ]]; then
  echo "$0: $img is not an image reference" >&2
  exit 2
fi
# Split IMAGE into name and tag or digest; a registry port (host:5000/x) is not a tag. Values
# are quoted in the YAML: a tag like 1.10, 20261205 or null must stay a string.
if [[ "$img" == *@* ]]; then
  name=${img%@*} ref="  digest: \"${img#*@}\""
elif [[ "${img##*/}" == *:* ]]; then
  name=${img%:*} ref="  newTag: \"${img##*:}\""
else
  echo "$0: IMAGE $img has no tag or digest; give one (e.g. $img:v0.1.0) so nodes pull what you built" >&2
  exit 2
fi

overlay=$(mktemp -d "$root/bin/deploy.XXXXXX" 2>/dev/null || { mkdir -p "$root/bin" && mktemp -d "$root/bin/deploy.XXXXXX"; })
trap 'rm -rf "$overlay"' EXIT
cat >"$overlay/kustomization.yaml" <<YAML
resources:
- ../../config/default
images:
- name: ghcr.io/portero-dev/portero
  newName: "$name"
$ref
patches:
- target: {kind: Deployment, labelSelector: app.kubernetes.io/name=portero-operator}
  patch: |-
    - op: add
      path: /spec/template/spec/containers/0/args/-
      value: "--portal-image=$img"
YAML

case $action in
  render) "$kubectl" kustomize "$overlay" ;;
  apply) "$kubectl" apply --server-side --field-manager=portero-deploy -k "$overlay" ;;
  # --wait=false: the namespace finishes terminating in the background.
  delete) "$kubectl" delete --ignore-not-found --wait=false -k "$overlay" ;;
  *) echo "$0: unknown action $action (apply, delete or render)" >&2; exit 2 ;;
esac
