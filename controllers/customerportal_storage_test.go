package controllers

import (
	"context"
	"fmt"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	billingv1alpha1 "github.com/portero-dev/portero/api/v1alpha1"
)

// The SQLite volume goes with its CustomerPortal, unless the portal carries
// billing.portero.dev/keep-storage-on-delete: "true". envtest runs no garbage collector, so each
// case checks both things that decide a volume's fate in a cluster: its owner reference (what the
// garbage collector follows) and what the operator's finalizer deletes itself.

// getPVC reads a portal's data volume from the API server.
func getPVC(ns, name string) (*corev1.PersistentVolumeClaim, error) {
	pvc := &corev1.PersistentVolumeClaim{}
	return pvc, k8s.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: name}, pvc)
}

// pvcOwnedBy reports whether pvc is controlled by the portal (by UID, so a portal of the same
// name created later does not count).
func pvcOwnedBy(pvc *corev1.PersistentVolumeClaim, p *billingv1alpha1.CustomerPortal) error {
	if !metav1.IsControlledBy(pvc, p) {
		return fmt.Errorf("volume %s has owner references %+v, want the portal %s (uid %s) as controller", pvc.Name, pvc.OwnerReferences, p.Name, p.UID)
	}
	return nil
}

func pvcUnowned(pvc *corev1.PersistentVolumeClaim) error {
	if len(pvc.OwnerReferences) != 0 {
		return fmt.Errorf("volume %s has owner references %+v; the garbage collector would delete it with its owner", pvc.Name, pvc.OwnerReferences)
	}
	return nil
}

// deletePortalAndWait deletes the portal and waits until it is gone: the operator's finalizer has
// run by then, so whatever it was going to delete it has deleted.
func deletePortalAndWait(t *testing.T, p *billingv1alpha1.CustomerPortal) {
	t.Helper()
	if err := k8s.Delete(context.Background(), p); err != nil {
		t.Fatal(err)
	}
	eventually(t, "portal "+p.Name+" gone", func() error {
		err := k8s.Get(context.Background(), client.ObjectKeyFromObject(p), &billingv1alpha1.CustomerPortal{})
		if apierrors.IsNotFound(err) {
			return nil
		}
		return fmt.Errorf("still there (%v)", err)
	})
}

// pvcDeleted is nil once the volume is gone or being deleted (the PVC-protection finalizer,
// which envtest never releases, may hold it).
func pvcDeleted(ns, name string) func() error {
	return func() error {
		pvc, err := getPVC(ns, name)
		if apierrors.IsNotFound(err) || (err == nil && !pvc.DeletionTimestamp.IsZero()) {
			return nil
		}
		return fmt.Errorf("volume %s still there and not being deleted (%v)", name, err)
	}
}

// pvcSurvives checks, for a while, that the volume exists, is not being deleted and has no
// owner: after its portal's deletion, nothing the operator or the garbage collector does would
// remove it.
func pvcSurvives(t *testing.T, ns, name string) {
	t.Helper()
	consistently(t, "volume "+name+" survives its portal", time.Second, func() error {
		pvc, err := getPVC(ns, name)
		if err != nil {
			return err
		}
		if !pvc.DeletionTimestamp.IsZero() {
			return fmt.Errorf("volume %s is being deleted", name)
		}
		return pvcUnowned(pvc)
	})
}

func TestKeepStorageOnDelete(t *testing.T) {
	ns := newNamespace(t)
	startPortalController(t)
	createSecret(t, ns, "smtp", map[string]string{"host": "smtp.example"})
	kept := minimalPortal(ns, "kept")
	kept.Annotations = map[string]string{AnnotationKeepPVC: "true"}
	dropped := minimalPortal(ns, "dropped")
	for _, p := range []*billingv1alpha1.CustomerPortal{kept, dropped} {
		if err := k8s.Create(context.Background(), p); err != nil {
			t.Fatal(err)
		}
	}
	keptPVC, droppedPVC := namesFor(kept).pvc, namesFor(dropped).pvc

	eventually(t, "the kept portal's volume, without an owner", func() error {
		pvc, err := getPVC(ns, keptPVC)
		if err != nil {
			return err
		}
		return pvcUnowned(pvc)
	})
	eventually(t, "the other portal's volume, owned by it", func() error {
		pvc, err := getPVC(ns, droppedPVC)
		if err != nil {
			return err
		}
		return pvcOwnedBy(pvc, getPortal(t, dropped))
	})

	deletePortalAndWait(t, dropped)
	eventually(t, "the volume of the portal without the annotation deleted", pvcDeleted(ns, droppedPVC))

	deletePortalAndWait(t, kept)
	pvcSurvives(t, ns, keptPVC)
}

// The annotation is read on every reconcile: added to a running portal it releases the volume
// (the owner reference goes), removed it takes the volume back, and what the portal carries when
// it is deleted decides.
func TestKeepStorageAnnotationOnARunningPortal(t *testing.T) {
	ns := newNamespace(t)
	startPortalController(t)
	createSecret(t, ns, "smtp", map[string]string{"host": "smtp.example"})
	p := minimalPortal(ns, "switched")
	if err := k8s.Create(context.Background(), p); err != nil {
		t.Fatal(err)
	}
	name := namesFor(p).pvc
	owned := func() error {
		pvc, err := getPVC(ns, name)
		if err != nil {
			return err
		}
		return pvcOwnedBy(pvc, getPortal(t, p))
	}
	unowned := func() error {
		pvc, err := getPVC(ns, name)
		if err != nil {
			return err
		}
		return pvcUnowned(pvc)
	}
	setKeep := func(v string) {
		update(t, &billingv1alpha1.CustomerPortal{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: p.Name}}, func(cur *billingv1alpha1.CustomerPortal) {
			if v == "" {
				delete(cur.Annotations, AnnotationKeepPVC)
				return
			}
			metav1.SetMetaDataAnnotation(&cur.ObjectMeta, AnnotationKeepPVC, v)
		})
	}

	eventually(t, "volume owned by the portal", owned)
	setKeep("true")
	eventually(t, "volume released once the annotation is added", unowned)
	setKeep("")
	eventually(t, "volume owned again once the annotation is removed", owned)
	// Only "true" keeps it, as the README says: any other value leaves the volume owned.
	setKeep("yes")
	consistently(t, "volume still owned with keep-storage-on-delete: yes", 500*time.Millisecond, owned)
	setKeep("true")
	eventually(t, "volume released again", unowned)

	deletePortalAndWait(t, p)
	pvcSurvives(t, ns, name)
}
