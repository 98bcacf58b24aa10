package api

import (
	_ "embed"
	"net/http"
)

// openAPIDocument describes every endpoint, schema and error of the API. It is written by hand
// (the API is small and its prose matters) and kept honest by openapi_test.go, which checks that
// documented and routed endpoints match and that the document's examples are accepted.
//
//go:embed openapi.json
var openAPIDocument []byte

// OpenAPI returns the OpenAPI 3.1 document of the merchant API.
func OpenAPI() []byte { return append([]byte(nil), openAPIDocument...) }

func (a *API) serveOpenAPI(w http.ResponseWriter, _ *http.Request) *apiError {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "public, max-age=300")
	_, _ = w.Write(openAPIDocument)
	return nil
}
