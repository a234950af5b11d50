package proxy

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"

	"github.com/portcullis-gw/portcullis/proxy/identity"
	"github.com/portcullis-gw/portcullis/proxy/rewrite"
)

// The proxy's own endpoints live under this path on every suffixed host.
const suffixEndpointPrefix = "/.portcullis/"

// suffixState is built once per Server when suffix mode is on.
type suffixState struct {
	discovered *discoveredSet
	rproxy     *httputil.ReverseProxy
}

func (s *Server) initSuffix() {
	sc := s.cfg.Suffix
	sc.setDefaults()
	s.suffix = &suffixState{discovered: newDiscoveredSet(sc.MaxDiscovered)}
	s.suffix.rproxy = &httputil.ReverseProxy{
		Rewrite:        s.suffixRewriteRequest,
		Transport:      suffixTransport{s},
		ModifyResponse: s.suffixRewriteResponse,
		ErrorHandler:   s.upstreamError,
		BufferPool:     copyBuffers,
		ErrorLog:       s.rproxy.ErrorLog,
	}
}

// suffixRefusal is the page for a host the proxy will not serve. No
// upstream is dialled for any of them.
func suffixRefusal(err error) (int, string) {
	switch {
	case errors.Is(err, ErrIPLiteral):
		return http.StatusBadRequest, "Addresses are not proxied: only the names of onboarded apps are served under this domain."
	case errors.Is(err, ErrBadHost):
		return http.StatusBadRequest, "The host name in this request is malformed."
	case errors.Is(err, ErrNotSuffixed):
		return http.StatusMisdirectedRequest, "This host is not served by this gateway."
	case errors.Is(err, ErrNotOnboarded):
		return http.StatusNotFound, "This site is not an app your organisation has onboarded to the gateway."
	case errors.Is(err, ErrForbiddenAddr):
		return http.StatusForbidden, "This app resolves to an internal address the gateway does not connect to."
	}
	return http.StatusBadRequest, "The gateway cannot serve this request."
}

// serveSuffix is the per-request pipeline of the suffix listener: map the
// host back, learn who the user is, decide, rewrite both ways.
func (s *Server) serveSuffix(rec *recorder, r *http.Request, ci *ConnInfo, st *requestState) {
	sc := s.cfg.Suffix
	suffixed := r.Host
	origin, err := s.suffixOrigin(r.Host)
	if err == nil && r.URL.IsAbs() && !strings.EqualFold(r.URL.Host, r.Host) {
		err = fmt.Errorf("%w: absolute URI names %q", ErrBadHost, r.URL.Host)
	}
	if err != nil {
		s.Stats.SuffixRefused.Add(1)
		code, msg := suffixRefusal(err)
		st.set("block", err.Error())
		writeBlockPage(rec, code, blockPage{Title: "Not served", Reason: msg, Host: r.Host, RequestID: st.id})
		return
	}
	if hh, _, ok := strings.Cut(suffixed, ":"); ok {
		suffixed = hh
	}
	suffixed = strings.ToLower(strings.TrimSuffix(suffixed, "."))
	st.origin, st.suffixed = origin, suffixed
	if upgradeIs(r.Header, "h2c") {
		st.set("block", "h2c upgrade refused")
		writeBlockPage(rec, http.StatusBadRequest, blockPage{Title: "Not supported", Reason: "Cleartext HTTP/2 upgrades are not proxied.", Host: r.Host, RequestID: st.id})
		return
	}

	if sc.Sessions != nil {
		// Only a found identity is put on the heap (&id of the Get's result
		// would allocate for every request, signed in or not).
		if id, ok := sc.Sessions.Get(r, suffixed); ok {
			st.user = new(identity.Identity)
			*st.user = id
		}
	}
	if strings.HasPrefix(r.URL.Path, suffixEndpointPrefix) {
		s.suffixEndpoint(rec, r, st)
		return
	}
	if st.user == nil && sc.Login != nil && sc.LoginRequired != nil && sc.LoginRequired(origin) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			st.set("block", "login required")
			writeBlockPage(rec, http.StatusUnauthorized, blockPage{Title: "Sign-in required", Reason: "Sign in again, then repeat the action.", Host: r.Host, RequestID: st.id})
			return
		}
		st.set("allow", "login started")
		// The provider may itself be an onboarded app: its URL is then
		// suffixed like any other the browser is sent to.
		sc.Login.Start(locationWriter{rec, rewriteMapper{s: s, via: origin}}, r, "https://"+suffixed+r.URL.RequestURI())
		return
	}

	// The form bodies the proxy rewrites are read here, bounded, so that a
	// SAML response can be verified before anything goes upstream.
	if isURLEncodedForm(r) {
		if !s.suffixReadForm(rec, r, st) {
			return
		}
	}

	r.Host = origin
	if s.cfg.Request != nil {
		d := s.cfg.Request.DecideRequest(ci, r)
		if d.Monitor {
			st.set("monitor", d.Reason)
		}
		if d.Block {
			s.Stats.RequestsBlocked.Add(1)
			st.set("block", d.Reason)
			writeBlockPage(rec, http.StatusForbidden, blockPage{Title: "Blocked by policy", Reason: d.Message, Host: suffixed, RequestID: st.id})
			return
		}
	}
	if !s.sessionRequest(rec, r, ci, st, suffixed) || s.controlNotice(rec, r, st) {
		return
	}
	if !s.suffixForwardLean(rec, r, st) {
		s.suffix.rproxy.ServeHTTP(rec, r)
	}
}

