package chaos

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"time"

	"golang.org/x/net/html"

	"github.com/portero-dev/portero/bench"
)

// browser is one customer's browser: its own cookie jar and, so the portal's per-client limits
// count it as a client of its own, its own loopback source address (Linux routes all of
// 127.0.0.0/8 to lo). It follows redirects and keeps the session's CSRF token.
type browser struct {
	base   string // the portal's URL, trailing slash
	client *http.Client
	csrf   string
}

// newBrowser returns a browser for base whose connections come from source (nil: any).
func newBrowser(base string, source net.IP) *browser {
	jar, _ := cookiejar.New(nil)
	d := &net.Dialer{Timeout: 5 * time.Second}
	if source != nil {
		d.LocalAddr = &net.TCPAddr{IP: source}
	}
	tr := &http.Transport{DialContext: d.DialContext, MaxIdleConnsPerHost: 2, IdleConnTimeout: 30 * time.Second}
	return &browser{base: strings.TrimSuffix(base, "/") + "/", client: &http.Client{Jar: jar, Transport: tr, Timeout: 20 * time.Second}}
}

// loopbackIP is the i-th address of 127.0.<1+i/250>.<1+i%250>, a client address of its own.
func loopbackIP(i int) net.IP {
	return net.IPv4(127, 0, byte(1+i/250), byte(1+i%250))
}

// page is a response as the browser saw it, after redirects.
type page struct {
	Status int
	Path   string // the final URL's path
	Body   string
}

func (b *browser) do(ctx context.Context, method, target string, form url.Values) (page, error) {
	u, err := url.Parse(target)
	if err != nil {
		return page{}, err
	}
	if !u.IsAbs() {
		base, _ := url.Parse(b.base)
		u = base.ResolveReference(u)
	}
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), body)
	if err != nil {
		return page{}, err
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	resp, err := b.client.Do(req)
	if err != nil {
		return page{}, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return page{}, err
	}
	p := page{Status: resp.StatusCode, Path: resp.Request.URL.Path, Body: string(raw)}
	if m := csrfInput.FindStringSubmatch(p.Body); m != nil {
		b.csrf = html.UnescapeString(m[1])
	}
	return p, nil
}

var csrfInput = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// get loads a page.
func (b *browser) get(ctx context.Context, path string) (page, error) {
	return b.do(ctx, http.MethodGet, path, nil)
}

// post submits a form to path with the session's CSRF token, as the page's form would.
func (b *browser) post(ctx context.Context, path string, form url.Values) (page, error) {
	if form == nil {
		form = url.Values{}
	}
	if b.csrf == "" {
		if _, err := b.get(ctx, "/"); err != nil {
			return page{}, err
		}
	}
	form.Set("csrf", b.csrf)
	return b.do(ctx, http.MethodPost, path, form)
}

// openLink signs in through a session link: the GET shows a page whose form (pre-session CSRF
// token and cookie) the browser posts, which lands on the portal signed in.
func (b *browser) openLink(ctx context.Context, link string) error {
	p, err := b.do(ctx, http.MethodGet, link, nil)
	if err != nil {
		return err
	}
	if p.Status != http.StatusOK {
		return fmt.Errorf("GET session link: %d", p.Status)
	}
	action, fields, err := bench.PostForm([]byte(p.Body))
	if err != nil {
		return fmt.Errorf("session link page: %w", err)
	}
	if action == "" {
		action = link
	}
	p, err = b.do(ctx, http.MethodPost, action, fields)
	if err != nil {
		return err
	}
	if p.Status != http.StatusOK || b.csrf == "" {
		return fmt.Errorf("POST session link: %d at %s", p.Status, p.Path)
	}
	return nil
}

// ids finds the ids of a kind linked from a page ("/methods/", "/payments/"…): the path segment
// after prefix.
func ids(body, prefix string) []string {
	re := regexp.MustCompile(regexp.QuoteMeta(prefix) + `([a-z]+_[A-Za-z0-9]+)`)
	seen := map[string]bool{}
	var out []string
	for _, m := range re.FindAllStringSubmatch(body, -1) {
		if !seen[m[1]] {
			seen[m[1]] = true
			out = append(out, m[1])
		}
	}
	return out
}
