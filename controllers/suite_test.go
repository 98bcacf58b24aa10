package controllers

import (
	"context"
	"os"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/manager"

	"github.com/portero-dev/portero/internal/testenv"
)

// The whole package shares one real control plane; each test uses its own namespace and its own
// manager, so reconcilers and clocks never leak between tests.
var (
	env *testenv.Env
	k8s client.Client
)

func TestMain(m *testing.M) { os.Exit(testenv.Main(m, &env, &k8s)) }

// startManager runs a manager configured as cmd/manager configures it (same cache restrictions),
// with setup registering the reconcilers under test. It stops when the test ends.
func startManager(t *testing.T, setup func(mgr manager.Manager) error) manager.Manager {
	t.Helper()
	mgr, stop, err := testenv.StartManager(env.Config, ManagerOptions(env.Scheme, true), setup)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := stop(); err != nil {
			t.Errorf("manager: %v", err)
		}
	})
	return mgr
}

// newNamespace creates a namespace for one test.
func newNamespace(t *testing.T) string {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "t-"}}
	if err := k8s.Create(context.Background(), ns); err != nil {
		t.Fatal(err)
	}
	return ns.Name
}

// eventually polls f until it returns nil or the deadline passes; it never sleeps for timing,
// only between polls.
func eventually(t *testing.T, what string, f func() error) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	var err error
	for time.Now().Before(deadline) {
		if err = f(); err == nil {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s: still not true after 30s: %v", what, err)
}

// consistently checks that f keeps returning nil for d.
func consistently(t *testing.T, what string, d time.Duration, f func() error) {
	t.Helper()
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if err := f(); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// update edits the latest copy of obj the way a person with kubectl edit would: read, change,
// write, and again on a conflict. The operator writes status and its own objects while a test
// edits them, so a write made from an older read is refused by the API server (optimistic
// concurrency) and must be redone, never forced.
func update[T client.Object](t *testing.T, obj T, edit func(T)) {
	t.Helper()
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		if err := k8s.Get(context.Background(), client.ObjectKeyFromObject(obj), obj); err != nil {
			return err
		}
		edit(obj)
		return k8s.Update(context.Background(), obj)
	})
	if err != nil {
		t.Fatal(err)
	}
}
