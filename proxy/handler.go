package proxy

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/portcullis-gw/portcullis/proxy/classify"
	"github.com/portcullis-gw/portcullis/proxy/identity"
	"github.com/portcullis-gw/portcullis/proxy/session"
)

// requestState carries what the access log needs from the hooks that ran.
type requestState struct {
	id       string
	decision string
	reason   string

	// Suffix mode: the origin host, the suffixed host the browser used, the
	// user known for the request and an identity learnt on it (to be bound
	// to the session cookie on the response).
	origin, suffixed string
	user, learnt     *identity.Identity

	// recorded: the record was made (durably) before the response ended.
	recorded bool

	// sess is the session enforcement of a covered request; download: the
	// response is a file download (its bytes are never rewritten).
	sess *session.Request
	// control: the outcome of a print/clipboard attempt the page's
	// control script reported on this request.
	control *session.Outcome
	// in is the request as the client sent it (cookies included), for the
	// control script's session in ModifyResponse, which sees the outgoing
	// request only.
	in *http.Request
	// client is the request\'s client classification (ClientOf), once.
	client     classify.Result
	clientDone bool
	download   bool
	// forward is the client's response while forwardLean waits for the
	// origin's head: informational responses are passed to it.
	forward http.ResponseWriter
}

func (st *requestState) set(decision, reason string) {
	if st != nil {
		st.decision, st.reason = decision, reason
	}
}

type requestStateKey struct{}

func stateOf(ctx context.Context) *requestState {
	st, _ := ctx.Value(requestStateKey{}).(*requestState)
	return st
}

var requestSeq atomic.Uint64

// serveRequest is the per-request pipeline for intercepted connections:
// host check → session decision → upstream → access-log line.
func (s *Server) serveRequest(w http.ResponseWriter, r *http.Request) {
	s.serveRequestIn(r.Context(), w, r)
}

// serveRequestIn is serveRequest for a request whose context is parent
// (the HTTP/1.1 loop's request, which is given its context here, in the
// one copy of the request the pipeline makes anyway).
func (s *Server) serveRequestIn(parent context.Context, w http.ResponseWriter, r *http.Request) {
	ci := ConnInfoFrom(parent)
	if ci == nil {
		http.Error(w, "no connection context", http.StatusInternalServerError)
		return
	}
	s.Stats.Requests.Add(1)
	// One allocation for what the pipeline keeps per request.
	ra := &requestAlloc{st: requestState{decision: "allow"}}
	st, rec, body := &ra.st, &ra.rec, &ra.body
	st.id = ra.requestID(ci.ID, requestSeq.Add(1))
	ra.ctx = requestCtx{Context: parent, st: st}
	r = r.WithContext(&ra.ctx)
	st.in = r
	body.ReadCloser = r.Body
	if r.Body != nil && r.Body != http.NoBody {
		r.Body = body
	}
	*rec = recorder{ResponseWriter: w, status: http.StatusOK, expect: -1}
	start := time.Now()
	if s.durable != nil {
		// The end of the response waits for its record: the last byte of a
		// sized body here, anything else when the handler returns (the
		// response is not complete before that). The record is made here in
		// either case; whether the byte waits for its fsync is the
		// recorder's rule (hold_responses: all, or only activities).
		ra.hold = heldRecord{s: s, ci: ci, r: r, st: st, body: body}
		rec.hold = &ra.hold
	}
	defer func() {
		s.logRequest(ci, r, st, rec, body.n.Load(), time.Since(start))
		if st.sess != nil {
			st.sess.Close()
		}
	}()

	if s.cfg.Recorder != nil {
		if err := s.cfg.Recorder.Admit(); err != nil {
			s.Stats.RefusedUnrecorded.Add(1)
			st.set("block", "activity log unavailable")
			writeBlockPage(rec, http.StatusServiceUnavailable, blockPage{
				Title:  "Temporarily unavailable",
				Reason: "The gateway cannot record activity right now, so it does not serve requests. Try again shortly.",
				Host:   r.Host, RequestID: st.id,
			})
			return
		}
	}
	if ci.TLS && !sameHost(r.Host, ci.certName()) {
		s.Stats.Misdirected.Add(1)
		st.set("block", ErrMisdirected.Error())
		writeBlockPage(rec, http.StatusMisdirectedRequest, blockPage{
			Title:  "Misdirected request",
			Reason: fmt.Sprintf("This connection was opened for %s; %s must be reached on its own connection.", ci.certName(), r.Host),
			Host:   r.Host, RequestID: st.id,
		})
		return
	}
	if ci.Mode == ModeSuffix {
		s.serveSuffix(rec, r, ci, st)
		return
	}
	if ci.blockPage != nil {
		s.blockPageConn(rec, r, ci, st)
		return
	}
	if s.transparentIdentity(rec, r, ci, st) {
		return
	}
	if s.requestAccess(rec, r, ci, st) {
		return
	}
	if s.controlEndpoint(rec, r, ci, st) {
		return
	}
	if !s.sessionRequest(rec, r, ci, st, r.Host) || s.controlNotice(rec, r, st) {
		return
	}
	if !s.forwardLean(rec, r, ci, st) {
		s.rproxy.ServeHTTP(rec, r)
	}
}

