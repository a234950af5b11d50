package proxy

import (
	"net/http"
	"net/url"

	"github.com/portcullis-gw/portcullis/proxy/rewrite"
)

// suffixForwardLean forwards the commonest suffix request — an HTTP/1.1 GET
// or HEAD without a body or upgrade (leanEligible) whose only hop-by-hop
// field, if any, is "Connection: keep-alive" — over the origin's lean
// upstream, in place of the ReverseProxy: forwardLean's counterpart for the
// suffix listener. It sends what the ReverseProxy with suffixRewriteRequest
// and suffixTransport sends, and answers what it answers, without the
// per-request clone of the request and its header, the client trace and the
// per-field header copies:
//
//   - the outgoing request is a copy of the client's (r stays as it is: the
//     session pipeline and the record read it) with the origin's URL and
//     Host, its query mapped back, and a header of its own only when a
//     field is rewritten (Origin, Referer, the proxy's cookies removed):
//     suffixOutgoingRequest.from;
//     Forwarded, X-Forwarded-* and an absent User-Agent are as the
//     ReverseProxy leaves them (writeHead);
//   - the origin is resolved and checked as suffixTransport does it;
//   - the response loses its hop-by-hop fields, then goes through
//     suffixRewriteResponse, and is relayed as forwardLean relays it
//     (trailers, flushes, a body failing part-way aborts the response).
//
// It reports false, having done nothing, for a request it does not take.
func (s *Server) suffixForwardLean(w http.ResponseWriter, r *http.Request, st *requestState) bool {
	if r.ProtoMajor != 1 || !leanEligible(r) || !plainHopByHop(r.Header) {
		return false
	}
	dest, err := s.resolveOrigin(r.Context(), st.origin)
	if err != nil {
		s.upstreamError(w, r, err)
		return true
	}
	pt := s.pooledFor(upstreamKey{dest: dest, name: st.origin, tls: true})
	if pt.lean == nil {
		return false
	}
	o := &suffixOutgoingRequest{m: rewriteMapper{s: s, via: st.origin}}
	out := o.from(r, st.origin)
	st.forward = w
	resp, err := pt.lean.roundTrip(out, st, nil)
	st.forward = nil
	if err != nil {
		s.upstreamError(w, out, err)
		return true
	}
	dropHopByHop(resp.Header)
	if err := s.suffixRewriteResponseWith(resp, &o.m); err != nil {
		_ = resp.Body.Close()
		s.upstreamError(w, out, err)
		return true
	}
	relayLeanResponse(w, resp)
	return true
}

// suffixOutgoingRequest is what the lean path keeps per request, one
// allocation: the outgoing request, its URL, and the request's mapper
// (used as a rewrite.Mapper through its address, which is not boxed again
// at every use).
type suffixOutgoingRequest struct {
	req http.Request
	url url.URL
	m   rewriteMapper
}

// from makes o's request r as suffixRewriteRequest sends it to origin,
// mapped with o.m. r and its header are not changed: the header is r's own
// map unless a field of it is rewritten, then a copy sharing the values of
// every other field.
func (o *suffixOutgoingRequest) from(r *http.Request, origin string) *http.Request {
	o.req, o.url = *r, *r.URL
	m := &o.m
	out := &o.req
	out.URL = &o.url
	out.URL.Scheme, out.URL.Host, out.Host = "https", origin, origin
	if q := out.URL.RawQuery; q != "" {
		q = rewrite.SAMLQueryToOrigin(q, m)
		out.URL.RawQuery = queryToOrigin(q, m)
	}
	h := r.Header
	_, hasOrigin := h["Origin"]
	_, hasReferer := h["Referer"]
	ownCookie := hasOwnCookie(h)
	if !hasOrigin && !hasReferer && !ownCookie {
		return out
	}
	oh := make(http.Header, len(h))
	for k, vv := range h {
		oh[k] = vv
	}
	// The rewritten fields get new value slices (r's stay r's), cut from
	// one array: a signed-in browser sends all three with every request.
	vals := make([]string, 0, len(h["Origin"])+len(h["Referer"])+1)
	for _, k := range [...]string{"Origin", "Referer"} {
		vv := h[k]
		start := len(vals)
		changed := false
		for _, v := range vv {
			n, ok := rewrite.URLToOrigin(v, m)
			changed = changed || ok
			vals = append(vals, n)
		}
		if changed {
			oh[k] = vals[start:len(vals):len(vals)]
		} else {
			vals = vals[:start]
		}
	}
	if ownCookie {
		if line, ok := strippedCookies(h["Cookie"]); ok {
			vals = append(vals, line)
			oh["Cookie"] = vals[len(vals)-1 : len(vals) : len(vals)]
		} else {
			delete(oh, "Cookie")
		}
	}
	out.Header = oh
	return out
}
