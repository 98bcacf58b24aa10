// Command localrun is `make run`: the whole Portero system on one machine with no cluster — a real
// kube-apiserver and etcd (built by hack/build-tools.sh), the CRDs, the operator, and the samples.
// It stays in the foreground until Ctrl-C or SIGTERM, then stops every process it started.
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/portero-dev/portero/internal/scheme"
)

func main() {
	var assets, binDir string
	flag.StringVar(&assets, "assets", "bin/k8s", "Directory with kube-apiserver, etcd and kubectl.")
	flag.StringVar(&binDir, "bin", "bin", "Directory with the manager binary; local state goes to <bin>/local.")
	flag.Parse()
	if err := run(assets, binDir); err != nil {
		fmt.Fprintln(os.Stderr, "make run:", err)
		os.Exit(1)
	}
}

// system is everything localrun started, so stop can end all of it.
type system struct {
	env      *envtest.Environment
	children []*exec.Cmd
}

func run(assets, binDir string) error {
	assets, _ = filepath.Abs(assets)
	binDir, _ = filepath.Abs(binDir)
	root := filepath.Dir(binDir)
	local := filepath.Join(binDir, "local")
	if err := os.MkdirAll(local, 0o755); err != nil {
		return err
	}
	unlock, err := lock(filepath.Join(local, "run.lock"))
	if err != nil {
		return err
	}
	defer unlock()
	killStale(local)

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	sys := &system{}
	defer sys.stop()

	step("starting the control plane (kube-apiserver + etcd)")
	cfg, kubeconfig, err := sys.startControlPlane(assets, root, local)
	if err != nil {
		return err
	}

	step("starting the operator")
	if err := sys.startManager(ctx, filepath.Join(binDir, "manager"), kubeconfig, local); err != nil {
		return err
	}

	step("applying config/samples")
	if err := applySamples(ctx, cfg, filepath.Join(root, "config", "samples")); err != nil {
		return err
	}

	envFile := filepath.Join(local, "env")
	envText := fmt.Sprintf("export KUBECONFIG=%s\n", kubeconfig)
	if err := os.WriteFile(envFile, []byte(envText), 0o644); err != nil {
		return err
	}
	kubectl := filepath.Join(assets, "kubectl")
	fmt.Printf(`
Portero is ready (no cluster needed: a local kube-apiserver + etcd).

  In another terminal:
    source %s
    %s get cportal,psession -A

  State lives in %s (make clean-local wipes it). Press Ctrl-C to stop everything.
`, envFile, kubectl, local)

	<-ctx.Done()
	step("stopping")
	return nil
}

func step(msg string) { fmt.Printf("==> %s\n", msg) }

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

// killStale ends processes a previous run left behind (it was killed with SIGKILL, say): every
// process whose command line mentions this run's state directory.
func killStale(local string) {
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil || !bytes.Contains(cmdline, []byte(local+string(filepath.Separator))) {
			continue
		}
		if p, err := os.FindProcess(pid); err == nil {
			fmt.Printf("==> stopping pid %d left over from an earlier run\n", pid)
			_ = p.Signal(syscall.SIGKILL)
		}
	}
}

func (s *system) startControlPlane(assets, root, local string) (*rest.Config, string, error) {
	for _, bin := range []string{"kube-apiserver", "etcd", "kubectl"} {
		if _, err := os.Stat(filepath.Join(assets, bin)); err != nil {
			return nil, "", fmt.Errorf("%s missing in %s: run `make envtest-assets`", bin, assets)
		}
	}
	etcdDir := filepath.Join(local, "etcd")
	certDir := filepath.Join(local, "apiserver")
	_ = os.RemoveAll(certDir) // fresh serving certs each run; etcd data persists
	if err := os.MkdirAll(certDir, 0o700); err != nil {
		return nil, "", err
	}
	s.env = &envtest.Environment{
		BinaryAssetsDirectory:    assets,
		CRDDirectoryPaths:        []string{filepath.Join(root, "config", "crd", "bases")},
		ErrorIfCRDPathMissing:    true,
		ControlPlaneStartTimeout: 2 * time.Minute,
		ControlPlaneStopTimeout:  30 * time.Second,
	}
	s.env.ControlPlane.Etcd = &envtest.Etcd{DataDir: etcdDir}
	s.env.ControlPlane.APIServer = &envtest.APIServer{CertDir: certDir}
	if _, err := s.env.Start(); err != nil {
		return nil, "", fmt.Errorf("start control plane: %w", err)
	}
	admin, err := s.env.AddUser(envtest.User{Name: "portero-admin", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		return nil, "", fmt.Errorf("create admin user: %w", err)
	}
	kc, err := admin.KubeConfig()
	if err != nil {
		return nil, "", err
	}
	kubeconfig := filepath.Join(local, "kubeconfig")
	if err := os.WriteFile(kubeconfig, kc, 0o600); err != nil {
		return nil, "", err
	}
	return admin.Config(), kubeconfig, nil
}

// startManager runs the operator as its own process, as it runs in a cluster.
func (s *system) startManager(ctx context.Context, bin, kubeconfig, local string) error {
	if _, err := os.Stat(bin); err != nil {
		return fmt.Errorf("%s missing: run `make build`", bin)
	}
	logf, err := os.Create(filepath.Join(local, "manager.log"))
	if err != nil {
		return err
	}
	metrics, probes := freePort(), freePort()
	cmd := exec.CommandContext(ctx, bin,
		"--metrics-bind-address=127.0.0.1:"+metrics,
		"--health-probe-bind-address=127.0.0.1:"+probes,
		"--portal-image=portero-portal:local",
		"--kubeconfig="+kubeconfig)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Env = append(os.Environ(), "KUBECONFIG="+kubeconfig)
	// The manager dies with us even if we are killed without a chance to stop it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 10 * time.Second
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start manager: %w", err)
	}
	s.children = append(s.children, cmd)
	fmt.Printf("    operator pid %d, metrics http://127.0.0.1:%s/metrics, log %s\n", cmd.Process.Pid, metrics, logf.Name())
	return nil
}

func freePort() string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer l.Close()
	return strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
}

// applySamples server-side applies every object in dir into the default namespace.
func applySamples(ctx context.Context, cfg *rest.Config, dir string) error {
	c, err := client.New(cfg, client.Options{Scheme: scheme.New()})
	if err != nil {
		return err
	}
	files, _ := filepath.Glob(filepath.Join(dir, "*.yaml"))
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return err
		}
		dec := yaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
		for {
			u := &unstructured.Unstructured{}
			if err := dec.Decode(&u.Object); err != nil {
				if errors.Is(err, os.ErrClosed) || err.Error() == "EOF" {
					break
				}
				return fmt.Errorf("%s: %w", f, err)
			}
			if len(u.Object) == 0 {
				continue
			}
			if u.GetNamespace() == "" {
				u.SetNamespace("default")
			}
			err := c.Create(ctx, u)
			if apierrors.IsAlreadyExists(err) {
				continue // a rerun keeps what the person changed since
			}
			if err != nil {
				return fmt.Errorf("apply %s %s from %s: %w", u.GetKind(), u.GetName(), filepath.Base(f), err)
			}
		}
	}
	return nil
}

// stop ends every process in reverse start order, then the control plane.
func (s *system) stop() {
	for i := len(s.children) - 1; i >= 0; i-- {
		c := s.children[i]
		if c.Process == nil || c.ProcessState != nil {
			continue
		}
		_ = c.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = c.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = c.Process.Kill()
			<-done
		}
	}
	if s.env != nil {
		if err := s.env.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "stop control plane:", err)
		}
	}
}
