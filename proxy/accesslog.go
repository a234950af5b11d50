package proxy

import (
	"context"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"time"
)

// requestRecord is the activity record of one request as it stands.
func (s *Server) requestRecord(ci *ConnInfo, r *http.Request, st *requestState, status int, in, out int64) Record {
	var user string
	var groups []string
	if st.user != nil {
		user, groups = st.user.User, st.user.Groups
	}
	if d := ci.Device(); user == "" && d != nil && d.Valid {
		user = d.User // the client certificate's, when configured to name one
	}
	rc := Record{
		Time: time.Now(), Mode: ci.Mode, Client: ci.Client, Dest: ci.Dest, JA4: ci.JA4, SNI: ci.ServerName(),
		Host: r.Host, User: user, Groups: groups, Method: r.Method, Path: r.URL.Path, Status: status,
		Decision: st.decision, Reason: st.reason, BytesIn: in, BytesOut: out, RequestID: st.id,
		DeviceTags: ci.DeviceTags(), Login: st.learnt != nil,
	}
	if st.user != nil && len(st.user.DeviceTags) > 0 {
		rc.DeviceTags = slices.Concat(rc.DeviceTags, st.user.DeviceTags) // from the IdP's claims
	}
	rc.ClientKind = ClientOf(r)
	s.sessionRecord(&rc, st)
	return rc
}

// logRequest writes the access-log line of one intercepted request and, if
// that was not done before the response ended, its activity record.
func (s *Server) logRequest(ci *ConnInfo, r *http.Request, st *requestState, rec *recorder, in int64, d time.Duration) {
	s.Stats.latency.observe(d)
	var user string
	if st.user != nil {
		user = st.user.User
	}
	if st.sess != nil {
		s.noteSession(st)
	}
	if !st.recorded {
		rc := s.requestRecord(ci, r, st, rec.status, in, rec.n)
		if s.durable != nil {
			if err := s.recordDurable(rc); err != nil {
				// The response is not complete until this returns: end it
				// short rather than let an unrecorded response finish.
				s.accessLine(ci, r, st, rec, in, d, user)
				panic(http.ErrAbortHandler)
			}
		} else {
			s.record(rc)
		}
	}
	s.accessLine(ci, r, st, rec, in, d, user)
}

func (s *Server) accessLine(ci *ConnInfo, r *http.Request, st *requestState, rec *recorder, in int64, d time.Duration, user string) {
	l := RequestLine{
		ID: st.id, Mode: ci.Mode.String(), Client: ci.addrText.client(ci), Dest: ci.addrText.dest(ci),
		SNI: ci.ServerName(), Host: r.Host, User: user, Method: r.Method, Path: r.URL.Path, Proto: r.Proto,
		Status: rec.status, BytesIn: in, BytesOut: rec.n, Decision: st.decision, Reason: st.reason,
		JA4: ci.JA4, ClientApp: st.client.Client.String(), ClientWhy: st.client.Why, DurationUS: d.Microseconds(),
	}
	if h := s.requestLines; h != nil {
		if h.Enabled(context.Background(), slog.LevelInfo) {
			_ = h.HandleRequestLine(time.Now(), &l)
		}
		return
	}
	s.cfg.AccessLog.LogAttrs(context.Background(), slog.LevelInfo, RequestLineMessage, l.Attrs()...)
}

// RequestLine is the access log's line for one intercepted request: its
// message is RequestLineMessage and its attributes are Attrs, in order.
type RequestLine struct {
	ID, Mode, Client, Dest, SNI, Host, User, Method, Path, Proto string
	Status                                                       int
	BytesIn, BytesOut                                            int64
	Decision, Reason, JA4, ClientApp, ClientWhy                  string
	DurationUS                                                   int64
}

// RequestLineMessage is the message of every request's access-log line.
const RequestLineMessage = "request"