// suffixReadForm reads a URL-encoded body (bounded), verifies a SAML
// response in it when the app has SAML trust, and replaces the body with its
// rewritten form. It answers the client itself and returns false when the
// request must stop here.
func (s *Server) suffixReadForm(w http.ResponseWriter, r *http.Request, st *requestState) bool {
	sc := s.cfg.Suffix
	raw, err := io.ReadAll(io.LimitReader(r.Body, sc.MaxFormBody+1))
	if err != nil {
		st.set("error", "reading form body: "+err.Error())
		http.Error(w, "could not read the request body", http.StatusBadRequest)
		return false
	}
	if int64(len(raw)) > sc.MaxFormBody {
		st.set("block", "form body over the limit")
		writeBlockPage(w, http.StatusRequestEntityTooLarge, blockPage{Title: "Form too large",
			Reason: fmt.Sprintf("Forms over %d bytes are not proxied.", sc.MaxFormBody), Host: st.suffixed, RequestID: st.id})
		return false
	}
	if bytes.Contains(raw, []byte("SAMLResponse=")) && sc.SAML != nil {
		if obs := sc.SAML(st.origin); obs != nil {
			form, _ := url.ParseQuery(string(raw))
			if v := form.Get("SAMLResponse"); v != "" {
				acs := "https://" + st.origin + r.URL.Path
				id, err := obs.Observe(v, acs)
				if err != nil {
					st.set("block", "SAML response refused: "+err.Error())
					writeBlockPage(w, http.StatusForbidden, blockPage{Title: "Sign-in refused",
						Reason: "The sign-in response could not be verified by the gateway.", Host: st.suffixed, RequestID: st.id})
					return false
				}
				st.user, st.learnt = &id, &id
			}
		}
	}
	var out bytes.Buffer
	out.Grow(len(raw))
	if err := rewrite.FormBody(&out, bytes.NewReader(raw), rewriteMapper{s: s, via: st.origin}); err != nil {
		st.set("block", "form body: "+err.Error())
		writeBlockPage(w, http.StatusBadRequest, blockPage{Title: "Malformed form", Reason: err.Error(), Host: st.suffixed, RequestID: st.id})
		return false
	}
	r.Body = io.NopCloser(&out)
	r.ContentLength = int64(out.Len())
	r.Header.Del("Content-Length")
	return true
}

