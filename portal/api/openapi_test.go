package api

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/portero-dev/portero/portal/ledger"
	"github.com/portero-dev/portero/portal/payments"
)

// docChecker validates JSON against the schemas of openapi.json. It implements the part of JSON
// Schema the document uses — $ref, type (also as a list, for null), properties, required,
// additionalProperties: false, items, enum, minimum, maximum, minLength, maxLength — and fails
// on any other keyword that constrains values, so the document cannot silently outgrow it.
type docChecker struct {
	doc map[string]any
}

func loadDoc(t testing.TB) *docChecker {
	t.Helper()
	var doc map[string]any
	dec := json.NewDecoder(bytes.NewReader(openAPIDocument))
	dec.UseNumber()
	if err := dec.Decode(&doc); err != nil {
		t.Fatalf("openapi.json is not JSON: %v", err)
	}
	return &docChecker{doc: doc}
}

// validate checks raw against components.schemas[name].
func (d *docChecker) validate(t testing.TB, name string, raw []byte) {
	t.Helper()
	if err := d.check(name, raw); err != nil {
		t.Fatalf("response does not match the documented %s schema: %v\n%s", name, err, raw)
	}
}

func (d *docChecker) check(name string, raw []byte) error {
	var v any
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if err := dec.Decode(&v); err != nil {
		return err
	}
	return d.checkValue(v, map[string]any{"$ref": "#/components/schemas/" + name}, "$")
}

func (d *docChecker) resolve(ref string) map[string]any {
	var cur any = d.doc
	for _, part := range strings.Split(strings.TrimPrefix(ref, "#/"), "/") {
		m, _ := cur.(map[string]any)
		cur = m[part]
	}
	m, _ := cur.(map[string]any)
	return m
}

var ignoredKeywords = map[string]bool{
	"description": true, "examples": true, "example": true, "format": true, "default": true,
}

func (d *docChecker) checkValue(v any, schema map[string]any, path string) error {
	if ref, ok := schema["$ref"].(string); ok {
		target := d.resolve(ref)
		if target == nil {
			return fmt.Errorf("%s: dangling $ref %s", path, ref)
		}
		return d.checkValue(v, target, path)
	}
	for k := range schema {
		switch k {
		case "type", "properties", "required", "additionalProperties", "items", "enum",
			"minimum", "maximum", "minLength", "maxLength":
		default:
			if !ignoredKeywords[k] {
				return fmt.Errorf("%s: schema keyword %q is not supported by the test's checker", path, k)
			}
		}
	}
	if err := checkType(v, schema["type"], path); err != nil {
		return err
	}
	if enum, ok := schema["enum"].([]any); ok {
		found := false
		for _, e := range enum {
			if fmt.Sprint(e) == fmt.Sprint(v) {
				found = true
			}
		}
		if !found {
			return fmt.Errorf("%s: %v is not one of the documented values", path, v)
		}
	}
	switch val := v.(type) {
	case map[string]any:
		props, _ := schema["properties"].(map[string]any)
		for _, r := range asStrings(schema["required"]) {
			if _, ok := val[r]; !ok {
				return fmt.Errorf("%s: required property %q missing", path, r)
			}
		}
		for k, pv := range val {
			ps, ok := props[k].(map[string]any)
			if !ok {
				if schema["additionalProperties"] == false {
					return fmt.Errorf("%s: undocumented property %q", path, k)
				}
				continue
			}
			if err := d.checkValue(pv, ps, path+"."+k); err != nil {
				return err
			}
		}
	case []any:
		if items, ok := schema["items"].(map[string]any); ok {
			for i, it := range val {
				if err := d.checkValue(it, items, fmt.Sprintf("%s[%d]", path, i)); err != nil {
					return err
				}
			}
		}
	case json.Number:
		n, _ := val.Float64()
		if m, ok := schema["minimum"].(json.Number); ok {
			if min, _ := m.Float64(); n < min {
				return fmt.Errorf("%s: %v below minimum %v", path, n, min)
			}
		}
		if m, ok := schema["maximum"].(json.Number); ok {
			if max, _ := m.Float64(); n > max {
				return fmt.Errorf("%s: %v above maximum %v", path, n, max)
			}
		}
	case string:
		if m, ok := schema["maxLength"].(json.Number); ok {
			if max, _ := m.Int64(); int64(len([]rune(val))) > max {
				return fmt.Errorf("%s: longer than %d", path, max)
			}
		}
		if m, ok := schema["minLength"].(json.Number); ok {
			if min, _ := m.Int64(); int64(len([]rune(val))) < min {
				return fmt.Errorf("%s: shorter than %d", path, min)
			}
		}
	}
	return nil
}

