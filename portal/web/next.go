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

// localTarget accepts a page worth returning to after sign-in: a path on this portal (see
// localPath) other than the sign-in pages themselves.
func localTarget(s string) (string, bool) {
	out, clean, ok := checkLocal(s)
	if !ok {
		return "", false
	}
	for _, skip := range []string{"/login", "/s", "/logout", "/static"} {
		if clean == skip || strings.HasPrefix(clean, skip+"/") {
			return "", false
		}
	}
	return out, true
}

// localPath accepts an absolute path on this portal (with its query, without its fragment)
// and refuses anything a browser could resolve to another origin: "//host", "/\host" (browsers
// read a backslash as a slash), schemes, control characters and spaces (browsers drop tabs and
// newlines, so "/\t/host" is "//host" to them), raw or percent-encoded. Only canonical paths
// pass: no dot segments, no doubled slashes, which the portal's own links never have. The checks
// run on the decoded, cleaned path and again on the exact value returned, since re-encoding can
// turn "/%2F…" into "//…". Every redirect the portal sends goes through it (see redirect).
func localPath(s string) (string, bool) {
	out, _, ok := checkLocal(s)
	return out, ok
}

// checkLocal is localPath, also returning the cleaned, decoded path.
func checkLocal(s string) (out, clean string, ok bool) {
	if len(s) > 1024 || !strings.HasPrefix(s, "/") || strings.HasPrefix(s, "//") || hasUnsafeByte(s) {
		return "", "", false
	}
	u, err := url.Parse(s)
	if err != nil || u.Scheme != "" || u.Host != "" || u.User != nil || u.Opaque != "" ||
		strings.HasPrefix(u.Path, "//") || hasUnsafeByte(u.Path) {
		return "", "", false
	}
	clean = path.Clean(u.Path)
	if u.Path != clean && u.Path != clean+"/" {
		return "", "", false
	}
	u.Fragment, u.RawFragment = "", ""
	out = u.RequestURI()
	if !strings.HasPrefix(out, "/") || strings.HasPrefix(out, "//") || strings.HasPrefix(out, "/\\") {
		return "", "", false
	}
	return out, clean, true
}

// hasUnsafeByte reports a backslash, a space or a control character.
func hasUnsafeByte(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c == 0x7f || c == '\\' {
			return true
		}
	}
	return false
}

// redirect answers 303 See Other, the right status after a POST and harmless after a GET. The
// target is always a path on the portal: one that is not (built from request data a visitor
// shaped, such as the language switch's page, or from a merchant-set id) leads to the overview.
func redirect(w http.ResponseWriter, v *visit, to string) {
	local, ok := localPath(to)
	if !ok {
		local = "/"
	}
	http.Redirect(w, v.r, local, http.StatusSeeOther)
}

// forgetNext drops a remembered page: signing in through a link leads where the link says.
func forgetNext(w http.ResponseWriter, v *visit) {
	if v.cookies.get(v.r, cookieNext) != "" {
		v.cookies.clear(w, cookieNext)
	}
}
