//go:build tools

// Package tools pins the helm CLI; hack/build-tools.sh builds it.
package tools

import _ "helm.sh/helm/v4/cmd/helm"
