// Package scheme builds the runtime.Scheme Portero's binaries and tests share.
package scheme

import (
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"

	billingv1alpha1 "github.com/portero-dev/portero/api/v1alpha1"
)

// New returns a scheme with the built-in Kubernetes types and Portero's API.
func New() *runtime.Scheme {
	s := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(s); err != nil {
		panic(err) // static registration: cannot fail short of a programming error
	}
	if err := billingv1alpha1.AddToScheme(s); err != nil {
		panic(err)
	}
	return s
}