func checkType(v any, typ any, path string) error {
	if typ == nil {
		return nil
	}
	types := asStrings(typ)
	if s, ok := typ.(string); ok {
		types = []string{s}
	}
	for _, t := range types {
		switch t {
		case "object":
			if _, ok := v.(map[string]any); ok {
				return nil
			}
		case "array":
			if _, ok := v.([]any); ok {
				return nil
			}
		case "string":
			if _, ok := v.(string); ok {
				return nil
			}
		case "boolean":
			if _, ok := v.(bool); ok {
				return nil
			}
		case "null":
			if v == nil {
				return nil
			}
		case "integer":
			if n, ok := v.(json.Number); ok {
				if _, err := n.Int64(); err == nil {
					return nil
				}
			}
		case "number":
			if _, ok := v.(json.Number); ok {
				return nil
			}
		}
	}
	return fmt.Errorf("%s: %v is not of type %v", path, v, types)
}

func asStrings(v any) []string {
	l, _ := v.([]any)
	out := make([]string, 0, len(l))
	for _, s := range l {
		out = append(out, fmt.Sprint(s))
	}
	return out
}

// documentedOperations returns "METHOD /path" for every operation in the document.
func (d *docChecker) documentedOperations() []string {
	var ops []string
	paths, _ := d.doc["paths"].(map[string]any)
	for p, item := range paths {
		for m := range item.(map[string]any) {
			ops = append(ops, strings.ToUpper(m)+" "+p)
		}
	}
	sort.Strings(ops)
	return ops
}

// TestOpenAPIDocumentsEveryRouteAndOnlyRoutes: every documented operation is routed by the
// handler (not 404/405), and every route is documented.
func TestOpenAPIDocumentsEveryRouteAndOnlyRoutes(t *testing.T) {
	d := loadDoc(t)
	if d.doc["openapi"] != "3.1.0" {
		t.Fatalf("openapi = %v, want 3.1.0", d.doc["openapi"])
	}
	a := newAPI(Deps{})
	documented := d.documentedOperations()
	var routed []string
	for _, r := range a.routes {
		routed = append(routed, r.pattern)
	}
	sort.Strings(routed)
	if !slices.Equal(documented, routed) {
		t.Errorf("documented operations and routes differ:\n documented: %v\n routed:     %v", documented, routed)
	}
	param := regexp.MustCompile(`\{[^}]+\}`)
	for _, op := range documented {
		method, path, _ := strings.Cut(op, " ")
		r := httptest.NewRequest(method, param.ReplaceAllString(path, "x_1"), nil)
		if _, pattern := a.mux.Handler(r); pattern != op {
			t.Errorf("%s is documented but the handler routes it to %q", op, pattern)
		}
	}
	// And the handler answers what is not routed with JSON 404/405, which the document describes.
	rec := httptest.NewRecorder()
	a.ServeHTTP(rec, httptest.NewRequest("DELETE", "/api/v1/customers/x", nil))
	if rec.Code != http.StatusMethodNotAllowed || rec.Header().Get("Allow") != "GET, PATCH" {
		t.Errorf("DELETE /customers/x: %d Allow=%q", rec.Code, rec.Header().Get("Allow"))
	}
	d.validate(t, "Error", rec.Body.Bytes())
	rec = httptest.NewRecorder()
	a.ServeHTTP(rec, httptest.NewRequest("GET", "/api/v1/nothing", nil))
	if rec.Code != http.StatusNotFound || !strings.Contains(rec.Body.String(), CodeRouteNotFound) {
		t.Errorf("GET /nothing: %d %s", rec.Code, rec.Body)
	}
}

