// Command kubectl-portero is the kubectl plugin `kubectl portero`: share, list and revoke
// Portero customer portal links from a terminal (see internal/plugin). Install it with
//
//	go install github.com/portero-dev/portero/cmd/kubectl-portero@latest
//
// or from hack/krew/portero.yaml; kubectl finds any kubectl-* program on the PATH.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/go-logr/logr"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/portero-dev/portero/internal/plugin"
)

// version is set at release time (hack/krew/release.sh: -X main.version=v…).
var version = "dev"

func main() {
	// The controller-runtime client logs nothing a person needs here; unset, it would complain
	// on stderr that no logger was configured.
	ctrllog.SetLogger(logr.Discard())
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	streams := genericiooptions.IOStreams{In: os.Stdin, Out: os.Stdout, ErrOut: os.Stderr}
	cmd := plugin.NewCommand(plugin.Options{IOStreams: streams, Flags: genericclioptions.NewConfigFlags(true), Version: version})
	err := cmd.ExecuteContext(ctx)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "error:", err)
		os.Exit(1)
	}
}
