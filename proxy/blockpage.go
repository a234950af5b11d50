package proxy

import (
	"html/template"
	"net/http"
)

type blockPage struct {
	Title, Reason, Host, RequestID string
}

var blockTemplate = template.Must(template.New("block").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<title>{{.Title}}</title>
<style>body{font:16px/1.5 system-ui,sans-serif;max-width:40rem;margin:4rem auto;padding:0 1rem;color:#222}
h1{font-size:1.4rem;color:#a01010}code{background:#f3f3f3;padding:.1rem .3rem}</style></head>
<body><h1>{{.Title}}</h1><p>{{.Reason}}</p>
<p>Site: <code>{{.Host}}</code><br>Reference: <code>{{.RequestID}}</code></p>
<p>Portcullis gateway</p></body></html>
`))

// writeBlockPage answers with an explanation the user can act on (or quote to
// the help desk: the reference is the access-log id). It is never cached.
func writeBlockPage(w http.ResponseWriter, status int, p blockPage) {
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'")
	w.WriteHeader(status)
	_ = blockTemplate.Execute(w, p)
}
