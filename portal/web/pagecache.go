package web

import (
	"container/list"
	"sync"

	"k8s.io/apimachinery/pkg/types"
)

// Default bounds of the page cache: an overview is about 10 KiB, so the byte bound is reached
// first, at some 800 sessions' pages.
const (
	defaultPageCacheBytes = 8 << 20
	maxCachedPages        = 4096
)

// pageCache keeps each browser session's overview as last rendered, and serves it again while
// everything it was rendered from is unchanged (see pageStamp). The overview is the page every
// visit starts on and comes back to; rendering it reads the customer's methods, subscriptions
// and payments and runs some ninety template actions, while checking that nothing changed
// costs a comparison: the customer's version arrives with the customer row every signed-in
// request reads anyway.
//
// Entries are per session: a page carries its session's CSRF token, and one session's entry is
// never looked at for another (the key is the session's id, the hash of its 256-bit cookie;
// the stamp names the customer too). Memory is bounded by bytes and by entries, least recently
// used first out. It is safe for concurrent use; a cached body is never written to again.
type pageCache struct {
	mu       sync.Mutex
	entries  map[string]*list.Element // session id → *cachedPage
	lru      list.List                // front: most recently used
	bytes    int
	maxBytes int
	maxPages int
}

// cachedPage is one session's rendered page.
type cachedPage struct {
	session string
	stamp   pageStamp
	csp     string
	body    []byte
}

// pageStamp is what a page was rendered from, beside its session: a cached page is served
// only to a request whose stamp is equal.
type pageStamp struct {
	// customer and version: the customer's data. The version changes with every write to the
	// customer or to anything of theirs (the ledger's triggers: ledger.Customer.Version).
	customer string
	version  int64
	locale   string
	// portal: the CustomerPortal's rules, branding and links, as of this resourceVersion.
	portalUID types.UID
	portalRV  string
	// link: the PortalSession behind a link session (its return URL), "" otherwise.
	linkUID types.UID
	linkRV  string
	csrf    string
	// day is the UTC day: the overview shows nothing finer (dates, and card expiry by month).
	day int64
}

func newPageCache(maxBytes int) *pageCache {
	return &pageCache{entries: map[string]*list.Element{}, maxBytes: maxBytes, maxPages: maxCachedPages}
}

// stamp returns what the page for v would be rendered from; false when v's page must not be
// cached: no signed-in customer, a notice to show once (the flash), or rules whose changes
// cannot be told apart (no resourceVersion, as in hand-made test objects).
func (c *pageCache) stamp(v *visit) (pageStamp, bool) {
	if c == nil || v.sess == nil || v.customer == nil || v.flash != "" || v.portal.ResourceVersion == "" {
		return pageStamp{}, false
	}
	s := pageStamp{customer: v.customer.ID, version: v.customer.Version, locale: v.locale,
		portalUID: v.portal.UID, portalRV: v.portal.ResourceVersion, csrf: v.sess.CSRFToken,
		day: dayOf(v)}
	if v.psess != nil {
		if v.psess.ResourceVersion == "" {
			return pageStamp{}, false
		}
		s.linkUID, s.linkRV = v.psess.UID, v.psess.ResourceVersion
	}
	return s, true
}

// dayOf is the number of the request's UTC day.
func dayOf(v *visit) int64 {
	u := v.now.Unix()
	d := u / 86400
	if u < 0 && u%86400 != 0 {
		d--
	}
	return d
}

// get returns the session's page if it was rendered from stamp s.
func (c *pageCache) get(session string, s pageStamp) (*cachedPage, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[session]
	if !ok {
		return nil, false
	}
	p := e.Value.(*cachedPage)
	if p.stamp != s {
		return nil, false
	}
	c.lru.MoveToFront(e)
	return p, true
}

// put keeps a copy of body as the session's page, replacing what it had, unless the page alone
// is over a quarter of the cache.
func (c *pageCache) put(session string, s pageStamp, csp string, body []byte) {
	if len(body) > c.maxBytes/4 {
		c.forget(session)
		return
	}
	p := &cachedPage{session: session, stamp: s, csp: csp, body: append([]byte(nil), body...)}
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.entries[session]; ok {
		c.bytes -= len(e.Value.(*cachedPage).body)
		e.Value = p
		c.lru.MoveToFront(e)
	} else {
		c.entries[session] = c.lru.PushFront(p)
	}
	c.bytes += len(p.body)
	for c.bytes > c.maxBytes || len(c.entries) > c.maxPages {
		c.removeLocked(c.lru.Back())
	}
}

// forget drops the session's page (at sign-out, or when the session ends).
func (c *pageCache) forget(session string) {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.entries[session]; ok {
		c.removeLocked(e)
	}
}

func (c *pageCache) removeLocked(e *list.Element) {
	p := c.lru.Remove(e).(*cachedPage)
	delete(c.entries, p.session)
	c.bytes -= len(p.body)
}

// len reports the pages and bytes kept.
func (c *pageCache) len() (pages, bytes int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.entries), c.bytes
}