// suffixEndpoint serves the proxy's own endpoints under /.portcullis/.
func (s *Server) suffixEndpoint(w http.ResponseWriter, r *http.Request, st *requestState) {
	sc := s.cfg.Suffix
	switch {
	case sc.Login != nil && sc.Login.IsCallback(r):
		st.set("allow", "login callback")
		sc.Login.Callback(w, r)
	case s.stepUpEndpoint(locationWriter{w, rewriteMapper{s: s, via: st.origin}}, r, ConnInfoFrom(r.Context()), st):
	case s.controlEndpoint(w, r, ConnInfoFrom(r.Context()), st):
	default:
		st.set("block", "unknown gateway endpoint")
		writeBlockPage(w, http.StatusNotFound, blockPage{Title: "Not found", Reason: "No such gateway page.", Host: st.suffixed, RequestID: st.id})
	}
}

// suffixRewriteRequest maps the outgoing request back to the origin: URL,
// Host, Origin, Referer, URL-valued query parameters (SAML RelayState, OIDC
// redirect_uri) and unsigned SAML requests. The proxy's own cookies never
// leave it.
func (s *Server) suffixRewriteRequest(pr *httputil.ProxyRequest) {
	st := stateOf(pr.In.Context())
	m := rewriteMapper{s: s, via: st.origin}
	pr.Out.URL.Scheme = "https"
	pr.Out.URL.Host = st.origin
	pr.Out.Host = st.origin
	if q := pr.Out.URL.RawQuery; q != "" {
		q = rewrite.SAMLQueryToOrigin(q, m)
		pr.Out.URL.RawQuery = queryToOrigin(q, m)
	}
	rewrite.RequestHeaders(pr.Out.Header, m)
	stripOwnCookies(pr.Out.Header)
}

// stripOwnCookies removes the proxy's cookies from a request to an origin:
// the cookies that remain, trimmed, are joined into one Cookie line (no
// line when none remains).
func stripOwnCookies(h http.Header) {
	lines := h["Cookie"]
	if len(lines) == 0 {
		return
	}
	delete(h, "Cookie")
	if line, ok := strippedCookies(lines); ok {
		h["Cookie"] = []string{line}
	}
}

// strippedCookies is the Cookie line stripOwnCookies sends for the lines,
// built in one buffer; false when no cookie remains.
func strippedCookies(lines []string) (string, bool) {
	var b strings.Builder
	for _, line := range lines {
		for part := range strings.SplitSeq(line, ";") {
			part = strings.TrimSpace(part)
			name, _, _ := strings.Cut(part, "=")
			if name == "" || strings.HasPrefix(name, "__Host-portcullis") {
				continue
			}
			if b.Len() == 0 {
				b.Grow(len(line))
			} else {
				b.WriteString("; ")
			}
			b.WriteString(part)
		}
	}
	return b.String(), b.Len() > 0
}

// suffixRewriteResponse rewrites headers and, for text types, the body as
// it streams; binds an identity learnt on this request to the proxy's
// session cookie.
func (s *Server) suffixRewriteResponse(resp *http.Response) error {
	st := stateOf(resp.Request.Context())
	return s.suffixRewriteResponseWith(resp, rewriteMapper{s: s, via: st.origin})
}

