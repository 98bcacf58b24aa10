package payments

// CardFields describes a processor whose card entry is its own fields embedded in the portal's
// page (Mercado Pago's Secure Fields): the number, expiry and security code are typed in the
// processor's iframes and tokenized in the browser against the processor, and the page posts
// only the token back. The page that hosts them is the one page of the portal that loads a
// third party's script; its Content-Security-Policy names exactly these origins.
type CardFields struct {
	// Processor names the fields' kind, which picks the portal's script that drives them.
	Processor ProcessorType
	// PublicKey is the processor's public (publishable) key the fields need.
	PublicKey string
	// ScriptURL is the processor's JS SDK.
	ScriptURL string
	// ScriptOrigins, FrameOrigins, ConnectOrigins and ImageOrigins are what the page's CSP
	// adds to the portal's own origin for scripts, frames, fetches and images.
	ScriptOrigins, FrameOrigins, ConnectOrigins, ImageOrigins []string
	// Param is the query parameter of the set-up URL (SetupSession.RedirectURL, a page of the
	// portal) that asks the portal for the fields page.
	Param string
}

// FieldsHost is implemented by adapters with hosted set-up whose set-up page is the portal's
// own page with the processor's card fields (CardFields) rather than a page of the processor.
// The set-up reference is then the token the fields produced: a bearer credential for the
// card, so the page posts it, and a set-up reference in a URL is not accepted.
type FieldsHost interface {
	CardFields() CardFields
}
