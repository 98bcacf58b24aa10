package promcheck

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql/promqltest"
	"github.com/prometheus/prometheus/rules"
	"go.yaml.in/yaml/v3"
)

var (
	root          = RepoRoot()
	rulesPath     = filepath.Join(root, "config", "prometheus", "rules.yaml")
	dashboardPath = filepath.Join(root, "config", "grafana", "portero.json")
	listPath      = filepath.Join(root, "config", "prometheus", "metrics-used.txt")
	runbookPath   = filepath.Join(root, "docs", "alerts.md")
)

const runbookURL = "https://github.com/portero-dev/portero/blob/main/docs/alerts.md#"

func loadRules(t *testing.T) map[string]rulefmt.Rule {
	t.Helper()
	pr, err := LoadRules(rulesPath)
	if err != nil {
		t.Fatal(err)
	}
	if pr.APIVersion != "monitoring.coreos.com/v1" || pr.Kind != "PrometheusRule" {
		t.Fatalf("rules.yaml is %s %s, want a monitoring.coreos.com/v1 PrometheusRule", pr.APIVersion, pr.Kind)
	}
	out := map[string]rulefmt.Rule{}
	for _, g := range pr.Groups {
		for _, r := range g.Rules {
			if r.Alert == "" {
				t.Errorf("group %s: recording rule %s: only alerts are expected here", g.Name, r.Record)
				continue
			}
			out[r.Alert] = r
		}
	}
	return out
}

// TestAlertsAreDocumented: every alert has a summary, a description and a runbook link to its
// own section of docs/alerts.md, and a severity.
func TestAlertsAreDocumented(t *testing.T) {
	alerts := loadRules(t)
	b, err := os.ReadFile(runbookPath)
	if err != nil {
		t.Fatal(err)
	}
	runbook := string(b)
	want := []string{"PorteroPortalNotReady", "PorteroSessionLinkSlow", "PorteroPaymentFailureRatioHigh", "PorteroSignInLockoutsSpiking",
		"PorteroWebhookBacklogOld", "PorteroProcessorUnreachable"}
	if got := slices.Sorted(maps.Keys(alerts)); !slices.Equal(got, slices.Sorted(slices.Values(want))) {
		t.Errorf("alerts %v, want %v", got, want)
	}
	for name, r := range alerts {
		for _, a := range []string{"summary", "description"} {
			if strings.TrimSpace(r.Annotations[a]) == "" {
				t.Errorf("%s has no %s annotation", name, a)
			}
		}
		if got := r.Annotations["runbook_url"]; got != runbookURL+strings.ToLower(name) {
			t.Errorf("%s runbook_url %q, want %s%s", name, got, runbookURL, strings.ToLower(name))
		}
		if !strings.Contains(runbook, "\n## "+name+"\n") {
			t.Errorf("docs/alerts.md has no section \"## %s\"", name)
		}
		if r.Labels["severity"] == "" {
			t.Errorf("%s has no severity label", name)
		}
	}
}

// scenario is a set of series (promqltest's load syntax, one sample a minute from time 0) and
// what an alert should do on them.
type scenario struct {
	name   string
	series string
	// firing lists, for minutes after time 0, the alert's firing instances as "label=value"
	// pairs of the identifying labels (nil: none firing).
	firing map[int][]string
}

