package stripe_test

import (
	"fmt"
	"os"
	"testing"

	"github.com/portero-dev/portero/portal/payments/stripe/stripemock"
)

// mockURL is the package's stripe-mock, started once: it takes seconds to load Stripe's spec.
var mockURL string

func TestMain(m *testing.M) {
	s, err := stripemock.StartProcess()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	mockURL = s.URL
	code := m.Run()
	if err := s.Stop(); err != nil {
		fmt.Fprintln(os.Stderr, "stop stripe-mock:", err)
	}
	os.Exit(code)
}
