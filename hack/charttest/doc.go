// Package charttest holds the tests of Portero's Helm chart, charts/portero: that it lints, that it
// renders the objects `make deploy` installs (config/default, config/namespaced, config/prometheus),
// that those objects pass a server-side dry run on a real kube-apiserver, and that `make chart` and
// `make chart-push` package it and push it to an OCI registry.
package charttest
