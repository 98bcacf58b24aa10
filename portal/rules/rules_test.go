package rules

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	billingv1alpha1 "github.com/portero-dev/portero/api/v1alpha1"
	"github.com/portero-dev/portero/internal/testenv"
)

var (
	env *testenv.Env
	k8s client.Client
)

func TestMain(m *testing.M) { os.Exit(testenv.Main(m, &env, &k8s)) }

// newNamespace creates a namespace for one test.
func newNamespace(tb testing.TB) string {
	tb.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "rules-"}}
	if err := k8s.Create(context.Background(), ns); err != nil {
		tb.Fatal(err)
	}
	return ns.Name
}

func poll(t *testing.T, what string, f func() error) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	var err error
	for time.Now().Before(deadline) {
		if err = f(); err == nil {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("%s: %v", what, err)
}

func TestRulesFollowTheResourceLive(t *testing.T) {
	ns := newNamespace(t) // objects outlive the test under -count=N
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	p := &billingv1alpha1.CustomerPortal{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "live"},
		Spec: billingv1alpha1.CustomerPortalSpec{
			DisplayName: "Live",
			Access:      billingv1alpha1.Access{Public: billingv1alpha1.PublicAccess{Enabled: ptr.To(false)}},
		},
	}
	other := p.DeepCopy()
	other.Name = "other"
	for _, o := range []*billingv1alpha1.CustomerPortal{p, other} {
		if err := k8s.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	r, err := Start(ctx, env.Config, types.NamespacedName{Namespace: ns, Name: "live"})
	if err != nil {
		t.Fatal(err)
	}
	if got := r.Portal(ctx); got == nil || !got.Spec.Permissions.CanUpdatePaymentMethod() {
		t.Fatalf("portal not seen with its defaults: %+v", got)
	}

	p.Spec.Permissions.UpdatePaymentMethod = ptr.To(false)
	if err := k8s.Update(ctx, p); err != nil {
		t.Fatal(err)
	}
	poll(t, "permission change seen without restart", func() error {
		if r.Portal(ctx).Spec.Permissions.CanUpdatePaymentMethod() {
			return fmt.Errorf("still allowed")
		}
		return nil
	})

	// Sessions: found by token hash only when they belong to this portal; Usable checks expiry itself.
	token := "tok-live"
	sum := sha256.Sum256([]byte(token))
	hash := hex.EncodeToString(sum[:])
	mk := func(name, portal string) *billingv1alpha1.PortalSession {
		s := &billingv1alpha1.PortalSession{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
			Spec:       billingv1alpha1.PortalSessionSpec{PortalRef: billingv1alpha1.PortalReference{Name: portal}, Customer: billingv1alpha1.CustomerReference{ID: "cus_1"}},
		}
		if err := k8s.Create(ctx, s); err != nil {
			t.Fatal(err)
		}
		s.Status = billingv1alpha1.PortalSessionStatus{Phase: billingv1alpha1.SessionActive, TokenHash: hash, ExpiresAt: &metav1.Time{Time: time.Now().Add(time.Hour)}}
		if err := k8s.Status().Update(ctx, s); err != nil {
			t.Fatal(err)
		}
		return s
	}
	mk("for-other", "other")
	if s := r.SessionByTokenHash(ctx, hash); s != nil {
		t.Fatalf("a session of another portal was accepted: %s", s.Name)
	}
	mine := mk("for-live", "live")
	poll(t, "own session found by hash", func() error {
		s := r.SessionByTokenHash(ctx, hash)
		if s == nil || s.Name != "for-live" {
			return fmt.Errorf("got %v", s)
		}
		if !Usable(s, time.Now()) {
			return fmt.Errorf("active session not usable")
		}
		if Usable(s, mine.Status.ExpiresAt.Add(time.Second)) {
			return fmt.Errorf("usable after expiresAt")
		}
		return nil
	})
	mine.Spec.Revoked = true
	if err := k8s.Update(ctx, mine); err != nil {
		t.Fatal(err)
	}
	poll(t, "revocation seen", func() error {
		if Usable(r.SessionByTokenHash(ctx, hash), time.Now()) {
			return fmt.Errorf("revoked session still usable")
		}
		return nil
	})
}

// The lookups follow a session's token hash changing and its deletion, and the portal's.
func TestRulesFollowChangesAndDeletes(t *testing.T) {
	ns := newNamespace(t) // objects outlive the test under -count=N
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	p := &billingv1alpha1.CustomerPortal{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "churn"},
		Spec: billingv1alpha1.CustomerPortalSpec{DisplayName: "Churn", Access: billingv1alpha1.Access{Public: billingv1alpha1.PublicAccess{Enabled: ptr.To(false)}}}}
	if err := k8s.Create(ctx, p); err != nil {
		t.Fatal(err)
	}
	r, err := Start(ctx, env.Config, types.NamespacedName{Namespace: ns, Name: "churn"})
	if err != nil {
		t.Fatal(err)
	}
	hashOf := func(tok string) string { sum := sha256.Sum256([]byte(tok)); return hex.EncodeToString(sum[:]) }
	s := &billingv1alpha1.PortalSession{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "churn-1"},
		Spec: billingv1alpha1.PortalSessionSpec{PortalRef: billingv1alpha1.PortalReference{Name: "churn"}, Customer: billingv1alpha1.CustomerReference{ID: "cus_1"}}}
	if err := k8s.Create(ctx, s); err != nil {
		t.Fatal(err)
	}
	s.Status = billingv1alpha1.PortalSessionStatus{Phase: billingv1alpha1.SessionActive, TokenHash: hashOf("a"), ExpiresAt: &metav1.Time{Time: time.Now().Add(time.Hour)}}
	if err := k8s.Status().Update(ctx, s); err != nil {
		t.Fatal(err)
	}
	poll(t, "session seen by name and hash", func() error {
		if r.Session(ctx, "churn-1") == nil || r.SessionByTokenHash(ctx, hashOf("a")) == nil {
			return fmt.Errorf("not yet")
		}
		return nil
	})
	s.Status.TokenHash = hashOf("b")
	if err := k8s.Status().Update(ctx, s); err != nil {
		t.Fatal(err)
	}
	poll(t, "new hash replaces the old", func() error {
		if r.SessionByTokenHash(ctx, hashOf("a")) != nil || r.SessionByTokenHash(ctx, hashOf("b")) == nil {
			return fmt.Errorf("not yet")
		}
		return nil
	})
	if err := k8s.Delete(ctx, s); err != nil {
		t.Fatal(err)
	}
	poll(t, "deleted session gone", func() error {
		if r.Session(ctx, "churn-1") != nil || r.SessionByTokenHash(ctx, hashOf("b")) != nil {
			return fmt.Errorf("still there")
		}
		return nil
	})
	if err := k8s.Delete(ctx, p); err != nil {
		t.Fatal(err)
	}
	poll(t, "deleted portal gone", func() error {
		if r.Portal(ctx) != nil {
			return fmt.Errorf("still there")
		}
		return nil
	})
}

// BenchmarkLookups is what every signed-in request asks of the rules.
func BenchmarkLookups(b *testing.B) {
	ns := newNamespace(b) // objects outlive the test under -count=N
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	p := &billingv1alpha1.CustomerPortal{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "bench"},
		Spec: billingv1alpha1.CustomerPortalSpec{DisplayName: "Bench", Access: billingv1alpha1.Access{Public: billingv1alpha1.PublicAccess{Enabled: ptr.To(false)}}}}
	if err := k8s.Create(ctx, p); err != nil {
		b.Fatal(err)
	}
	defer k8s.Delete(context.Background(), p)
	s := &billingv1alpha1.PortalSession{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "bench-1"},
		Spec: billingv1alpha1.PortalSessionSpec{PortalRef: billingv1alpha1.PortalReference{Name: "bench"}, Customer: billingv1alpha1.CustomerReference{ID: "cus_1"}}}
	if err := k8s.Create(ctx, s); err != nil {
		b.Fatal(err)
	}
	defer k8s.Delete(context.Background(), s)
	r, err := Start(ctx, env.Config, types.NamespacedName{Namespace: ns, Name: "bench"})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if r.Portal(ctx) == nil || r.Session(ctx, "bench-1") == nil {
			b.Fatal("not found")
		}
	}
}