// TestAlertsFireAsDocumented evaluates each alert minute by minute with Prometheus's own rule
// evaluation (for: included) on series shaped like what Portero exports, as promtool's rule unit
// tests would.
func TestAlertsFireAsDocumented(t *testing.T) {
	alerts := loadRules(t)
	cases := map[string][]scenario{
		"PorteroPortalNotReady": {{
			name: "not Ready for 10 minutes, another Ready, a third briefly not Ready",
			series: `portero_portal_ready{namespace="shop", name="acme"} 0x20
				portero_portal_ready{namespace="shop", name="ok"} 1x20
				portero_portal_ready{namespace="shop", name="blip"} 1 -1 -1 -1 1x16`,
			firing: map[int][]string{9: nil, 10: {"name=acme"}, 20: {"name=acme"}},
		}},
		"PorteroSessionLinkSlow": {{
			name: "every link takes 1.6 to 3.2 s",
			series: `portero_session_link_ready_seconds_bucket{le="0.8"} 0x30
				portero_session_link_ready_seconds_bucket{le="1.6"} 0x30
				portero_session_link_ready_seconds_bucket{le="3.2"} 0+10x30
				portero_session_link_ready_seconds_bucket{le="+Inf"} 0+10x30`,
			firing: map[int][]string{10: nil, 12: {""}, 30: {""}},
		}, {
			name: "every link under 0.8 s",
			series: `portero_session_link_ready_seconds_bucket{le="0.8"} 0+10x30
				portero_session_link_ready_seconds_bucket{le="1.6"} 0+10x30
				portero_session_link_ready_seconds_bucket{le="3.2"} 0+10x30
				portero_session_link_ready_seconds_bucket{le="+Inf"} 0+10x30`,
			firing: map[int][]string{12: nil, 30: nil},
		}, {
			name:   "no links made at all",
			series: `portero_session_link_ready_seconds_bucket{le="+Inf"} 0x30`,
			firing: map[int][]string{30: nil},
		}},
		"PorteroPaymentFailureRatioHigh": {{
			name: "30% failing at volume; 10% failing; half failing but only two charges",
			series: `portero_payments_total{namespace="shop", portal="failing", outcome="failed"} 0+3x90
				portero_payments_total{namespace="shop", portal="failing", outcome="succeeded"} 0+7x90
				portero_payments_total{namespace="shop", portal="failing", outcome="pending"} 0+50x90
				portero_payments_total{namespace="shop", portal="fine", outcome="failed"} 0+1x90
				portero_payments_total{namespace="shop", portal="fine", outcome="succeeded"} 0+9x90
				portero_payments_total{namespace="shop", portal="quiet", outcome="failed"} 0 1x90
				portero_payments_total{namespace="shop", portal="quiet", outcome="succeeded"} 0 1x90`,
			firing: map[int][]string{3: nil, 8: {"portal=failing"}, 90: {"portal=failing"}},
		}, {
			name: "pending and incomplete payments are not failures",
			series: `portero_payments_total{namespace="shop", portal="transfers", outcome="pending"} 0+10x90
				portero_payments_total{namespace="shop", portal="transfers", outcome="incomplete"} 0+10x90
				portero_payments_total{namespace="shop", portal="transfers", outcome="succeeded"} 0+1x90`,
			firing: map[int][]string{90: nil},
		}},
		"PorteroSignInLockoutsSpiking": {{
			name: "a quiet day, then ten lockouts in ten minutes; another portal locks one every two minutes all day",
			series: `portero_portal_logins_total{namespace="shop", portal="attacked", method="code", result="locked"} 0x1440 1 2 3 4 5 6 7 8 9 10
				portero_portal_logins_total{namespace="shop", portal="steady", method="code", result="locked"} 0+0.5x1450
				portero_portal_logins_total{namespace="shop", portal="attacked", method="code", result="ok"} 0+5x1450`,
			firing: map[int][]string{1440: nil, 1450: {"portal=attacked"}},
		}},
		"PorteroProcessorUnreachable": {{
			name: "a portal whose processor times out on half its calls; another with a few 5xx; a third with two calls, both lost",
			series: `portero_portal_processor_requests_total{namespace="shop", portal="down", processor="stripe", operation="charge", outcome="unavailable"} 0+5x30
				portero_portal_processor_requests_total{namespace="shop", portal="down", processor="stripe", operation="charge", outcome="succeeded"} 0+5x30
				portero_portal_processor_requests_total{namespace="shop", portal="fine", processor="stripe", operation="charge", outcome="error"} 0+1x30
				portero_portal_processor_requests_total{namespace="shop", portal="fine", processor="stripe", operation="charge", outcome="succeeded"} 0+20x30
				portero_portal_processor_requests_total{namespace="shop", portal="quiet", processor="mercadopago", operation="charge", outcome="unavailable"} 0 1 2x28`,
			firing: map[int][]string{3: nil, 10: {"portal=down"}, 30: {"portal=down"}},
		}, {
			name: "declines and refusals are answers, not an unreachable processor",
			series: `portero_portal_processor_requests_total{namespace="shop", portal="declines", processor="stripe", operation="charge", outcome="failed"} 0+10x30
				portero_portal_processor_requests_total{namespace="shop", portal="declines", processor="stripe", operation="attach_method", outcome="refused"} 0+10x30
				portero_portal_processor_requests_total{namespace="shop", portal="declines", processor="stripe", operation="charge", outcome="succeeded"} 0+1x30`,
			firing: map[int][]string{30: nil},
		}},
		"PorteroWebhookBacklogOld": {{
			name: "one portal's endpoint down (oldest event ages a minute a minute, both replicas report it), another delivering",
			series: `portero_portal_webhook_oldest_pending_age_seconds{namespace="shop", portal="down", pod="a"} 0+60x30
				portero_portal_webhook_oldest_pending_age_seconds{namespace="shop", portal="down", pod="b"} 0+60x30
				portero_portal_webhook_oldest_pending_age_seconds{namespace="shop", portal="fine", pod="c"} 0 2 0 1 0x26`,
			firing: map[int][]string{15: nil, 20: nil, 21: {"portal=down"}, 30: {"portal=down"}},
		}},
	}
	for name, scenarios := range cases {
		r, ok := alerts[name]
		if !ok {
			t.Errorf("no alert %s", name)
			continue
		}
		for _, sc := range scenarios {
			t.Run(name+"/"+sc.name, func(t *testing.T) {
				got := evalAlert(t, r, sc.series, sc.firing)
				for minute, want := range sc.firing {
					if !slices.Equal(got[minute], want) {
						t.Errorf("minute %d: firing %q, want %q", minute, got[minute], want)
					}
				}
			})
		}
	}
}

