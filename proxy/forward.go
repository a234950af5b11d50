package proxy

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/textproto"
	"strings"
)

// forwardLean forwards the commonest request — a GET or HEAD without a
// body or upgrade (leanEligible), carrying no hop-by-hop field beyond
// "Connection: keep-alive" and none of the proxy's own cookies — over the
// lean upstream, in place of the ReverseProxy. It does what the
// ReverseProxy does for such a request, without the per-request clone of
// the request and its header, the client trace, the per-field header
// copies and the media-type parse (about a third of the request path's
// allocations):
//
//   - the outgoing head is the client's, less Forwarded and X-Forwarded-*
//     (the ReverseProxy drops them when Rewrite is set) and with no
//     User-Agent when the client sent none (writeHead, forwardMode);
//   - the response passes through the session pipeline's ModifyResponse,
//     loses its hop-by-hop fields, keeps its trailers, and streams with a
//     flush after every write when its length is unknown or it is an event
//     stream;
//   - informational responses (103) reach the client as they arrive;
//   - a body that fails part-way aborts the client's response
//     (http.ErrAbortHandler), so it never looks complete.
//
// It also takes a request with a small body (leanBodyEligible: a
// Content-Length of at most maxLeanBody, a form or an API call): the body
// is read whole first, through the pipeline's readers (the session's
// inspection, the byte count, the client-body timeout), and goes out with
// the head in one write. A body that fails or is refused while it is read
// is answered as the ReverseProxy's error handler answers it, and the
// origin gets nothing of it. Such a request is never retried on another
// connection: the origin may have acted on it.
//
// It reports false, having done nothing, for a request it does not take;
// the caller then uses the ReverseProxy.
func (s *Server) forwardLean(w http.ResponseWriter, r *http.Request, ci *ConnInfo, st *requestState) bool {
	lu, ok := ci.upstream.(*leanUpstream)
	if !ok || !plainHopByHop(r.Header) || hasOwnCookie(r.Header) {
		return false
	}
	var body []byte
	switch {
	case leanEligible(r):
	case leanBodyEligible(r):
		bp := copyBuffers.pool.Get().(*[]byte)
		defer copyBuffers.pool.Put(bp)
		var err error
		if body, err = readWhole(r.Body, (*bp)[:r.ContentLength]); err != nil {
			s.upstreamError(w, r, err)
			return true
		}
	default:
		return false
	}
	st.forward = w
	resp, err := lu.roundTrip(r, st, body)
	st.forward = nil
	if err != nil {
		s.upstreamError(w, r, err)
		return true
	}
	if mod := s.rproxy.ModifyResponse; mod != nil {
		if err := mod(resp); err != nil {
			_ = resp.Body.Close()
			s.upstreamError(w, r, err)
			return true
		}
	}
	dropHopByHop(resp.Header)
	relayLeanResponse(w, resp)
	return true
}

// relayLeanResponse writes resp (hop-by-hop fields removed, rewritten) to
// w, for forwardLean and suffixForwardLean: the header's value slices handed over, announced
// trailers, a flush after every write when the length is unknown or it is
// an event stream, the trailers after the body; a body failing part-way
// aborts the client's response (http.ErrAbortHandler).
func relayLeanResponse(w http.ResponseWriter, resp *http.Response) {
	dst := w.Header()
	for k, vv := range resp.Header {
		// The response is this request's alone: its value slices are
		// handed over, not copied (net/http clones the header at
		// WriteHeader).
		if old, ok := dst[k]; ok {
			vv = append(old, vv...)
		}
		dst[k] = vv
	}
	announced := len(resp.Trailer)
	if announced > 0 {
		keys := make([]string, 0, announced)
		for k := range resp.Trailer {
			keys = append(keys, k)
		}
		dst.Add("Trailer", strings.Join(keys, ", "))
	}
	w.WriteHeader(resp.StatusCode)
	if announced > 0 {
		// Trailers force chunking: net/http must not compute a length.
		_ = http.NewResponseController(w).Flush()
	}
	flush := resp.ContentLength == -1 || isEventStream(resp.Header)
	if err := copyBody(w, resp.Body, flush); err != nil {
		_ = resp.Body.Close()
		panic(http.ErrAbortHandler)
	}
	_ = resp.Body.Close() // fills resp.Trailer
	if len(resp.Trailer) > 0 {
		th := w.Header()
		for k, vv := range resp.Trailer {
			if len(resp.Trailer) != announced {
				k = http.TrailerPrefix + k
			}
			th[k] = append(th[k], vv...)
		}
	}
}

