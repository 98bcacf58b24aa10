package web

import (
	"encoding/base64"
	"net/http"
	"net/url"
	"path"
	"strings"
	"time"
)

// cookieNext remembers the page a signed-out visitor asked for (an e-mailed deep link to a
// payment, a bookmark), so that signing in with a code leads back to it instead of the overview.
const cookieNext = "portero-next"

// nextTTL bounds how long the wish is kept: a sign-in started later goes to the overview.
const nextTTL = 30 * time.Minute

// rememberNext keeps the page of this GET for after sign-in. Only pages of the portal itself
// are kept (see localTarget): the cookie can never send the browser elsewhere.
func rememberNext(w http.ResponseWriter, v *visit) {
	if v.r.Method != http.MethodGet {
		return
	}
	if to, ok := localTarget(v.r.URL.RequestURI()); ok && to != "/" {
		v.cookies.set(w, cookieNext, base64.RawURLEncoding.EncodeToString([]byte(to)), nextTTL)
	}
}

// takeNext returns where a customer who has just signed in goes — the remembered page if
// there is a valid one, else the overview — and forgets the remembered page.
func takeNext(w http.ResponseWriter, v *visit) string {
	raw := v.cookies.get(v.r, cookieNext)
	if raw == "" {
		return "/"
	}
	v.cookies.clear(w, cookieNext)
	b, err := base64.RawURLEncoding.DecodeString(raw)
	if err != nil {
		return "/"
	}
	if to, ok := localTarget(string(b)); ok {
		return to
	}
	return "/"
}

// localTarget accepts an absolute path on this portal (with its query) that is worth returning
// to after sign-in, and refuses anything a browser could resolve to another origin ("//host",
// "/\\host", schemes) as well as the sign-in pages themselves. The checks run on the decoded,
// cleaned path and again on the exact value returned, since re-encoding can turn "/%2F…" into
// "//…".
func localTarget(s string) (string, bool) {
	if len(s) > 1024 || !strings.HasPrefix(s, "/") || strings.HasPrefix(s, "//") ||
		strings.ContainsAny(s, "\\\x00\r\n\t ") {
		return "", false
	}
	u, err := url.Parse(s)
	if err != nil || u.Scheme != "" || u.Host != "" || u.User != nil || u.Opaque != "" ||
		strings.HasPrefix(u.Path, "//") || strings.ContainsAny(u.Path, "\\\x00\r\n\t") {
		return "", false
	}
	// Only canonical paths: no dot segments, no doubled slashes (the portal's links have none).
	clean := path.Clean(u.Path)
	if u.Path != clean && u.Path != clean+"/" {
		return "", false
	}
	for _, skip := range []string{"/login", "/s", "/logout", "/static"} {
		if clean == skip || strings.HasPrefix(clean, skip+"/") {
			return "", false
		}
	}
	u.Fragment, u.RawFragment = "", ""
	out := u.RequestURI()
	if !strings.HasPrefix(out, "/") || strings.HasPrefix(out, "//") || strings.HasPrefix(out, "/\\") {
		return "", false
	}
	return out, true
}

// forgetNext drops a remembered page: signing in through a link leads where the link says.
func forgetNext(w http.ResponseWriter, v *visit) {
	if v.cookies.get(v.r, cookieNext) != "" {
		v.cookies.clear(w, cookieNext)
	}
}
