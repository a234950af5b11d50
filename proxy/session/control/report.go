package control

import (
	"encoding/json"
	"io"
	"mime"
	"net"
	"net/http"
	"net/url"

	"github.com/portcullis-gw/portcullis/policy"
)

// Report is one print, cut/copy or paste attempt the script saw.
type Report struct {
	Kind policy.ActivityKind // policy.KindPrint, KindCutCopy or KindPaste
	// Blocked: the page's rule for Kind was Block, so the script stopped
	// the attempt; false for Monitor. It comes from the signed token, not
	// from what the page claims.
	Blocked   bool
	Host      string // the page's host, lower case, no port
	URL       string // the page's address, on Host
	SessionID string
}

// reportToken binds a page's reports to its host, its session and its
// rules, until the token expires.
func (c *Controller) reportToken(host, sessionID string, rules Rules) string {
	return c.reportKey.sealUntil(c.now().Add(c.ttl), []byte{rules.packed()}, host, sessionID)
}

// maxReportBody bounds a report request.
const maxReportBody = 8 << 10

type reportBody struct {
	Token   string `json:"token"`
	Kind    string `json:"kind"`
	Blocked bool   `json:"blocked"`
	URL     string `json:"url"`
}

var reportKinds = map[string]policy.ActivityKind{
	policy.KindPrint.String():   policy.KindPrint,
	policy.KindCutCopy.String(): policy.KindCutCopy,
	policy.KindPaste.String():   policy.KindPaste,
}

// serveReport answers POST {Endpoint}report. A request must come from the
// page itself: same origin (Origin, Sec-Fetch-Site), with the session it
// was served in, and with the page's unexpired token for this host and
// session; anything else is refused with 403 before the body is trusted.
func (c *Controller) serveReport(w http.ResponseWriter, r *http.Request, report func(Report)) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		httpError(w, http.StatusMethodNotAllowed)
		return
	}
	if !sameOrigin(r) {
		httpError(w, http.StatusForbidden)
		return
	}
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		httpError(w, http.StatusUnsupportedMediaType)
		return
	}
	raw, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxReportBody))
	var body reportBody
	if err != nil || json.Unmarshal(raw, &body) != nil {
		httpError(w, http.StatusBadRequest)
		return
	}
	host, session := canonicalHost(r.Host), c.sessionOf(r)
	extra, ok := c.reportKey.openUntil(body.Token, maxCookieToken, c.now(), host, session)
	if !ok || session == "" || len(extra) != 1 {
		httpError(w, http.StatusForbidden)
		return
	}
	kind, known := reportKinds[body.Kind]
	mode := unpack(extra[0]).mode(kind)
	if !known || mode == Allow || body.Blocked != (mode == Block) {
		httpError(w, http.StatusBadRequest) // not what this page's script reports
		return
	}
	u, err := url.Parse(body.URL)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || canonicalHost(u.Host) != host || len(body.URL) > 4096 {
		httpError(w, http.StatusBadRequest)
		return
	}
	if report != nil {
		report(Report{Kind: kind, Blocked: mode == Block, Host: host, URL: body.URL, SessionID: session})
	}
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusNoContent)
}

// sameOrigin: the request says it comes from a page of its own origin.
// Browsers send Sec-Fetch-Site and, on a POST, Origin; at least one must be
// there and every one there must agree.
func sameOrigin(r *http.Request) bool {
	site, origin := r.Header.Get("Sec-Fetch-Site"), r.Header.Get("Origin")
	if site == "" && origin == "" {
		return false
	}
	if site != "" && site != "same-origin" {
		return false
	}
	if origin != "" {
		u, err := url.Parse(origin)
		if err != nil || u.Scheme != requestScheme(r) || u.Path != "" || !sameHostPort(u.Host, r.Host, u.Scheme) {
			return false
		}
	}
	return true
}

func requestScheme(r *http.Request) string {
	if r.TLS != nil {
		return "https"
	}
	return "http"
}

// sameHostPort compares two authorities, a default port equal to none.
func sameHostPort(a, b, scheme string) bool {
	return normalAuthority(a, scheme) == normalAuthority(b, scheme)
}

func normalAuthority(a, scheme string) string {
	h, p := a, ""
	if host, port, err := net.SplitHostPort(a); err == nil {
		h, p = host, port
	}
	if p == "443" && scheme == "https" || p == "80" && scheme == "http" {
		p = ""
	}
	h = canonicalHost(h)
	if p != "" {
		return h + ":" + p
	}
	return h
}

func httpError(w http.ResponseWriter, code int) {
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	http.Error(w, http.StatusText(code), code)
}
