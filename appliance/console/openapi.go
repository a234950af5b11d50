package console

import (
	_ "embed"
	"net/http"
)

// openAPI documents /api/v1/; it is public (it describes, it reveals no
// data), every endpoint it lists needs a session.
//
//go:embed openapi.yaml
var openAPI []byte

func serveOpenAPI(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/yaml; charset=utf-8")
	_, _ = w.Write(openAPI)
}
