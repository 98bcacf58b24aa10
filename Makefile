# Portero — see README.md. `make run` starts the whole system locally; `make test` runs every test.
IMG ?= ghcr.io/portero-dev/portero:dev
GO ?= go
CONTROLLER_GEN := $(GO) tool controller-gen
ENVTEST_ASSETS := $(CURDIR)/bin/k8s
LDFLAGS := -X main.defaultPortalImage=$(IMG)
# The race detector is on in tests unless a caller turns it off (e.g. GOTESTFLAGS=).
GOTESTFLAGS ?= -race
GOTEST_TIMEOUT ?= 30m

.PHONY: all
all: build

##@ Development

.PHONY: generate
generate: ## Generate DeepCopy methods for the API types.
	$(CONTROLLER_GEN) object:headerFile=hack/boilerplate.go.txt paths=./api/...

.PHONY: manifests
manifests: ## Generate CRDs and the operator's ClusterRole from markers.
	$(CONTROLLER_GEN) crd paths=./api/... output:crd:artifacts:config=config/crd/bases
	$(CONTROLLER_GEN) rbac:roleName=manager-role paths=./controllers/... output:rbac:artifacts:config=config/rbac

.PHONY: verify-generated
verify-generated: ## Fail if committed generated files (deepcopy, CRDs, RBAC) are stale.
	hack/verify-generated.sh

.PHONY: fmt
fmt: ## Format the code.
	$(GO) fmt ./...

