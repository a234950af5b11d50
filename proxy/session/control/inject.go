package control

import (
	"crypto/rand"
	_ "embed"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"html"
	"io"
	"mime"
	"net/http"
	"strings"
)

//go:embed script.js
var controlScript string

// Inject prepares an HTML response for the browser: it returns the body
// with the control elements (a <style> and the <script>, both with a fresh
// CSP nonce) inserted at the start of <head>, or before the first element
// when there is none, every other byte as it was; and it changes h for the
// new body:
//
//   - Content-Security-Policy (and -Report-Only) allow the nonce and the
//     report endpoint, without weakening anything else (see allowInjected);
//   - the Content-Encoding (gzip, br, deflate, zstd) is decoded and the
//     header removed: the body goes to the browser as identity;
//   - Content-Length, validators (ETag, Last-Modified), digests and
//     Accept-Ranges are removed: they described the original bytes;
//   - Cache-Control becomes "private, no-cache" ("private, no-store" when
//     it had no-store): the page holds a session-bound token and a
//     per-response nonce, so no shared cache may keep it, and the browser
//     revalidates instead of reusing a stale token.
//
// host is the host the browser sees (a suffixed host in suffix mode), and
// sessionID the session of the request (Session). With rules that control
// nothing, body and h are returned unchanged. On error (ErrNotHTML,
// ErrCharset, ErrEncoding, ErrPartial, ErrSandboxed) body and h are also
// returned unchanged, so the caller can still serve the page, or refuse
// it because a block rule cannot be enforced. Inject reads nothing: it
// returns at once, and the work happens as the returned *Body is read.
func (c *Controller) Inject(h http.Header, body io.ReadCloser, host string, rules Rules, sessionID string) (io.ReadCloser, error) {
	rules = rules.clamped()
	if !rules.active() {
		return body, nil
	}
	if h.Get("Content-Range") != "" {
		return body, ErrPartial
	}
	mt, params, err := mime.ParseMediaType(h.Get("Content-Type"))
	if err != nil || mt != "text/html" {
		return body, ErrNotHTML
	}
	cs := strings.ToLower(params["charset"])
	if strings.HasPrefix(cs, "utf-16") || strings.HasPrefix(cs, "utf-32") || strings.HasPrefix(cs, "ucs-") {
		return body, fmt.Errorf("%w: %s", ErrCharset, cs)
	}
	enc, ok := decodable(h.Values("Content-Encoding"))
	if !ok {
		return body, fmt.Errorf("%w: %q", ErrEncoding, strings.Join(h.Values("Content-Encoding"), ", "))
	}
	for _, v := range h.Values("Content-Security-Policy") {
		if sandboxedNoScripts(v) {
			return body, ErrSandboxed
		}
	}

	nonce := newNonce()
	reportURL := "https://" + normalAuthority(host, "https") + c.endpoint + "report"
	host = canonicalHost(host)
	for _, k := range [...]string{"Content-Security-Policy", "Content-Security-Policy-Report-Only"} {
		for i, v := range h[k] {
			h[k][i] = allowInjected(v, nonce, reportURL)
		}
	}
	for _, k := range [...]string{"Content-Length", "Content-Encoding", "Etag", "Last-Modified", "Content-Md5",
		"Digest", "Content-Digest", "Repr-Digest", "Accept-Ranges"} {
		h.Del(k)
	}
	cacheControl := "private, no-cache"
	if strings.Contains(strings.ToLower(strings.Join(h.Values("Cache-Control"), ",")), "no-store") {
		cacheControl = "private, no-store"
	}
	h.Set("Cache-Control", cacheControl)

	return &Body{
		src:    body,
		enc:    enc,
		sc:     newScanner(cs == ""),
		insert: c.elements(host, sessionID, nonce, rules),
	}, nil
}

