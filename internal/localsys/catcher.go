package localsys

import (
	"context"
	"encoding/json"
	"errors"
	"html/template"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
)

// catcher is the local run's webhook receiver: the `general` portal's spec.webhooks points at it,
// so a newcomer sees events arrive as they click. It verifies every delivery's signature with
// the Standard Webhooks reference library, as a merchant would, and lists what it received.
type catcher struct {
	verifier *standardwebhooks.Webhook
	mu       sync.Mutex
	got      []caught // newest first, at most maxCaught
	failNext int      // answer this many deliveries 500 (to watch a retry)
}

type caught struct {
	ReceivedAt time.Time       `json:"received_at"`
	ID         string          `json:"webhook_id"`
	Timestamp  string          `json:"webhook_timestamp"`
	Verified   bool            `json:"verified"`
	Error      string          `json:"error,omitempty"`
	Status     int             `json:"answered"`
	Type       string          `json:"type"`
	Body       json.RawMessage `json:"body"`
}

const maxCaught = 500

func newCatcher(secret string) (*catcher, error) {
	v, err := standardwebhooks.NewWebhook(secret)
	if err != nil {
		return nil, err
	}
	return &catcher{verifier: v}, nil
}

// serve listens on 127.0.0.1:port until ctx ends.
func (c *catcher) serve(ctx context.Context, port string) error {
	l, err := net.Listen("tcp", "127.0.0.1:"+port)
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /hooks", c.receive)
	mux.HandleFunc("POST /fail-next", c.setFailNext)
	mux.HandleFunc("GET /events.json", c.list)
	mux.HandleFunc("GET /{$}", c.page)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() { <-ctx.Done(); _ = srv.Close() }()
	go func() {
		if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			_ = err // the run goes on without its catcher; the portal retries its deliveries
		}
	}()
	return nil
}

func (c *catcher) receive(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		http.Error(w, "read body", http.StatusBadRequest)
		return
	}
	e := caught{ReceivedAt: time.Now().UTC(), ID: r.Header.Get("webhook-id"), Timestamp: r.Header.Get("webhook-timestamp"), Body: body}
	if !json.Valid(body) {
		e.Body = json.RawMessage(strconv.Quote(string(body)))
	}
	var env struct{ Type string }
	_ = json.Unmarshal(body, &env)
	e.Type = env.Type
	if err := c.verifier.Verify(body, r.Header); err != nil {
		e.Error, e.Status = err.Error(), http.StatusBadRequest
	} else {
		e.Verified, e.Status = true, http.StatusNoContent
	}
	c.mu.Lock()
	if e.Verified && c.failNext > 0 {
		c.failNext--
		e.Status, e.Error = http.StatusInternalServerError, "answered 500 on purpose (POST /fail-next)"
	}
	c.got = append([]caught{e}, c.got...)
	if len(c.got) > maxCaught {
		c.got = c.got[:maxCaught]
	}
	c.mu.Unlock()
	w.WriteHeader(e.Status)
}

// setFailNext makes the next ?n= (default 1) verified deliveries answer 500, to watch the portal
// retry them with the same webhook-id.
func (c *catcher) setFailNext(w http.ResponseWriter, r *http.Request) {
	n, err := strconv.Atoi(r.URL.Query().Get("n"))
	if err != nil || n < 1 {
		n = 1
	}
	c.mu.Lock()
	c.failNext = n
	c.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
}

func (c *catcher) snapshot() []caught {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]caught(nil), c.got...)
}

func (c *catcher) list(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(c.snapshot())
}

var catcherPage = template.Must(template.New("page").Funcs(template.FuncMap{
	"pretty": func(b json.RawMessage) string {
		var v any
		if json.Unmarshal(b, &v) != nil {
			return string(b)
		}
		out, _ := json.MarshalIndent(v, "", "  ")
		return string(out)
	},
}).Parse(`<!doctype html><html lang="en"><head><meta charset="utf-8"><meta http-equiv="refresh" content="3">
<title>Portero webhook catcher</title><style>body{font-family:system-ui,sans-serif;margin:2rem;color:#1b1f24}
td,th{padding:.3rem .6rem;text-align:left;vertical-align:top;border-bottom:1px solid #ddd}pre{margin:0;font-size:.8rem;max-height:12rem;overflow:auto}
.ok{color:#116329}.bad{color:#a40e26}</style></head><body>
<h1>Webhook catcher</h1><p>Deliveries from the <code>general</code> portal, newest first (the page refreshes itself).
Signatures are checked with the Standard Webhooks reference library. <code>POST /fail-next?n=1</code> answers the next delivery 500, to see it retried with the same webhook-id;
<code>GET /events.json</code> lists them as JSON.</p>
<table><tr><th>received</th><th>type</th><th>webhook-id</th><th>signature</th><th>answered</th><th>body</th></tr>
{{range .}}<tr><td>{{.ReceivedAt.Format "15:04:05"}}</td><td>{{.Type}}</td><td><code>{{.ID}}</code></td>
<td>{{if .Verified}}<span class="ok">verified</span>{{else}}<span class="bad">{{.Error}}</span>{{end}}</td><td>{{.Status}}</td>
<td><pre>{{pretty .Body}}</pre></td></tr>{{else}}<tr><td colspan="6">Nothing yet: create a customer or add a payment method.</td></tr>{{end}}
</table></body></html>`))

func (c *catcher) page(w http.ResponseWriter, r *http.Request) {
	if strings.Contains(r.Header.Get("Accept"), "application/json") {
		c.list(w, r)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	_ = catcherPage.Execute(w, c.snapshot())
}