// copyBody streams body to w through a pooled buffer, flushing after every
// write when flush is set. Any failure, reading or writing, is returned.
func copyBody(w http.ResponseWriter, body io.Reader, flush bool) error {
	bp := copyBuffers.pool.Get().(*[]byte)
	defer copyBuffers.pool.Put(bp)
	buf := *bp
	var flusher http.Flusher
	if flush {
		flusher, _ = w.(http.Flusher)
	}
	for {
		n, rerr := body.Read(buf)
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil {
				return werr
			}
			if flusher != nil {
				flusher.Flush()
			}
		}
		if rerr == io.EOF {
			return nil
		}
		if rerr != nil {
			return rerr
		}
	}
}

// forward1xx passes an informational response to the client as the
// ReverseProxy does: its fields on the response header for the 1xx only.
func forward1xx(w http.ResponseWriter, code int, header http.Header) {
	h := w.Header()
	for k, vv := range header {
		h[k] = vv
	}
	w.WriteHeader(code)
	clear(h)
}

// plainHopByHop reports whether the request's only hop-by-hop field, if
// any, is "Connection: keep-alive": anything else (a field named in
// Connection, Keep-Alive, Proxy-*, TE, Upgrade) is the ReverseProxy's to
// remove.
func plainHopByHop(h http.Header) bool {
	for _, k := range hopByHop[1:] { // all but Connection, checked below
		if _, ok := h[k]; ok {
			return false
		}
	}
	for _, v := range h["Connection"] {
		if !strings.EqualFold(strings.TrimSpace(v), "keep-alive") {
			return false
		}
	}
	return true
}

// hasOwnCookie reports a Cookie field that may carry one of the proxy's
// own cookies (rewriteToOrigin strips them).
func hasOwnCookie(h http.Header) bool {
	for _, v := range h["Cookie"] {
		if strings.Contains(v, "__Host-portcullis") {
			return true
		}
	}
	return false
}

// hopByHop are the fields that end at the proxy (RFC 9110 §7.6.1),
// Connection first.
var hopByHop = [...]string{"Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate", "Proxy-Authorization", "Te", "Trailer", "Transfer-Encoding", "Upgrade"}

// dropHopByHop removes the hop-by-hop fields of a response, and the fields
// its Connection field names.
func dropHopByHop(h http.Header) {
	for _, v := range h["Connection"] {
		for f := range strings.SplitSeq(v, ",") {
			if f = textproto.TrimString(f); f != "" && !strings.EqualFold(f, "keep-alive") && !strings.EqualFold(f, "close") {
				h.Del(f)
			}
		}
	}
	for _, k := range hopByHop {
		delete(h, k)
	}
}

// isEventStream reports a Content-Type of text/event-stream (parameters
// and case aside), which is flushed as it arrives.
func isEventStream(h http.Header) bool {
	v := h["Content-Type"]
	if len(v) == 0 {
		return false
	}
	ct := strings.TrimLeft(v[0], " \t")
	const es = "text/event-stream"
	if len(ct) < len(es) || !strings.EqualFold(ct[:len(es)], es) {
		return false
	}
	rest := ct[len(es):]
	return rest == "" || rest[0] == ';' || rest[0] == ' ' || rest[0] == '\t'
}

// maxLeanBody is the largest request body forwardLean takes: one of
// copyBuffers' buffers.
const maxLeanBody = 32 << 10

// leanBodyEligible reports whether forwardLean takes r with its body: as
// leanEligible, but any method but CONNECT, and a body of a known length
// of at most maxLeanBody.
func leanBodyEligible(r *http.Request) bool {
	return r.ContentLength > 0 && r.ContentLength <= maxLeanBody && r.Body != nil && r.Body != http.NoBody &&
		r.Method != http.MethodConnect && len(r.Trailer) == 0 && !r.Close &&
		r.Header["Upgrade"] == nil && r.Header["Expect"] == nil && len(r.TransferEncoding) == 0
}

// errBodyLength is a body that is not as long as its Content-Length says
// (a reader of the pipeline that changed it).
var errBodyLength = errors.New("request body does not match its Content-Length")

// readWhole fills buf from body, which must end there. The readers' own
// errors (the client's body failing, the session refusing it) are returned
// as they are, for upstreamError.
func readWhole(body io.Reader, buf []byte) ([]byte, error) {
	if _, err := io.ReadFull(body, buf); err != nil {
		if err == io.ErrUnexpectedEOF || err == io.EOF {
			return nil, fmt.Errorf("%w: it ended early", errBodyLength)
		}
		return nil, err
	}
	var one [1]byte
	switch n, err := io.ReadFull(body, one[:]); {
	case n > 0:
		return nil, fmt.Errorf("%w: it is longer", errBodyLength)
	case err != io.EOF:
		return nil, err
	}
	return buf, nil
}
