package api

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"testing"
)

// apiSeries returns the merchant API's series in the fixture's registry, by name and labels.
func apiSeries(t *testing.T, f *fixture) (series map[string]bool, labels map[string]map[string]bool) {
	t.Helper()
	mfs, err := f.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	series, labels = map[string]bool{}, map[string]map[string]bool{}
	for _, mf := range mfs {
		if !strings.HasPrefix(mf.GetName(), "portero_merchant_api_") {
			continue
		}
		for _, m := range mf.GetMetric() {
			var b strings.Builder
			b.WriteString(mf.GetName())
			for _, l := range m.GetLabel() {
				fmt.Fprintf(&b, " %s=%q", l.GetName(), l.GetValue())
				if labels[l.GetName()] == nil {
					labels[l.GetName()] = map[string]bool{}
				}
				labels[l.GetName()][l.GetValue()] = true
			}
			series[b.String()] = true
		}
	}
	return series, labels
}

// Made-up methods, unknown paths and ids, with and without the key, sent through the API as
// cmd/portal mounts it: the API's series stay those of its route table.
func TestMadeUpRequestsAddNoAPISeries(t *testing.T) {
	f := newFixture(t, nil)
	mounted := f.server.Config.Handler
	send := func(round string, n int) {
		for i := range n {
			id := fmt.Sprintf("%s%d", round, i)
			for _, rq := range []struct{ method, path string }{
				{fmt.Sprintf("AAAA%s", id), "/api/v1/customers"},
				{fmt.Sprintf("AAAA%s", id), "/api/v1/" + id},
				{http.MethodGet, "/api/v1/customers/cus_" + id},
				{http.MethodPost, "/api/v1/payments/pay_" + id + "/confirm"},
				{http.MethodGet, "/api/v1/" + id + "/x"},
				{http.MethodDelete, "/api/v1/customers/" + id},
				{http.MethodGet, "/api/v1/customers/%2F..%2F" + id},
				{http.MethodGet, "/api/v1/customers/" + id + "/"},
			} {
				req := httptest.NewRequest(rq.method, rq.path, nil)
				if i%2 == 0 {
					req.Header.Set("Authorization", "Bearer "+testKey)
				}
				rec := httptest.NewRecorder()
				mounted.ServeHTTP(rec, req)
				if strings.HasPrefix(rq.method, "AAAA") && rec.Code != http.StatusMethodNotAllowed && rec.Code != http.StatusNotFound {
					t.Fatalf("%s %s: %d, want 405 or 404", rq.method, rq.path, rec.Code)
				}
			}
		}
	}
	send("a", 10)
	before, _ := apiSeries(t, f)
	send("b", 2000)
	after, labels := apiSeries(t, f)

	var added []string
	for s := range after {
		if !before[s] {
			added = append(added, s)
		}
	}
	if len(added) > 0 {
		sort.Strings(added)
		t.Errorf("2,000 more made-up requests added %d series, want none; e.g. %s", len(added), added[:min(5, len(added))])
	}
	if len(labels["method"]) > 4 {
		t.Errorf("%d method label values", len(labels["method"]))
	}
	patterns := map[string]bool{"unmatched": true}
	for _, r := range f.api.routes {
		patterns[r.pattern] = true
	}
	for route := range labels["route"] {
		if !patterns[route] {
			t.Errorf("route label %q is not in the route table", route)
		}
	}
	for code := range labels["code"] {
		if len(code) != 3 {
			t.Errorf("code label %q", code)
		}
	}
}

func TestStatusLabelIsBounded(t *testing.T) {
	for in, want := range map[int]string{200: "200", 201: "201", 405: "405", 599: "other", 1000: "other", 0: "other"} {
		if got := statusLabel(in); got != want {
			t.Errorf("statusLabel(%d) = %q, want %q", in, got, want)
		}
	}
}