// awaitAsync starts an AwaitSessionByTokenHash in the background; its answer comes on the channel.
func awaitAsync(ctx context.Context, r *Rules, hash string, wait time.Duration) <-chan *billingv1alpha1.PortalSession {
	ch := make(chan *billingv1alpha1.PortalSession, 1)
	go func() { ch <- r.AwaitSessionByTokenHash(ctx, hash, wait) }()
	return ch
}

// answer receives an awaited lookup's answer; a lookup that does not answer in time fails the
// test (the waits under test are far shorter, or ended by the test itself).
func answer(t *testing.T, ch <-chan *billingv1alpha1.PortalSession) *billingv1alpha1.PortalSession {
	t.Helper()
	select {
	case s := <-ch:
		return s
	case <-time.After(20 * time.Second):
		t.Fatal("the lookup did not answer")
		return nil
	}
}

// parked waits until n lookups are parked (or none, after they answered).
func parked(t *testing.T, r *Rules, n int32) {
	t.Helper()
	poll(t, fmt.Sprintf("%d lookups parked", n), func() error {
		if got := r.waiters.Load(); got != n {
			return fmt.Errorf("%d parked", got)
		}
		return nil
	})
}

func viewSession(name, portal, hash string) *billingv1alpha1.PortalSession {
	return &billingv1alpha1.PortalSession{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: name},
		Spec: billingv1alpha1.PortalSessionSpec{PortalRef: billingv1alpha1.PortalReference{Name: portal}},
		Status: billingv1alpha1.PortalSessionStatus{Phase: billingv1alpha1.SessionActive, TokenHash: hash,
			ExpiresAt: &metav1.Time{Time: time.Now().Add(time.Hour)}}}
}

// A link followed before the view has its session's hash waits for the informer's event
// rather than answering "unknown"; unrelated events wake it without ending the wait.
func TestAwaitSessionByTokenHashSeesALateSession(t *testing.T) {
	ctx := context.Background()
	r := newRules(types.NamespacedName{Namespace: "default", Name: "late"})
	sum := sha256.Sum256([]byte("tok-late"))
	hash := hex.EncodeToString(sum[:])
	got := awaitAsync(ctx, r, hash, time.Hour)
	parked(t, r, 1)
	r.setSession(viewSession("late-other", "late", "another-hash"), false)
	r.setSession(viewSession("late-1", "late", ""), false) // created, no status yet
	r.setSession(viewSession("late-1", "late", hash), false)
	if s := answer(t, got); s == nil || s.Name != "late-1" {
		t.Fatalf("got %v", s)
	}
	parked(t, r, 0)
	// Known hashes answer at once, even with no time to wait.
	if s := r.AwaitSessionByTokenHash(ctx, hash, 0); s == nil || s.Name != "late-1" {
		t.Fatalf("known hash: got %v", s)
	}
}

