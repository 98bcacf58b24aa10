package localsys

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// spawn starts a child that dies with localrun (Pdeathsig) and logs to <local>/<name>.log.
func (s *System) spawn(ctx context.Context, name string, env []string, bin string, args ...string) (*exec.Cmd, error) {
	local := s.opts.State
	if _, err := os.Stat(bin); err != nil {
		return nil, fmt.Errorf("%s missing: run `make build envtest-assets`", bin)
	}
	logf, err := os.Create(filepath.Join(local, name+".log"))
	if err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Env = append(os.Environ(), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 10 * time.Second
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	s.children = append(s.children, cmd)
	return cmd, nil
}

// startMailpit runs Mailpit with its mailbox under bin/local, so mail survives a restart.
func (s *System) startMailpit(ctx context.Context) (smtpPort string, err error) {
	local := s.opts.State
	smtpPort, httpPort := freePort(), freePort()
	_, err = s.spawn(ctx, "mailpit", nil, filepath.Join(s.opts.Assets, "mailpit"),
		"--smtp", "127.0.0.1:"+smtpPort,
		"--listen", "127.0.0.1:"+httpPort,
		"--database", filepath.Join(local, "mailpit.db"),
		"--disable-version-check", "--smtp-disable-rdns",
		"--smtp-auth-accept-any", "--smtp-auth-allow-insecure")
	if err != nil {
		return "", err
	}
	s.MailpitURL = "http://127.0.0.1:" + httpPort + "/"
	if err := WaitHTTP(ctx, s.MailpitURL+"api/v1/info", 30*time.Second); err != nil {
		return "", fmt.Errorf("mailpit: %w", err)
	}
	return smtpPort, nil
}

// startPortal runs one portal server process for a sample portal, on its loopback port.
func (s *System) startPortal(ctx context.Context, ledgerDir string, p localPortal) error {
	kubeconfig := s.Kubeconfig
	if err := os.MkdirAll(ledgerDir, 0o700); err != nil {
		return err
	}
	cmd, err := s.spawn(ctx, p.name, []string{"KUBECONFIG=" + kubeconfig}, filepath.Join(s.opts.Bin, "portal"),
		"--portal=default/"+p.name,
		"--listen=127.0.0.1:"+p.port,
		"--data-dir="+ledgerDir,
		"--kubeconfig="+kubeconfig)
	if err != nil {
		return err
	}
	fmt.Fprintf(s.opts.Progress, "    %s: pid %d on %s\n", p.name, cmd.Process.Pid, p.url())
	return nil
}

// WaitHTTP polls url until it answers 200, the deadline passes or ctx ends.
func WaitHTTP(ctx context.Context, url string, timeout time.Duration) error {
	c := &http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(timeout)
	var last error
	for time.Now().Before(deadline) {
		resp, err := c.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			last = fmt.Errorf("%s: %s", url, resp.Status)
		} else {
			last = err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	return last
}

// playKubelet stands in for the kubelet and the Deployment controller, which a local run has
// not: while a portal process answers /readyz, its Deployment is reported available, so the
// CustomerPortal turns Ready as it would in a cluster.
func playKubelet(ctx context.Context, c client.Client, portals []localPortal) {
	tick := time.NewTicker(2 * time.Second)
	defer tick.Stop()
	for {
		for _, p := range portals {
			ready := WaitHTTP(ctx, p.url()+"readyz", 500*time.Millisecond) == nil
			d := &appsv1.Deployment{}
			if err := c.Get(ctx, client.ObjectKey{Namespace: "default", Name: p.name + "-portal"}, d); err != nil {
				continue
			}
			var n int32
			if ready {
				n = 1
			}
			avail := corev1.ConditionFalse
			if ready {
				avail = corev1.ConditionTrue
			}
			if d.Status.ObservedGeneration == d.Generation && d.Status.ReadyReplicas == n && len(d.Status.Conditions) > 0 && d.Status.Conditions[0].Status == avail {
				continue
			}
			now := metav1.Now()
			d.Status = appsv1.DeploymentStatus{
				ObservedGeneration: d.Generation, Replicas: 1, UpdatedReplicas: 1, ReadyReplicas: n, AvailableReplicas: n,
				Conditions: []appsv1.DeploymentCondition{{Type: appsv1.DeploymentAvailable, Status: avail, Reason: "LocalProcess", Message: "portal process on " + p.url(), LastUpdateTime: now, LastTransitionTime: now}},
			}
			_ = c.Status().Update(ctx, d)
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}