// TestOpenAPIErrorCodesAreTheAPIs: the Error schema's code enum is exactly ErrorCodes(), and
// ErrorCodes covers every code the ledger and the processor define that can reach a response.
func TestOpenAPIErrorCodesAreTheAPIs(t *testing.T) {
	d := loadDoc(t)
	enum := asStrings(d.resolve("#/components/schemas/Error")["properties"].(map[string]any)["code"].(map[string]any)["enum"])
	codes := ErrorCodes()
	sort.Strings(enum)
	sort.Strings(codes)
	if !slices.Equal(enum, codes) {
		t.Errorf("Error.code enum differs from ErrorCodes():\n doc:  %v\n code: %v", enum, codes)
	}
	for _, c := range []string{ledger.CodeUnsupportedCurrency, ledger.CodeInvalidAmount, payments.CodeInvalidCardNumber} {
		if !slices.Contains(codes, c) {
			t.Errorf("ErrorCodes lacks %s", c)
		}
	}
	if slices.Contains(codes, ledger.CodeIdempotencyConflict) {
		t.Errorf("the ledger's %s is renamed %s by the API", ledger.CodeIdempotencyConflict, CodeIdempotencyConflict)
	}
}

// Example ids used throughout openapi.json; the examples test swaps them for real ones.
const (
	docCustomer     = "cus_3vq7hx2kqzm5ta4wby6dnc7e"
	docSubscription = "sub_5tq2wn7xk3mz4vb6hd2rc7ya"
	docPayment      = "pay_2xk7qm4vz6tw3nb5hc2dr7ya"
	docSession      = "api-0f3c9a2b7d4e6f8a1c2e"
	docEvent        = "evt_33n7kobigbas08gl1d6mj3v44"
)

// docPaidPayment is the receipt's example id in openapi.json: a payment that succeeded.
const docPaidPayment = "pay_4sd9kn2vx7tq3mb6hc5dr2yb"

// withCardExpiry is a copy of example with every exp_year set to year: the document shows a
// fixed year, which the sandbox would refuse as expired once it passed.
func withCardExpiry(example any, year int) any {
	switch v := example.(type) {
	case map[string]any:
		out := make(map[string]any, len(v))
		for k, x := range v {
			if k == "exp_year" {
				out[k] = year
			} else {
				out[k] = withCardExpiry(x, year)
			}
		}
		return out
	case []any:
		out := make([]any, len(v))
		for i, x := range v {
			out[i] = withCardExpiry(x, year)
		}
		return out
	}
	return example
}