// identifying are the labels that tell one alert instance from another in the scenarios.
var identifying = []string{"name", "portal"}

// evalAlert evaluates r every minute up to the last minute of interest and returns, for each
// minute of interest, the firing instances. It fails the test if an annotation does not expand.
func evalAlert(t *testing.T, r rulefmt.Rule, series string, at map[int][]string) map[int][]string {
	t.Helper()
	storage := promqltest.LoadedStorage(t, "load 1m\n"+series)
	engine := promqltest.NewTestEngine(t, false, 5*time.Minute, 50_000_000)
	expr, err := Parser.ParseExpr(r.Expr)
	if err != nil {
		t.Fatal(err)
	}
	rule := rules.NewAlertingRule(r.Alert, expr, time.Duration(r.For), time.Duration(r.KeepFiringFor),
		labels.FromMap(r.Labels), labels.FromMap(r.Annotations), labels.EmptyLabels(), "", true,
		slog.New(slog.DiscardHandler))
	query := rules.EngineQueryFunc(engine, storage)
	last := 0
	for m := range at {
		last = max(last, m)
	}
	out := map[int][]string{}
	for m := 0; m <= last; m++ {
		if _, err := rule.Eval(context.Background(), 0, time.Unix(0, 0).UTC().Add(time.Duration(m)*time.Minute), query, nil, 0); err != nil {
			t.Fatalf("minute %d: %v", m, err)
		}
		if _, ok := at[m]; !ok {
			continue
		}
		var firing []string
		for _, a := range rule.ActiveAlerts() {
			if a.State != rules.StateFiring {
				continue
			}
			var id []string
			for _, l := range identifying {
				if v := a.Labels.Get(l); v != "" {
					id = append(id, l+"="+v)
				}
			}
			firing = append(firing, strings.Join(id, ","))
			a.Annotations.Range(func(l labels.Label) {
				if strings.Contains(l.Value, "error expanding template") || strings.Contains(l.Value, "<no value>") {
					t.Errorf("minute %d: annotation %s does not expand: %s", m, l.Name, l.Value)
				}
			})
		}
		slices.Sort(firing)
		out[m] = firing
	}
	return out
}