// The same through the API server and the informer: the session exists first, as the operator
// creates it, and its status with the token hash comes while the lookup waits.
func TestAwaitSessionByTokenHashThroughTheInformer(t *testing.T) {
	ns := newNamespace(t) // objects outlive the test under -count=N
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	p := &billingv1alpha1.CustomerPortal{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "await"},
		Spec: billingv1alpha1.CustomerPortalSpec{DisplayName: "Await", Access: billingv1alpha1.Access{Public: billingv1alpha1.PublicAccess{Enabled: ptr.To(false)}}}}
	if err := k8s.Create(ctx, p); err != nil {
		t.Fatal(err)
	}
	defer k8s.Delete(context.Background(), p)
	r, err := Start(ctx, env.Config, types.NamespacedName{Namespace: ns, Name: "await"})
	if err != nil {
		t.Fatal(err)
	}
	s := &billingv1alpha1.PortalSession{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "await-1"},
		Spec: billingv1alpha1.PortalSessionSpec{PortalRef: billingv1alpha1.PortalReference{Name: "await"}, Customer: billingv1alpha1.CustomerReference{ID: "cus_1"}}}
	if err := k8s.Create(ctx, s); err != nil {
		t.Fatal(err)
	}
	defer k8s.Delete(context.Background(), s)
	poll(t, "session seen by name", func() error {
		if r.Session(ctx, "await-1") == nil {
			return fmt.Errorf("not yet")
		}
		return nil
	})
	sum := sha256.Sum256([]byte("tok-await"))
	hash := hex.EncodeToString(sum[:])
	got := awaitAsync(ctx, r, hash, time.Minute)
	parked(t, r, 1)
	s.Status = billingv1alpha1.PortalSessionStatus{Phase: billingv1alpha1.SessionActive, TokenHash: hash, ExpiresAt: &metav1.Time{Time: time.Now().Add(time.Hour)}}
	if err := k8s.Status().Update(ctx, s); err != nil {
		t.Fatal(err)
	}
	if s := answer(t, got); s == nil || s.Name != "await-1" || !Usable(s, time.Now()) {
		t.Fatalf("got %+v", s)
	}
}

// An unknown hash is answered nil when the wait passes or the request ends; another portal's
// session with that hash does not count.
func TestAwaitSessionByTokenHashGivesUp(t *testing.T) {
	r := newRules(types.NamespacedName{Namespace: "default", Name: "giveup"})
	hash := "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	r.setSession(viewSession("giveup-foreign", "elsewhere", hash), false)
	if s := answer(t, awaitAsync(context.Background(), r, hash, 10*time.Millisecond)); s != nil {
		t.Fatalf("deadline: got %s", s.Name)
	}
	if s := r.AwaitSessionByTokenHash(context.Background(), hash, 0); s != nil {
		t.Fatalf("no wait: got %s", s.Name)
	}
	ctx, cancel := context.WithCancel(context.Background())
	got := awaitAsync(ctx, r, hash, time.Hour)
	parked(t, r, 1)
	cancel()
	if s := answer(t, got); s != nil {
		t.Fatalf("canceled: got %s", s.Name)
	}
	parked(t, r, 0)
}

// Beyond the cap, unknown hashes are answered at once: made-up tokens cannot park goroutines
// without bound. The parked ones still get their session.
func TestAwaitSessionByTokenHashCapsWaiters(t *testing.T) {
	if MaxTokenWaiters != 256 || newRules(types.NamespacedName{}).maxWaiters != MaxTokenWaiters {
		t.Fatal("the default cap changed")
	}
	r := newRules(types.NamespacedName{Namespace: "default", Name: "cap"})
	r.maxWaiters = 2
	sum := sha256.Sum256([]byte("tok-cap"))
	hash := hex.EncodeToString(sum[:])
	first, second := awaitAsync(context.Background(), r, hash, time.Hour), awaitAsync(context.Background(), r, hash, time.Hour)
	parked(t, r, 2)
	if s := answer(t, awaitAsync(context.Background(), r, "f00d", time.Hour)); s != nil {
		t.Fatalf("over the cap: got %s", s.Name)
	}
	if got := r.waiters.Load(); got != 2 {
		t.Fatalf("%d parked after a refused wait", got)
	}
	r.setSession(viewSession("cap-1", "cap", hash), false)
	for _, ch := range []<-chan *billingv1alpha1.PortalSession{first, second} {
		if s := answer(t, ch); s == nil || s.Name != "cap-1" {
			t.Fatalf("parked lookup: got %v", s)
		}
	}
	parked(t, r, 0)
}
