//go:build tools

// Package tools pins stripe-mock; hack/build-tools.sh builds it.
package tools

import _ "github.com/stripe/stripe-mock"