// suffixRewriteResponseWith is suffixRewriteResponse with the request's
// mapper.
func (s *Server) suffixRewriteResponseWith(resp *http.Response, m rewrite.Mapper) error {
	// Session enforcement sees the origin's own bytes, before any
	// rewriting; a download (allowed, protected or replaced) is a file and
	// keeps its bytes.
	download, err := s.sessionResponse(resp)
	if err != nil {
		return err
	}
	st := stateOf(resp.Request.Context())
	rewrite.ResponseHeaders(resp.Header, st.origin, m, rewrite.HeaderOptions{})
	if st.learnt != nil && s.cfg.Suffix.Sessions != nil && resp.StatusCode < 400 {
		if err := s.cfg.Suffix.Sessions.Set(headerWriter{resp.Header}, st.suffixed, *st.learnt); err == nil {
			s.Stats.SuffixLogins.Add(1)
		}
	}
	// The control script goes in before the body is rewritten (it decodes
	// the body, so the rewriter sees it plain) and after the headers are
	// (its nonce and report URL are already the suffixed host's).
	if err := s.controlInject(resp, st.suffixed); err != nil {
		return err
	}
	if download || resp.StatusCode == http.StatusSwitchingProtocols || resp.StatusCode == http.StatusPartialContent ||
		resp.StatusCode == http.StatusNoContent || resp.StatusCode == http.StatusNotModified ||
		resp.Request.Method == http.MethodHead || resp.Body == nil || resp.Body == http.NoBody {
		return nil
	}
	body, ok, err := rewrite.NewBodyReader(resp.Body, resp.Header.Get("Content-Type"), resp.Header.Get("Content-Encoding"), m, rewrite.BodyOptions{})
	if err != nil {
		return fmt.Errorf("response body of %s: %w", st.origin, err)
	}
	if !ok {
		return nil
	}
	s.Stats.SuffixRewritten.Add(1)
	resp.Body = body
	if resp.ContentLength >= 0 && resp.ContentLength <= suffixSizedBody {
		// The origin said how long the body is and it is small: rewrite it
		// whole before the headers go, so the client gets a length too
		// (and the origin's failure is a 502, not a cut body).
		n, complete, err := body.Buffer(suffixSizedBody)
		if err != nil {
			return fmt.Errorf("response body of %s: %w", st.origin, err)
		}
		if complete {
			resp.ContentLength = int64(n)
			resp.Header.Set("Content-Length", strconv.Itoa(n))
			return nil
		}
	}
	resp.ContentLength = -1
	resp.Header.Del("Content-Length")
	return nil
}

// suffixSizedBody bounds a rewritten body sent with its length: the origin's
// Content-Length and the rewritten bytes held before the headers go must
// both be at most this. Larger bodies (and bodies of no stated length)
// stream chunked through the rewriter's bounded buffers.
const suffixSizedBody = 128 << 10

// headerWriter lets code that sets cookies on a ResponseWriter set them on a
// proxied response's header.
type headerWriter struct{ h http.Header }

func (h headerWriter) Header() http.Header         { return h.h }
func (h headerWriter) Write(p []byte) (int, error) { return len(p), nil }
func (h headerWriter) WriteHeader(int)             {}

func isURLEncodedForm(r *http.Request) bool {
	if r.Body == nil || r.Body == http.NoBody {
		return false
	}
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	return err == nil && mt == "application/x-www-form-urlencoded"
}

// upgradeIs reports a Connection: Upgrade request for the given protocol.
func upgradeIs(h http.Header, proto string) bool {
	for _, v := range h.Values("Upgrade") {
		for p := range strings.SplitSeq(v, ",") {
			name, _, _ := strings.Cut(strings.TrimSpace(p), "/")
			if strings.EqualFold(name, proto) {
				return true
			}
		}
	}
	return false
}

// RequestUser is the identity the proxy knows for a request: learnt from a
// SAML assertion or its own login, kept in its session cookie.
func RequestUser(ctx context.Context) (identity.Identity, bool) {
	st := stateOf(ctx)
	if st == nil || st.user == nil {
		return identity.Identity{}, false
	}
	return *st.user, true
}

// queryToOrigin maps URL-valued query parameters back to the origin, except
// URLs of the proxy's own endpoints: those exist only under the suffix (an
// OIDC redirect_uri of the proxy's login must reach the provider as is).
func queryToOrigin(q string, m rewrite.Mapper) string {
	if !strings.Contains(q, "portcullis") {
		return rewrite.Query(q, m)
	}
	parts := strings.Split(q, "&")
	for i, p := range parts {
		_, v, _ := strings.Cut(p, "=")
		if dv, err := url.QueryUnescape(v); err == nil && strings.Contains(dv, suffixEndpointPrefix) {
			continue
		}
		parts[i] = rewrite.Query(p, m)
	}
	return strings.Join(parts, "&")
}

// locationWriter suffixes the Location of a redirect the proxy itself
// sends (to an identity provider that is an onboarded app).
type locationWriter struct {
	http.ResponseWriter
	m rewrite.Mapper
}

func (w locationWriter) WriteHeader(code int) {
	if loc := w.Header().Get("Location"); loc != "" {
		if n, ok := rewrite.URLToSuffix(loc, w.m); ok {
			w.Header().Set("Location", n)
		}
	}
	w.ResponseWriter.WriteHeader(code)
}