.PHONY: verify-fmt
verify-fmt: ## Fail if any Go file is not gofmt-clean.
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go' -not -path './bin/*')); \
	  if [ -n "$$out" ]; then echo "gofmt needed on:"; echo "$$out"; exit 1; fi

.PHONY: vet
vet: ## Run go vet.
	$(GO) vet ./...

.PHONY: envtest-assets
envtest-assets: ## Build kube-apiserver, etcd, kubectl and Mailpit from the Go module proxy into bin/k8s.
	@hack/build-tools.sh

##@ Build

.PHONY: build
build: ## Build the manager, the portal server and the kubectl plugin (kubectl portero) into bin/.
	$(GO) build -ldflags "$(LDFLAGS)" -o bin/manager ./cmd/manager
	$(GO) build -o bin/portal ./cmd/portal
	$(GO) build -o bin/kubectl-portero ./cmd/kubectl-portero

PLATFORMS ?= linux/amd64,linux/arm64
IMAGE_TAR ?= bin/portero-image.tar
CA_CERTS ?=

.PHONY: image
image: ## Build the container image $(IMG) (operator + portal, static, non-root) without Docker into bin/portero-image.tar.
	cd hack/image && $(GO) run . -root "$(CURDIR)" -tag "$(IMG)" -ca-certs "$(CA_CERTS)" -out "$(abspath $(IMAGE_TAR))"

.PHONY: image-push
image-push: ## Build and push $(IMG) for $(PLATFORMS) as one multi-arch image (credentials from docker login).
	cd hack/image && $(GO) run . -root "$(CURDIR)" -tag "$(IMG)" -ca-certs "$(CA_CERTS)" -push -platforms "$(PLATFORMS)"

##@ Deploy

.PHONY: deploy
deploy: ## Install CRDs, RBAC and the operator running $(IMG) into the cluster kubectl points at.
	hack/deploy.sh apply "$(IMG)"

.PHONY: undeploy
undeploy: ## Remove what `make deploy` installed (CRDs too: every portal and session goes with them).
	hack/deploy.sh delete "$(IMG)"

##@ Helm chart

HELM ?= $(ENVTEST_ASSETS)/helm
CHART_DIR := charts/portero
CHART_VERSION = $(shell awk '/^version:/ {print $$2}' $(CHART_DIR)/Chart.yaml)
CHART_OUT ?= bin/charts
CHART_REGISTRY ?=
CHART_PUSH_FLAGS ?=

.PHONY: chart-sync
chart-sync: ## Copy the CRDs, the operator's rules and the alerts from config/ into the chart (after make manifests).
	rm -f $(CHART_DIR)/crds/*.yaml
	cp config/crd/bases/*.yaml $(CHART_DIR)/crds/
	cp config/rbac/role.yaml $(CHART_DIR)/files/manager-role.yaml
	cp config/prometheus/rules.yaml $(CHART_DIR)/files/prometheus-rules.yaml

.PHONY: chart
chart: envtest-assets ## Lint charts/portero and package it as bin/charts/portero-<version>.tgz (CHART_OUT=dir elsewhere).
	@diff -r config/crd/bases $(CHART_DIR)/crds >/dev/null && cmp -s config/rbac/role.yaml $(CHART_DIR)/files/manager-role.yaml \
	  && cmp -s config/prometheus/rules.yaml $(CHART_DIR)/files/prometheus-rules.yaml \
	  || { echo "$(CHART_DIR) holds stale copies of config/ (CRDs, manager role, alerts): run make chart-sync" >&2; exit 1; }
	$(HELM) lint --strict $(CHART_DIR)
	$(HELM) package $(CHART_DIR) --destination $(CHART_OUT)

.PHONY: chart-push
chart-push: chart ## Push the chart to CHART_REGISTRY=oci://host/path (credentials from helm registry login).
	@test -n "$(CHART_REGISTRY)" || { echo "set CHART_REGISTRY, e.g. make chart-push CHART_REGISTRY=oci://registry.example.com/charts" >&2; exit 2; }
	$(HELM) push $(CHART_OUT)/portero-$(CHART_VERSION).tgz $(CHART_REGISTRY) $(CHART_PUSH_FLAGS)

##@ Run and test

.PHONY: run
run: envtest-assets build ## Run the whole system locally (no cluster needed); Ctrl-C stops it.
	@$(GO) build -o bin/localrun ./hack/localrun
	@exec bin/localrun --assets "$(ENVTEST_ASSETS)" --bin "$(CURDIR)/bin"

.PHONY: clean-local
clean-local: ## Delete the local system's data (bin/local).
	rm -rf bin/local

.PHONY: test
test: verify-generated verify-fmt vet envtest-assets ## Run every test against the real control plane.
	@# CI=true: a part the tests need and cannot find (PostgreSQL, Chromium, Mailpit) fails the run;
	@# without it the PostgreSQL halves would be skipped and the run would still pass.
	CI=true KUBEBUILDER_ASSETS="$(ENVTEST_ASSETS)" $(GO) test $(GOTESTFLAGS) -timeout $(GOTEST_TIMEOUT) -count=1 ./...
	cd hack/image && $(GO) vet ./... && $(GO) test -count=1 ./...
	cd hack/promcheck && $(GO) vet ./... && $(GO) test -count=1 ./...
	cd hack/charttest && $(GO) vet ./... && KUBEBUILDER_ASSETS="$(ENVTEST_ASSETS)" HELM="$(HELM)" $(GO) test -count=1 ./...

.PHONY: bench
bench: envtest-assets build ## Benchmarks against baselines measured in the same run; writes docs/benchmarks.md.
	@command -v wrk >/dev/null || echo "(wrk not found: the portal load uses the Go load generator; apt-get install -y wrk)"
	KUBEBUILDER_ASSETS="$(ENVTEST_ASSETS)" $(GO) run ./bench/cmd/portero-bench -out docs/benchmarks.md

.PHONY: bench-quick
bench-quick: envtest-assets build ## A two-minute smoke run of every benchmark (figures not comparable).
	KUBEBUILDER_ASSETS="$(ENVTEST_ASSETS)" $(GO) run ./bench/cmd/portero-bench -quick -out /dev/stdout

.PHONY: chaos
chaos: envtest-assets build ## Fault and abuse scenarios against real processes (≤ 20 min on 2 cores); writes docs/reliability.md.
	KUBEBUILDER_ASSETS="$(ENVTEST_ASSETS)" $(GO) run ./chaos/cmd/portero-chaos -out docs/reliability.md

.PHONY: help
help: ## Show this help.
	@awk 'BEGIN {FS = ":.*##"} /^[a-zA-Z_-]+:.*?##/ { printf "  %-18s %s\n", $$1, $$2 } /^##@/ { printf "\n%s\n", substr($$0, 5) }' $(MAKEFILE_LIST)