// Attrs are the line's attributes as the access log's slog.Logger gets them.
func (l *RequestLine) Attrs() []slog.Attr {
	return []slog.Attr{
		slog.String("id", l.ID),
		slog.String("mode", l.Mode),
		slog.String("client", l.Client),
		slog.String("dest", l.Dest),
		slog.String("sni", l.SNI),
		slog.String("host", l.Host),
		slog.String("user", l.User),
		slog.String("method", l.Method),
		slog.String("path", l.Path),
		slog.String("proto", l.Proto),
		slog.Int("status", l.Status),
		slog.Int64("bytes_in", l.BytesIn),
		slog.Int64("bytes_out", l.BytesOut),
		slog.String("decision", l.Decision),
		slog.String("reason", l.Reason),
		slog.String("ja4", l.JA4),
		slog.String("client_app", l.ClientApp),
		slog.String("client_why", l.ClientWhy),
		slog.Int64("duration_us", l.DurationUS),
	}
}

// RequestLineHandler is an access-log handler that also takes a request's
// line as it is, without an slog.Record: one line per request makes slog's
// record (the caller's PC, the attributes copied twice) a measurable part
// of the request path. HandleRequestLine must write what Handle writes for
// a record at t, level Info, message RequestLineMessage, with l.Attrs().
type RequestLineHandler interface {
	slog.Handler
	HandleRequestLine(t time.Time, l *RequestLine) error
}

// connAddrText is a connection's addresses as text, made on the first
// request's access-log line rather than on every one.
type connAddrText struct {
	once         sync.Once
	clientS, dst string
}

func (t *connAddrText) make(ci *ConnInfo) {
	t.once.Do(func() { t.clientS, t.dst = ci.Client.String(), ci.Dest.String() })
}

func (t *connAddrText) client(ci *ConnInfo) string { t.make(ci); return t.clientS }
func (t *connAddrText) dest(ci *ConnInfo) string   { t.make(ci); return t.dst }

// logConn writes the access-log line of a connection that was not
// intercepted (bypassed, blocked, or failed before any request).
func (s *Server) logConn(ci *ConnInfo, decision, reason string, up, down int64) {
	s.record(Record{
		Time: time.Now(), Mode: ci.Mode, Client: ci.Client, Dest: ci.Dest, JA4: ci.JA4, SNI: ci.ServerName(),
		Host: ci.ServerName(), Decision: decision, Reason: reason, BytesIn: up, BytesOut: down,
		RequestID: "c" + strconv.FormatUint(ci.ID, 10), ClientKind: ci.ClientKind,
	})
	s.cfg.AccessLog.LogAttrs(context.Background(), slog.LevelInfo, "connection",
		slog.Uint64("conn", ci.ID),
		slog.String("mode", ci.Mode.String()),
		slog.String("client", ci.Client.String()),
		slog.String("dest", ci.Dest.String()),
		slog.String("sni", ci.ServerName()),
		slog.String("decision", decision),
		slog.String("reason", reason),
		slog.Int64("bytes_in", up),
		slog.Int64("bytes_out", down),
		slog.String("ja4", ci.JA4),
		slog.Int64("duration_us", time.Since(ci.Start).Microseconds()),
	)
}

// recordDurable records r and waits until the activity log says it is
// durable, when the recorder's rule holds r (a nil wait: it does not). A
// failure is counted like a refused record.
func (s *Server) recordDurable(r Record) error {
	wait, err := s.durable.RecordDurable(r)
	if err == nil && wait != nil {
		err = wait()
	}
	if err != nil {
		s.Stats.RecordsFailed.Add(1)
		s.cfg.Log.Warn("activity record not durable: response ended short", "err", err, "id", r.RequestID)
	}
	return err
}

// record hands a record to the activity log. A record it refuses is counted;
// the admission check before each session is what stops service in
// audit-strict mode.
func (s *Server) record(r Record) {
	if s.cfg.Recorder == nil {
		return
	}
	if err := s.cfg.Recorder.Record(r); err != nil {
		s.Stats.RecordsFailed.Add(1)
		s.cfg.Log.Warn("activity record refused", "err", err, "id", r.RequestID)
	}
}
