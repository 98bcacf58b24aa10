package mercadopago

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/mercadopago/sdk-go/pkg/mperror"
)

// transport is the library's Requester: every call — the library's and the adapter's own —
// goes through it. It points the library's fixed https://api.mercadopago.com URLs at the
// configured API base, and replaces the random X-Idempotency-Key the library puts on every
// write with the one the call carries in its context: a charge re-driven after a lost answer
// must reach Mercado Pago with the key of the first try. It never retries (the library's
// default requester retries 5xx three times with sleeps of its own); portal/charging re-drives.
type transport struct {
	client *http.Client
	base   *url.URL
	token  string
}

type keyCtx struct{}

// withKey makes the writes made with ctx carry key as X-Idempotency-Key.
func withKey(ctx context.Context, key string) context.Context {
	return context.WithValue(ctx, keyCtx{}, key)
}

// Do implements the library's requester.Requester.
func (t *transport) Do(req *http.Request) (*http.Response, error) {
	r := req.Clone(req.Context())
	if req.GetBody != nil {
		body, err := req.GetBody()
		if err != nil {
			return nil, err
		}
		r.Body = body
	}
	r.URL.Scheme, r.URL.Host = t.base.Scheme, t.base.Host
	r.URL.Path = strings.TrimRight(t.base.Path, "/") + r.URL.Path
	r.URL.RawPath = ""
	r.Host = ""
	if key, ok := r.Context().Value(keyCtx{}).(string); ok && key != "" && r.Method != http.MethodGet {
		r.Header.Set("X-Idempotency-Key", key)
	}
	return t.client.Do(r)
}

// call makes a request the library cannot express, with the library's headers, and decodes
// the answer into out. Its errors have the library's shape (*mperror.ResponseError for an
// answer, a wrapped transport error otherwise), so fail reads both alike.
func (t *transport) call(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("encode request: %w", err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, "https://api.mercadopago.com"+path, body)
	if err != nil {
		return fmt.Errorf("build request: %w", err)
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("Content-Type", "application/json; charset=UTF-8")
	req.Header.Set("Authorization", "Bearer "+t.token)
	resp, err := t.Do(req)
	if err != nil {
		return fmt.Errorf("transport level error: %w", err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return fmt.Errorf("transport level error: %w", err)
	}
	if resp.StatusCode > 399 {
		return &mperror.ResponseError{StatusCode: resp.StatusCode, Message: string(raw), Headers: resp.Header}
	}
	if out == nil || len(raw) == 0 {
		return nil
	}
	if err := json.Unmarshal(raw, out); err != nil {
		return fmt.Errorf("decode answer: %w", err)
	}
	return nil
}