// decodable returns the one coding Body can decode ("" for identity).
func decodable(values []string) (string, bool) {
	var codings []string
	for _, v := range values {
		for _, t := range strings.Split(v, ",") {
			if t = strings.ToLower(strings.TrimSpace(t)); t != "" && t != "identity" {
				codings = append(codings, t)
			}
		}
	}
	switch {
	case len(codings) == 0:
		return "", true
	case len(codings) > 1:
		return "", false
	}
	switch codings[0] {
	case "gzip", "x-gzip", "br", "deflate", "zstd":
		return codings[0], true
	}
	return "", false
}

func newNonce() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// pageConfig is what the script reads from its data-portcullis attribute.
type pageConfig struct {
	Token   string `json:"token"`
	Report  string `json:"report"`
	Message string `json:"message"`
	Print   string `json:"print"`
	CutCopy string `json:"cut_copy"`
	Paste   string `json:"paste"`
}

// elements renders the inserted markup. The configuration goes to the
// script as JSON in an attribute (escaped twice: JSON escapes < > & and
// the attribute escaping quotes), never as script text, and the message
// reaches the print stylesheet as a CSS string of escapes: nothing in
// either can end its element.
func (c *Controller) elements(host, sessionID, nonce string, rules Rules) []byte {
	cfg, _ := json.Marshal(pageConfig{
		Token:   c.reportToken(host, sessionID, rules),
		Report:  c.endpoint + "report",
		Message: rules.message(),
		Print:   rules.Print.String(),
		CutCopy: rules.CutCopy.String(),
		Paste:   rules.Paste.String(),
	})
	var print string
	if rules.Print == Block {
		print = printCSS(rules.message())
	}
	attr := html.EscapeString(string(cfg))
	b := make([]byte, 0, len(bannerCSS)+len(print)+len(controlScript)+len(attr)+2*len(nonce)+96)
	b = append(b, `<style id="__portcullis-style" nonce="`...)
	b = append(b, nonce...)
	b = append(b, `">`...)
	b = append(b, bannerCSS...)
	b = append(b, print...)
	b = append(b, `</style><script nonce="`...)
	b = append(b, nonce...)
	b = append(b, `" data-portcullis="`...)
	b = append(b, attr...)
	b = append(b, `">`...)
	b = append(b, controlScript...)
	return append(b, `</script>`...)
}

// bannerCSS styles the message banner; "all: initial" keeps the page's own
// rules off it.
const bannerCSS = `#__portcullis-banner{all:initial;position:fixed;z-index:2147483647;top:12px;left:50%;transform:translateX(-50%);` +
	`max-width:min(640px,90vw);box-sizing:border-box;display:flex;gap:12px;align-items:flex-start;padding:10px 14px;` +
	`background:#1f2937;color:#fff;border-radius:6px;box-shadow:0 2px 10px rgba(0,0,0,.35);font:14px/1.4 system-ui,sans-serif}` +
	`#__portcullis-banner span{all:initial;color:inherit;font:inherit;white-space:pre-wrap}` +
	`#__portcullis-banner button{all:initial;cursor:pointer;color:inherit;font:20px/1 system-ui,sans-serif;padding:0 2px}`

// printCSS makes print media show the message instead of the page: every
// child of the root is hidden (the id selectors outrank the page's own
// print rules) and the root's ::before carries the message. It needs no
// script, so a page printed with scripts switched off shows only the
// message too.
func printCSS(message string) string {
	return `@media print{html>:not(#__portcullis-a):not(#__portcullis-b){display:none!important}` +
		`html{background:#fff!important}` +
		`html::before{content:` + cssString(message) + `!important;display:block!important;visibility:visible!important;` +
		`white-space:pre-wrap;margin:2cm;color:#000;font:16pt/1.4 sans-serif}}`
}

// cssString quotes s as a CSS string where everything but letters, digits
// and spaces is a hex escape, so no byte of the message can close the
// string, the rule or the <style> element.
func cssString(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == ' ':
			b.WriteRune(r)
		default:
			if r == 0 {
				r = 0xfffd
			}
			fmt.Fprintf(&b, `\%x `, r)
		}
	}
	b.WriteByte('"')
	return b.String()
}
