// Command localrun is `make run`: the whole Portero system on this machine with no cluster (see
// internal/localsys). It stays in the foreground until Ctrl-C or SIGTERM, then stops every process
// it started. A second run while one is running fails at once.
package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/portero-dev/portero/internal/localsys"
)

func main() {
	var assets, binDir string
	flag.StringVar(&assets, "assets", "bin/k8s", "Directory with kube-apiserver, etcd, kubectl and mailpit.")
	flag.StringVar(&binDir, "bin", "bin", "Directory with the manager and portal binaries; state goes to <bin>/local.")
	flag.Parse()
	if err := run(assets, binDir); err != nil {
		fmt.Fprintln(os.Stderr, "make run:", err)
		os.Exit(1)
	}
}

func run(assets, binDir string) error {
	binDir, _ = filepath.Abs(binDir)
	state := filepath.Join(binDir, "local")
	if err := os.MkdirAll(state, 0o755); err != nil {
		return err
	}
	unlock, err := lock(filepath.Join(state, "run.lock"))
	if err != nil {
		return err
	}
	defer unlock()
	killStale(state)

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	sys, err := localsys.Start(ctx, localsys.Options{
		Assets: assets, Bin: binDir, State: state, Root: filepath.Dir(binDir), Progress: os.Stdout,
	})
	if err != nil {
		return err
	}
	defer func() {
		fmt.Println("==> stopping")
		sys.Stop()
	}()

	envFile := filepath.Join(state, "env")
	var env strings.Builder
	for _, kv := range sys.Env() {
		k, v, _ := strings.Cut(kv, "=")
		fmt.Fprintf(&env, "export %s=%q\n", k, v)
	}
	abs, _ := filepath.Abs(assets)
	fmt.Fprintf(&env, "export PATH=%q:%q:\"$PATH\"  # kubectl v1.37.2, and kubectl portero from bin/\n", abs, binDir)
	if err := os.WriteFile(envFile, []byte(env.String()), 0o600); err != nil {
		return err
	}
	fmt.Printf(`
Portero is running — no cluster needed: a local kube-apiserver + etcd, the operator, three portals.

  Portal "general" (every payment method):           %s
  Portal "estrategicas" (transfer and direct debit):  %s
  Portal "tarjetas" (cards, entered at Stripe):       %s
  stripe-mock (tarjetas's Stripe, $STRIPE_API_BASE):  %s
  Demo customer's session link (no login needed):     %s
  Mail catcher (one-time codes and links):            %s
  Merchant API (key in $MERCHANT_API_KEY):            %s
  Webhook catcher (the general portal's events):      %s
  Portal metrics (general, estrategicas, tarjetas):   %s

  Sign in on a portal's public link as ana.garcia@example.com; the code arrives in the mail catcher.
  Any CustomerPortal you apply, in any namespace, is served too: its URL appears above and in
  kubectl get cportal -A.

  In another terminal:
    source %s
    kubectl get cportal,psession -A
    kubectl portero share %s --portal %s
    curl -s -H "Authorization: Bearer $MERCHANT_API_KEY" "$MERCHANT_API_URL/customers"
    kubectl get secret tarjetas-stripe -o jsonpath='{.data.webhook_secret}' | base64 -d   # signs tarjetas's POST /webhooks/stripe

  State lives in %s (make clean-local wipes it). Press Ctrl-C to stop everything.
==> ready
`, sys.Portals[0].URL, sys.Portals[1].URL, sys.Portals[2].URL, sys.StripeAPIBase, sys.DemoSessionURL, sys.MailpitURL,
		sys.MerchantAPIURL, sys.WebhookCatcherURL, sys.Portals[0].Metrics+" "+sys.Portals[1].Metrics+" "+sys.Portals[2].Metrics, envFile,
		sys.DemoCustomerID, sys.Portals[0].Name, state)

	<-ctx.Done()
	return nil
}

// lock takes an exclusive, non-blocking flock so a second `make run` fails at once with a clear message.
func lock(path string) (func(), error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		b, _ := os.ReadFile(path)
		_ = f.Close()
		return nil, fmt.Errorf("another `make run` is already running (pid %s): stop it with Ctrl-C first", strings.TrimSpace(string(b)))
	}
	_ = f.Truncate(0)
	_, _ = f.WriteString(strconv.Itoa(os.Getpid()))
	return func() { _ = os.Remove(path); _ = f.Close() }, nil
}

// killStale ends processes an earlier run left behind (it was killed with SIGKILL, say): every
// process whose command line mentions this run's state directory.
func killStale(state string) {
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil || !bytes.Contains(cmdline, []byte(state+string(filepath.Separator))) {
			continue
		}
		if p, err := os.FindProcess(pid); err == nil {
			fmt.Printf("==> stopping pid %d left over from an earlier run\n", pid)
			_ = p.Signal(syscall.SIGKILL)
		}
	}
}
