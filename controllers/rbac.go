package controllers

// The operator's permissions, one marker per resource, each with the calls that need it; `make
// manifests` turns them into config/rbac/role.yaml (ClusterRole manager-role). That ClusterRole
// is bound cluster-wide by config/default, or — in the namespaced install (config/namespaced,
// WATCH_NAMESPACES=… make deploy) — by a RoleBinding in each watched namespace only, which grants
// its rules in that namespace alone. docs/security.md says what each mode exposes.
//
// The manager reads every kind below through its cache (list and watch; get comes with them: it
// reveals nothing list does not). Server-side apply is a patch, and a create when the object does
// not exist yet. Owner references with blockOwnerDeletion need update on the owner's finalizers.
//
// Escalation: RBAC lets the operator create a Role, and bind it, only if the operator itself holds
// every permission in it. Each portal's Role (buildRole) grants get/list/watch on its own
// CustomerPortal, get/list/watch/create/update/patch on PortalSessions, and get on the Secrets its
// spec names: the operator must hold those, even the ones no reconciler calls (portalsessions
// create and update). The alternative, the escalate and bind verbs, would let it grant anything.

// CustomerPortals: read (cache), finalizer add/remove (merge patch), status (update).
// +kubebuilder:rbac:groups=billing.portero.dev,resources=customerportals,verbs=get;list;watch;patch
// +kubebuilder:rbac:groups=billing.portero.dev,resources=customerportals/status,verbs=update
// +kubebuilder:rbac:groups=billing.portero.dev,resources=customerportals/finalizers,verbs=update

// PortalSessions: read (cache; the API reader before recording a delivery), finalizer
// (patch), clean-up of ended sessions (delete), status (patch); create and update only because
// the portals' Roles grant them (see Escalation).
// +kubebuilder:rbac:groups=billing.portero.dev,resources=portalsessions,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups=billing.portero.dev,resources=portalsessions/status,verbs=patch
// +kubebuilder:rbac:groups=billing.portero.dev,resources=portalsessions/finalizers,verbs=update

// Secrets: get the ones a portal references, by name, from the API server (never cached with
// their data) and the link Secrets' data; list and watch for the cache of link Secrets (label
// selected, metadata only) and for the metadata-only watch that notices a referenced Secret
// appearing — RBAC cannot narrow list or watch by label, so the first alone needs them; create,
// patch (the url when the portal moves) and delete the link Secrets. Never update.
// +kubebuilder:rbac:groups="",resources=secrets,verbs=get;list;watch;create;patch;delete

// The portal's own objects: applied (patch, create), deleted when the portal goes or no longer
// wants them; the Deployment's strategy is patched once when switching to Recreate, and a
// hand-edited Service is restored with an update.
// +kubebuilder:rbac:groups=apps,resources=deployments,verbs=get;list;watch;create;patch;delete
// +kubebuilder:rbac:groups="",resources=services,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups="",resources=serviceaccounts;persistentvolumeclaims,verbs=get;list;watch;create;patch;delete
// +kubebuilder:rbac:groups=rbac.authorization.k8s.io,resources=roles;rolebindings,verbs=get;list;watch;create;patch;delete
// +kubebuilder:rbac:groups=networking.k8s.io,resources=ingresses,verbs=get;list;watch;create;patch;delete

// Events (events.k8s.io only: the recorders write no core/v1 Events outside leader election,
// whose Role in the operator's namespace covers them): create, and patch for a series.
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch
