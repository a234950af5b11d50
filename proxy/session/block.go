package session

import (
	"bytes"
	"encoding/json"
	"html/template"
	"mime"
	"net/http"
	"strconv"
	"strings"
)

// BlockInfo is what a block page or a replaced file tells the user.
type BlockInfo struct {
	Message   string
	Policy    string
	Reference string // the access-log id, to quote to the help desk
	Host      string
}

var pageTemplate = template.Must(template.New("block").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<title>Blocked by policy</title>
<style>body{font:16px/1.5 system-ui,sans-serif;max-width:40rem;margin:4rem auto;padding:0 1rem;color:#222}
h1{font-size:1.4rem;color:#a01010}code{background:#f3f3f3;padding:.1rem .3rem}</style></head>
<body><h1>Blocked by policy</h1><p>{{.Message}}</p>
<p>Site: <code>{{.Host}}</code>{{if .Policy}}<br>Policy: <code>{{.Policy}}</code>{{end}}<br>Reference: <code>{{.Reference}}</code></p>
<p>Portcullis gateway</p></body></html>
`))

// WantsJSON reports a request made by script (fetch/XHR) rather than a
// navigation: Sec-Fetch-Mode other than navigate, X-Requested-With, or an
// Accept that asks for JSON and not HTML.
func WantsJSON(r *http.Request) bool {
	if m := r.Header.Get("Sec-Fetch-Mode"); m != "" {
		return m != "navigate"
	}
	if r.Header.Get("X-Requested-With") != "" {
		return true
	}
	acc := r.Header.Get("Accept")
	if strings.Contains(acc, "text/html") {
		return false
	}
	return strings.Contains(acc, "json")
}

// WriteBlock answers a blocked request: an HTML page for a navigation,
// {"error":"blocked","message":...,"policy":...,"reference":...} for
// fetch/XHR. Never cached.
func WriteBlock(w http.ResponseWriter, r *http.Request, status int, b BlockInfo) {
	h := w.Header()
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	if WantsJSON(r) {
		body, _ := json.Marshal(struct {
			Error     string `json:"error"`
			Message   string `json:"message"`
			Policy    string `json:"policy,omitempty"`
			Reference string `json:"reference"`
		}{"blocked", b.Message, b.Policy, b.Reference})
		h.Set("Content-Type", "application/json")
		h.Set("Content-Length", strconv.Itoa(len(body)+1))
		w.WriteHeader(status)
		_, _ = w.Write(append(body, '\n'))
		return
	}
	var buf bytes.Buffer
	_ = pageTemplate.Execute(&buf, b)
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'")
	h.Set("Content-Length", strconv.Itoa(buf.Len()))
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// BlockedFile is what a blocked download becomes: a text file named after
// the original (report.pdf → report.pdf.blocked.txt) carrying the message.
// The returned header replaces the response's (cookies are the caller's to
// keep).
func BlockedFile(original string, b BlockInfo) (http.Header, []byte) {
	if original == "" {
		original = "download"
	}
	name := original + ".blocked.txt"
	var body bytes.Buffer
	body.WriteString(b.Message)
	body.WriteString("\n\nFile: ")
	body.WriteString(original)
	if b.Policy != "" {
		body.WriteString("\nPolicy: ")
		body.WriteString(b.Policy)
	}
	body.WriteString("\nReference: ")
	body.WriteString(b.Reference)
	body.WriteString("\n")
	h := http.Header{}
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("Content-Disposition", attachment(name))
	h.Set("Content-Length", strconv.Itoa(body.Len()))
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	return h, body.Bytes()
}

// attachment is a Content-Disposition every browser reads: a quoted ASCII
// filename, and filename* (RFC 5987) when the name is not plain ASCII.
func attachment(name string) string {
	plain := true
	fallback := make([]byte, 0, len(name))
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case c < 0x20 || c >= 0x7f:
			plain = false
			fallback = append(fallback, '_')
		case c == '"' || c == '\\':
			fallback = append(fallback, '_')
		default:
			fallback = append(fallback, c)
		}
	}
	v := `attachment; filename="` + string(fallback) + `"`
	if !plain {
		v += "; " + strings.TrimPrefix(mime.FormatMediaType("x", map[string]string{"filename": name}), "x; ")
	}
	return v
}