// requestAlloc is what the pipeline allocates for one request, as one
// object: its state, its context, the response recorder, the request
// body's counter, what the hold needs to make the record, and the bytes of
// the request's id.
type requestAlloc struct {
	st   requestState
	ctx  requestCtx
	rec  recorder
	body countingBody
	hold heldRecord
	id   [33]byte
}

// requestID is the access log's id of a request: the connection's id and a
// sequence number, in hex, built in ra's bytes and copied once. The copy is
// deliberate: a string over ra's bytes would keep ra, and through it the
// request, its headers and its response writer, alive for as long as the
// id is held, and the activity log's queue holds ids of up to 65536 events
// when the store falls behind (hundreds of MB pinned, for one allocation
// of 48 bytes saved).
func (ra *requestAlloc) requestID(conn, seq uint64) string {
	b := strconv.AppendUint(ra.id[:0], conn, 16)
	b = append(b, '-')
	b = strconv.AppendUint(b, seq, 16)
	return string(b)
}

// requestCtx is a request's context: the client's, with the request's
// state as the value of requestStateKey (stateOf), held in requestAlloc
// where context.WithValue would allocate.
type requestCtx struct {
	context.Context
	st *requestState
}

func (c *requestCtx) Value(key any) any {
	if _, ok := key.(requestStateKey); ok {
		return c.st
	}
	return c.Context.Value(key)
}

func (c *requestCtx) String() string { return "proxy request context" }

var _ requestEnd = (*requestCtx)(nil)

// watchEnd and unwatchEnd are the parent's when it is a requestEnd.
func (c *requestCtx) watchEnd(w *leanWatcher, gen uint64) bool {
	e, ok := c.Context.(requestEnd)
	return ok && e.watchEnd(w, gen)
}

func (c *requestCtx) unwatchEnd(w *leanWatcher) {
	if e, ok := c.Context.(requestEnd); ok {
		e.unwatchEnd(w)
	}
}

// heldRecord makes a request's record when its response is held for it.
type heldRecord struct {
	s    *Server
	ci   *ConnInfo
	r    *http.Request
	st   *requestState
	body *countingBody
}

func (h *heldRecord) record(status int, out int64) error {
	h.st.recorded = true
	return h.s.recordDurable(h.s.requestRecord(h.ci, h.r, h.st, status, h.body.n.Load(), out))
}

// sameHost compares a Host header with the connection's name, ignoring the
// port, case and a trailing dot.
func sameHost(hostHeader, name string) bool {
	h := hostHeader
	if strings.IndexByte(h, ':') >= 0 {
		if hh, _, err := net.SplitHostPort(hostHeader); err == nil {
			h = hh
		}
	}
	h = strings.TrimSuffix(strings.Trim(h, "[]"), ".")
	return strings.EqualFold(h, name)
}

// recorder notes status and bytes for the access log. Unwrap keeps
// http.ResponseController (flush, hijack for WebSocket) working through it.
//
// With hold set, the last byte of a response with a Content-Length is
// written only after hold returned nil: a client never completes a response
// whose record is not durable. If hold fails, the byte is never written and
// the connection ends short.
type recorder struct {
	http.ResponseWriter
	status int
	n      int64
	wrote  bool

	expect int64       // Content-Length of the response, -1 when unknown
	hold   *heldRecord // nil: the response is not held
	held   bool
}

func (r *recorder) WriteHeader(code int) {
	if !r.wrote && code >= 200 || code == http.StatusSwitchingProtocols {
		r.status, r.wrote = code, true
		if r.hold != nil && code >= 200 {
			if n, err := strconv.ParseInt(r.Header().Get("Content-Length"), 10, 64); err == nil {
				r.expect = n
			}
		}
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(p []byte) (int, error) {
	if !r.wrote {
		r.WriteHeader(http.StatusOK)
	}
	if r.hold != nil && !r.held && r.expect > 0 && r.n+int64(len(p)) >= r.expect && len(p) > 0 {
		k := int(r.expect - r.n - 1) // bytes before the last one
		if k > len(p)-1 {
			k = len(p) - 1
		}
		n, err := r.ResponseWriter.Write(p[:k])
		r.n += int64(n)
		if err != nil {
			return n, err
		}
		r.held = true
		if err := r.hold.record(r.status, r.expect); err != nil {
			return n, fmt.Errorf("response held: %w", err)
		}
		m, err := r.ResponseWriter.Write(p[k:])
		r.n += int64(m)
		return n + m, err
	}
	n, err := r.ResponseWriter.Write(p)
	r.n += int64(n)
	return n, err
}

func (r *recorder) Flush() {
	if f, ok := r.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

// countingBody counts the request body's bytes. The count is atomic: the
// transport may still be reading the body (an origin that answered before
// it read it all) when the handler logs the request.
type countingBody struct {
	io.ReadCloser
	n atomic.Int64
}

func (b *countingBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.n.Add(int64(n))
	return n, err
}