// TestDashboardQueriesAreValidPromQL: every panel queries through the ${datasource} variable,
// every query is PromQL Prometheus accepts, and the variables the queries use exist.
func TestDashboardQueriesAreValidPromQL(t *testing.T) {
	d, err := LoadDashboard(dashboardPath)
	if err != nil {
		t.Fatal(err)
	}
	vars := map[string]Variable{}
	for _, v := range d.Templating.List {
		vars[v.Name] = v
	}
	if ds := vars["datasource"]; ds.Type != "datasource" || ds.QueryString() != "prometheus" {
		t.Errorf("variable datasource: %+v, want a Prometheus data source variable", ds)
	}
	for _, name := range []string{"namespace", "portal"} {
		v, ok := vars[name]
		if !ok {
			t.Errorf("no %s variable", name)
			continue
		}
		sel, ok := VariableSelector(v.QueryString())
		if !ok {
			t.Errorf("variable %s: query %q is not label_values(selector, label)", name, v.QueryString())
			continue
		}
		if _, err := Parser.ParseExpr(sel); err != nil {
			t.Errorf("variable %s: %v", name, err)
		}
		if v.Datasource == nil || v.Datasource.UID != "${datasource}" {
			t.Errorf("variable %s does not query ${datasource}: %+v", name, v.Datasource)
		}
	}
	queries, webhookRow := 0, false
	for _, p := range d.AllPanels() {
		if p.Type == "row" {
			webhookRow = webhookRow || strings.Contains(strings.ToLower(p.Title), "webhook")
			continue
		}
		if p.Datasource == nil || p.Datasource.UID != "${datasource}" {
			t.Errorf("panel %q does not use ${datasource}: %+v", p.Title, p.Datasource)
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, q := range p.Targets {
			queries++
			if q.Datasource != nil && q.Datasource.UID != "${datasource}" {
				t.Errorf("panel %q query %s uses data source %+v", p.Title, q.RefID, q.Datasource)
			}
			if _, err := Parser.ParseExpr(ExpandGrafana(q.Expr)); err != nil {
				t.Errorf("panel %q query %s: %v\n%s", p.Title, q.RefID, err, q.Expr)
			}
			for _, v := range []string{"$namespace", "$portal"} {
				if strings.Contains(q.Expr, v) && vars[strings.TrimPrefix(v, "$")].Name == "" {
					t.Errorf("panel %q uses %s, which the dashboard does not define", p.Title, v)
				}
			}
		}
	}
	if queries == 0 {
		t.Error("the dashboard has no queries")
	}
	if !webhookRow {
		t.Error("no row says where the merchant webhook panels will go")
	}
}

// usedNames returns every series name the rules and the dashboard use, with where.
func usedNames(t *testing.T) map[string][]string {
	t.Helper()
	used := map[string][]string{}
	add := func(where, expr string) {
		names, err := MetricNames(expr)
		if err != nil {
			t.Errorf("%s: %v", where, err)
			return
		}
		for _, n := range names {
			used[n] = append(used[n], where)
		}
	}
	for name, r := range loadRules(t) {
		add("alert "+name, r.Expr)
	}
	d, err := LoadDashboard(dashboardPath)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range d.AllPanels() {
		for _, q := range p.Targets {
			add(fmt.Sprintf("panel %q", p.Title), ExpandGrafana(q.Expr))
		}
	}
	for _, v := range d.Templating.List {
		if sel, ok := VariableSelector(v.QueryString()); ok {
			add("variable "+v.Name, sel)
		}
	}
	return used
}

// TestMetricsUsedListIsExact: config/prometheus/metrics-used.txt lists exactly the series the
// rules and the dashboard use, so the main module's scrape test checks all of them, and only them.
func TestMetricsUsedListIsExact(t *testing.T) {
	used := usedNames(t)
	list, err := ReadList(listPath)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.IsSorted(list) || len(slices.Compact(slices.Clone(list))) != len(list) {
		t.Errorf("metrics-used.txt must be sorted, without repeats: %q", list)
	}
	listed := map[string]bool{}
	for _, n := range list {
		listed[n] = true
		if _, ok := used[n]; !ok {
			t.Errorf("metrics-used.txt lists %s, which neither the rules nor the dashboard use", n)
		}
	}
	for n, where := range used {
		if !listed[n] {
			t.Errorf("%s (used by %s) is missing from metrics-used.txt", n, strings.Join(where, ", "))
		}
	}
}

// TestMonitorsGiveTheLabelsTheQueriesUse: the portal series carry `portal` (the PodMonitor's
// relabeling) and the operator's keep their own `namespace` (honorLabels), which the rules and
// the dashboard group and filter by.
func TestMonitorsGiveTheLabelsTheQueriesUse(t *testing.T) {
	f, err := os.Open(filepath.Join(root, "config", "prometheus", "monitors.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	dec := yaml.NewDecoder(f)
	var portalLabel, honorLabels bool
	for {
		var doc struct {
			Kind string `yaml:"kind"`
			Spec struct {
				Endpoints []struct {
					HonorLabels bool `yaml:"honorLabels"`
				} `yaml:"endpoints"`
				PodMetricsEndpoints []struct {
					Port        string `yaml:"port"`
					Relabelings []struct {
						SourceLabels []string `yaml:"sourceLabels"`
						TargetLabel  string   `yaml:"targetLabel"`
					} `yaml:"relabelings"`
				} `yaml:"podMetricsEndpoints"`
			} `yaml:"spec"`
		}
		if err := dec.Decode(&doc); err != nil {
			break
		}
		switch doc.Kind {
		case "ServiceMonitor":
			for _, e := range doc.Spec.Endpoints {
				honorLabels = honorLabels || e.HonorLabels
			}
		case "PodMonitor":
			for _, e := range doc.Spec.PodMetricsEndpoints {
				for _, r := range e.Relabelings {
					portalLabel = portalLabel || (r.TargetLabel == "portal" &&
						slices.Equal(r.SourceLabels, []string{"__meta_kubernetes_pod_label_billing_portero_dev_portal"}) && e.Port == "metrics")
				}
			}
		}
	}
	if !portalLabel {
		t.Error("no PodMonitor gives portal pods' series the portal label from billing.portero.dev/portal on port metrics")
	}
	if !honorLabels {
		t.Error("the operator's ServiceMonitor does not keep the series' own namespace label (honorLabels)")
	}
}
