// Package promcheck reads Portero's Prometheus alerts (config/prometheus/rules.yaml) and Grafana
// dashboard (config/grafana/portero.json) with Prometheus's own parsers: every expression must be
// valid PromQL, and the series names they use are listed in config/prometheus/metrics-used.txt,
// which the main module's tests check against what the operator and the portal export.
package promcheck

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql/parser"
	"go.yaml.in/yaml/v3"
)

// Parser is PromQL as a Prometheus server parses it by default: no experimental functions.
var Parser = parser.NewParser(parser.Options{})

// PrometheusRule is the part of a monitoring.coreos.com/v1 PrometheusRule that matters here.
type PrometheusRule struct {
	APIVersion string `yaml:"apiVersion"`
	Kind       string `yaml:"kind"`
	// Groups is spec.groups, parsed and validated by Prometheus's rule file parser.
	Groups []rulefmt.RuleGroup
}

// LoadRules reads a PrometheusRule and validates its spec as a Prometheus rule file, strictly
// (unknown fields are errors).
func LoadRules(path string) (*PrometheusRule, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var doc struct {
		APIVersion string         `yaml:"apiVersion"`
		Kind       string         `yaml:"kind"`
		Spec       map[string]any `yaml:"spec"`
	}
	if err := yaml.Unmarshal(b, &doc); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	spec, err := yaml.Marshal(doc.Spec)
	if err != nil {
		return nil, err
	}
	groups, errs := rulefmt.Parse(spec, false, model.LegacyValidation, Parser, slog.New(slog.DiscardHandler))
	if len(errs) > 0 {
		return nil, fmt.Errorf("%s: spec is not a valid rule file: %v", path, errs)
	}
	return &PrometheusRule{APIVersion: doc.APIVersion, Kind: doc.Kind, Groups: groups.Groups}, nil
}

// Dashboard is the part of a Grafana dashboard's JSON model that matters here.
type Dashboard struct {
	Title      string  `json:"title"`
	UID        string  `json:"uid"`
	Panels     []Panel `json:"panels"`
	Templating struct {
		List []Variable `json:"list"`
	} `json:"templating"`
}

// Panel is a dashboard panel; rows hold their collapsed panels in Panels.
type Panel struct {
	Type       string      `json:"type"`
	Title      string      `json:"title"`
	Datasource *Datasource `json:"datasource"`
	Targets    []Target    `json:"targets"`
	Panels     []Panel     `json:"panels"`
}

// Target is one query of a panel.
type Target struct {
	RefID      string      `json:"refId"`
	Expr       string      `json:"expr"`
	Datasource *Datasource `json:"datasource"`
}

// Datasource names a panel's or a query's data source.
type Datasource struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

// Variable is a template variable.
type Variable struct {
	Name       string      `json:"name"`
	Type       string      `json:"type"`
	Query      any         `json:"query"` // a string, or {"query": "..."} in newer Grafana
	Definition string      `json:"definition"`
	Datasource *Datasource `json:"datasource"`
}

// QueryString is the variable's query text whichever form it was saved in.
func (v Variable) QueryString() string {
	switch q := v.Query.(type) {
	case string:
		return q
	case map[string]any:
		s, _ := q["query"].(string)
		return s
	}
	return v.Definition
}

// LoadDashboard reads a dashboard's JSON model.
func LoadDashboard(path string) (*Dashboard, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var d Dashboard
	if err := json.Unmarshal(b, &d); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &d, nil
}

// AllPanels returns every panel, those inside rows included, rows too.
func (d *Dashboard) AllPanels() []Panel {
	var out []Panel
	var walk func([]Panel)
	walk = func(ps []Panel) {
		for _, p := range ps {
			out = append(out, p)
			walk(p.Panels)
		}
	}
	walk(d.Panels)
	return out
}

// grafanaIntervals are Grafana's built-in interval variables, which PromQL cannot parse: they
// stand for durations Grafana computes from the time range.
var grafanaIntervals = regexp.MustCompile(`\$\{?__(rate_interval|interval|range)(_ms|_s)?\}?`)

// ExpandGrafana turns a panel's query into PromQL by giving Grafana's interval variables a
// duration. Dashboard variables ($namespace) only appear inside label matchers' strings, where
// PromQL takes them as they are.
func ExpandGrafana(expr string) string { return grafanaIntervals.ReplaceAllString(expr, "5m") }

// labelValues matches Grafana's label_values(selector, label) variable query.
var labelValues = regexp.MustCompile(`^\s*label_values\((.*),\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\)\s*$`)

// VariableSelector returns the PromQL selector of a label_values() variable query.
func VariableSelector(query string) (string, bool) {
	m := labelValues.FindStringSubmatch(query)
	if m == nil {
		return "", false
	}
	return m[1], true
}

// MetricNames returns the series names an expression selects, sorted and unique.
func MetricNames(expr string) ([]string, error) {
	e, err := Parser.ParseExpr(expr)
	if err != nil {
		return nil, err
	}
	var names []string
	var nameless error
	parser.Inspect(e, func(n parser.Node, _ []parser.Node) error {
		vs, ok := n.(*parser.VectorSelector)
		if !ok {
			return nil
		}
		name := vs.Name
		for _, m := range vs.LabelMatchers {
			if m.Name == labels.MetricName && m.Type == labels.MatchEqual {
				name = m.Value
			}
		}
		if name == "" {
			nameless = fmt.Errorf("selector %s names no metric", vs)
		}
		names = append(names, name)
		return nil
	})
	if nameless != nil {
		return nil, nameless
	}
	slices.Sort(names)
	return slices.Compact(names), nil
}

// ReadList reads a list of names, one a line; blank lines and # comments are skipped.
func ReadList(path string) ([]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		out = append(out, line)
	}
	return out, nil
}

// RepoRoot is the repository's root, two levels above this module.
func RepoRoot() string {
	wd, err := os.Getwd()
	if err != nil {
		panic(err)
	}
	for dir := wd; ; dir = filepath.Dir(dir) {
		if _, err := os.Stat(filepath.Join(dir, "hack", "promcheck", "go.mod")); err == nil {
			return dir
		}
		if filepath.Dir(dir) == dir {
			panic("promcheck: repository root not found above " + wd)
		}
	}
}
