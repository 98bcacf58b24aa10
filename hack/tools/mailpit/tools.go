//go:build tools

// Package tools pins Mailpit; hack/build-tools.sh builds it.
package tools

import _ "github.com/axllent/mailpit"
