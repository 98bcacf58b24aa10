#!/usr/bin/env bash
# Regenerates deepcopy, CRDs and RBAC into a scratch directory and compares them with the committed
# files, so `make test` fails when someone changed markers or types without `make generate manifests`.
set -euo pipefail
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cg="go tool controller-gen"
$cg object:headerFile=hack/boilerplate.go.txt paths=./api/... output:object:dir="$tmp/object"
$cg crd paths=./api/... output:crd:artifacts:config="$tmp/crd"
$cg rbac:roleName=manager-role paths=./controllers/... output:rbac:artifacts:config="$tmp/rbac"
stale=0
diff -u api/v1alpha1/zz_generated.deepcopy.go "$tmp/object/zz_generated.deepcopy.go" || stale=1
diff -ru config/crd/bases "$tmp/crd" || stale=1
diff -u config/rbac/role.yaml "$tmp/rbac/role.yaml" || stale=1
if [ "$stale" -ne 0 ]; then
  echo "Generated files are stale: run 'make generate manifests' and commit the result." >&2
  exit 1
fi
echo "generated files are up to date"
