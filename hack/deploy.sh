#!/usr/bin/env bash
# Installs Portero into the cluster kubectl points at — CRDs, the operator's RBAC and its
# Deployment (config/default, namespace portero-system) — running IMAGE, the image
# `make image-push IMG=…` pushed. The operator gives new portals the same image (--portal-image),
# whatever default was built into it.
#
# Usage: [WATCH_NAMESPACES=ns1,ns2] hack/deploy.sh apply|delete|render IMAGE
#   IMAGE is name:tag or name@sha256:…; KUBECTL picks the kubectl (default: the one on PATH,
#   else bin/k8s/kubectl from `make envtest-assets`).
#   WATCH_NAMESPACES makes a namespaced install (config/namespaced/base): the operator runs
#   portals in those namespaces only, with its rules bound there by one RoleBinding each and no
#   ClusterRoleBinding; empty, it runs them in every namespace. The namespaces must exist. Give
#   the same list to delete. docs/security.md compares the two modes.
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

# WATCH_NAMESPACES: names separated by commas (spaces around them allowed), duplicates dropped.
namespaces=()
IFS=',' read -ra requested <<<"${WATCH_NAMESPACES:-}"
for ns in "${requested[@]}"; do
  ns=${ns//[[:space:]]/}
  [[ -z "$ns" ]] && continue
  if [[ ! "$ns" =~ ^[a-z0-9]([-a-z0-9]*[a-z0-9])?$ || ${#ns} -gt 63 ]]; then
    echo "$0: WATCH_NAMESPACES: $ns is not a namespace name" >&2
    exit 2
  fi
  [[ " ${namespaces[*]} " == *" $ns "* ]] || namespaces+=("$ns")
done

overlay=$(mktemp -d "$root/bin/deploy.XXXXXX" 2>/dev/null || { mkdir -p "$root/bin" && mktemp -d "$root/bin/deploy.XXXXXX"; })
trap 'rm -rf "$overlay"' EXIT
# Namespaced: config/namespaced/base (no ClusterRoleBinding) plus, as config/namespaced does for
# its example, a RoleBinding of the operator's rules in each namespace and the manager's list.
resources="- ../../config/default"
if ((${#namespaces[@]})); then
  resources="- ../../config/namespaced/base
- rolebindings.yaml"
  for ns in "${namespaces[@]}"; do
    cat <<YAML
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata:
  name: portero-manager-rolebinding
  namespace: $ns
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: ClusterRole
  name: portero-manager-role
subjects:
- kind: ServiceAccount
  name: portero-controller-manager
  namespace: portero-system
YAML
  done >"$overlay/rolebindings.yaml"
fi
cat >"$overlay/kustomization.yaml" <<YAML
resources:
$resources
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
if ((${#namespaces[@]})); then
  cat >>"$overlay/kustomization.yaml" <<YAML
- target: {kind: Deployment, labelSelector: app.kubernetes.io/name=portero-operator}
  patch: |-
    - op: add
      path: /spec/template/spec/containers/0/args/-
      value: "--watch-namespaces=$(IFS=,; echo "${namespaces[*]}")"
YAML
fi

case $action in
  render) "$kubectl" kustomize "$overlay" ;;
  apply)
    for ns in "${namespaces[@]}"; do
      if ! "$kubectl" get namespace "$ns" >/dev/null 2>&1; then
        echo "$0: namespace $ns (WATCH_NAMESPACES) does not exist: create it first; the install binds into it but does not own it" >&2
        exit 2
      fi
    done
    "$kubectl" apply --server-side --field-manager=portero-deploy -k "$overlay"
    if ((${#namespaces[@]})); then
      # An install that was cluster-wide before keeps its ClusterRoleBinding through an apply
      # (apply never prunes): remove it, or the operator could still act in every namespace.
      "$kubectl" delete clusterrolebinding portero-manager-rolebinding --ignore-not-found
    fi
    ;;
  # --wait=false: the namespace finishes terminating in the background.
  delete) "$kubectl" delete --ignore-not-found --wait=false -k "$overlay" ;;
  *) echo "$0: unknown action $action (apply, delete or render)" >&2; exit 2 ;;
esac