// TestOpenAPIExamplesAreAccepted sends every operation's documented example — path parameters,
// headers and body — to the handler, against real objects, and checks the answer is a success
// whose body matches the documented response schema.
func TestOpenAPIExamplesAreAccepted(t *testing.T) {
	f := newFixture(t, withWebhook(t, "backend", "https://hooks.acme.example/portero"))
	d := f.checker
	// The objects the examples' ids stand for: a customer who pays by bank transfer (so the
	// example payment is pending and can be confirmed) with a subscription.
	c := f.customer("doc-example@example.com")
	f.addMethod(c.ID, map[string]any{"type": "bank_transfer"})
	pending := f.pay(c.ID, 1000)
	var sub subscriptionJSON
	f.expect(req{method: "POST", path: "/api/v1/subscriptions", headers: map[string]string{"Idempotency-Key": newKey()}, body: map[string]any{"customer_id": c.ID,
		"plan": "Doc", "amount": 1000, "currency": "ARS", "interval": "month"}}, 201, "").json(t, &sub)
	// The plans the plan examples name: one to read and move to, one to archive.
	for _, id := range []string{"pro-monthly", "legacy-monthly"} {
		f.expect(req{method: "POST", path: "/api/v1/plans", body: map[string]any{"id": id, "name": map[string]any{"es": "Pro", "en": "Pro"},
			"amount": 400000, "currency": "ARS", "interval": "month", "max_quantity": 10}}, 201, "")
	}
	var session sessionJSON
	f.expect(req{method: "POST", path: "/api/v1/portal_sessions", body: map[string]any{"customer_id": c.ID}}, 201, "").json(t, &session)
	// A card customer's succeeded payment, which has a receipt.
	payer := f.customer("doc-receipt@example.com")
	f.addCard(payer.ID, "4242424242424242", "123")
	paid := f.pay(payer.ID, 150000)
	events, err := f.store.ListEvents(f.ctx, ledger.ListEventsParams{})
	if err != nil || len(events.Items) == 0 {
		t.Fatalf("no event to stand for the examples' (%v)", err)
	}
	ids := strings.NewReplacer(docCustomer, c.ID, docSubscription, sub.ID, docPayment, pending.ID, docSession, session.ID,
		docEvent, events.Items[0].ID, docPaidPayment, paid.ID)

	paths := d.doc["paths"].(map[string]any)
	// Reads first, then writes, cancel, confirm and revoke last: the order a merchant would follow.
	ops := d.documentedOperations()
	rank := func(op string) int {
		switch {
		case strings.HasPrefix(op, "GET"):
			return 0
		case strings.HasSuffix(op, "/cancel"), strings.HasSuffix(op, "/confirm"), strings.HasSuffix(op, "/revoke"):
			return 2
		}
		return 1
	}
	sort.SliceStable(ops, func(i, j int) bool { return rank(ops[i]) < rank(ops[j]) })
	for _, op := range ops {
		method, path, _ := strings.Cut(op, " ")
		spec := paths[path].(map[string]any)[strings.ToLower(method)].(map[string]any)
		r := req{method: method, path: path, headers: map[string]string{}}
		params, _ := spec["parameters"].([]any)
		for _, p := range params {
			pm := p.(map[string]any)
			if ref, ok := pm["$ref"].(string); ok {
				pm = d.resolve(ref)
			}
			ex, ok := pm["example"]
			if !ok {
				continue
			}
			switch pm["in"] {
			case "path":
				r.path = strings.ReplaceAll(r.path, "{"+pm["name"].(string)+"}", ids.Replace(fmt.Sprint(ex)))
			case "header":
				r.headers[pm["name"].(string)] = fmt.Sprint(ex)
			}
		}
		if strings.Contains(r.path, "{") {
			t.Errorf("%s: a path parameter has no example", op)
			continue
		}
		if body, ok := spec["requestBody"].(map[string]any); ok {
			media := body["content"].(map[string]any)["application/json"].(map[string]any)
			ex, ok := media["example"]
			if !ok {
				t.Errorf("%s: the request body has no example", op)
				continue
			}
			raw, err := json.Marshal(withCardExpiry(ex, cardExpYear()))
			if err != nil {
				t.Fatalf("%s: encode the example: %v", op, err)
			}
			r.body = ids.Replace(string(raw))
			r.contentType = "application/json"
		}
		res := f.do(r)
		if res.status >= 300 {
			t.Errorf("%s: documented example refused: %d %s", op, res.status, res.body)
			continue
		}
		content, ok := spec["responses"].(map[string]any)[fmt.Sprint(res.status)].(map[string]any)["content"].(map[string]any)
		if !ok {
			t.Errorf("%s: status %d is not documented", op, res.status)
			continue
		}
		if _, ok := content["application/pdf"]; ok {
			// A document, not JSON: it must be what it says, and a PDF.
			if ct := res.header.Get("Content-Type"); ct != "application/pdf" || !bytes.HasPrefix(res.body, []byte("%PDF-")) {
				t.Errorf("%s: documented as application/pdf, answered %q starting %q", op, ct, res.body[:min(len(res.body), 8)])
			}
			continue
		}
		schema := content["application/json"].(map[string]any)["schema"].(map[string]any)
		if ref, ok := schema["$ref"].(string); ok {
			if err := d.check(strings.TrimPrefix(ref, "#/components/schemas/"), res.body); err != nil {
				t.Errorf("%s: response does not match its documented schema: %v\n%s", op, err, res.body)
			}
		}
	}
}
