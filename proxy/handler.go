package proxy

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"time"
)

// requestState carries what the access log needs from the hooks that ran.
type requestState struct {
	id       string
	decision string
	reason   string
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
	ci := ConnInfoFrom(r.Context())
	if ci == nil {
		http.Error(w, "no connection context", http.StatusInternalServerError)
		return
	}
	s.Stats.Requests.Add(1)
	st := &requestState{id: fmt.Sprintf("%x-%x", ci.ID, requestSeq.Add(1)), decision: "allow"}
	r = r.WithContext(context.WithValue(r.Context(), requestStateKey{}, st))
	body := &countingBody{ReadCloser: r.Body}
	if r.Body != nil && r.Body != http.NoBody {
		r.Body = body
	}
	rec := &recorder{ResponseWriter: w, status: http.StatusOK}
	start := time.Now()
	defer func() { s.logRequest(ci, r, st, rec, body.n, time.Since(start)) }()

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
	if s.cfg.Request != nil {
		d := s.cfg.Request.DecideRequest(ci, r)
		if d.Monitor {
			st.set("monitor", d.Reason)
		}
		if d.Block {
			s.Stats.RequestsBlocked.Add(1)
			st.set("block", d.Reason)
			writeBlockPage(rec, http.StatusForbidden, blockPage{
				Title: "Blocked by policy", Reason: d.Message, Host: r.Host, RequestID: st.id,
			})
			return
		}
	}
	s.rproxy.ServeHTTP(rec, r)
}

// sameHost compares a Host header with the connection's name, ignoring the
// port, case and a trailing dot.
func sameHost(hostHeader, name string) bool {
	h := hostHeader
	if hh, _, err := net.SplitHostPort(hostHeader); err == nil {
		h = hh
	}
	h = strings.TrimSuffix(strings.Trim(h, "[]"), ".")
	return strings.EqualFold(h, name)
}

// recorder notes status and bytes for the access log. Unwrap keeps
// http.ResponseController (flush, hijack for WebSocket) working through it.
type recorder struct {
	http.ResponseWriter
	status int
	n      int64
	wrote  bool
}

func (r *recorder) WriteHeader(code int) {
	if !r.wrote && code >= 200 || code == http.StatusSwitchingProtocols {
		r.status, r.wrote = code, true
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(p []byte) (int, error) {
	r.wrote = true
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

type countingBody struct {
	io.ReadCloser
	n int64
}

func (b *countingBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.n += int64(n)
	return n, err
}
