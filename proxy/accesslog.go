package proxy

import (
	"context"
	"log/slog"
	"net/http"
	"time"
)

// logRequest writes the access-log line of one intercepted request.
func (s *Server) logRequest(ci *ConnInfo, r *http.Request, st *requestState, rec *recorder, in int64, d time.Duration) {
	s.cfg.AccessLog.LogAttrs(context.Background(), slog.LevelInfo, "request",
		slog.String("id", st.id),
		slog.String("mode", ci.Mode.String()),
		slog.String("client", ci.Client.String()),
		slog.String("dest", ci.Dest.String()),
		slog.String("sni", ci.ServerName()),
		slog.String("host", r.Host),
		slog.String("method", r.Method),
		slog.String("path", r.URL.Path),
		slog.String("proto", r.Proto),
		slog.Int("status", rec.status),
		slog.Int64("bytes_in", in),
		slog.Int64("bytes_out", rec.n),
		slog.String("decision", st.decision),
		slog.String("reason", st.reason),
		slog.String("ja4", ci.JA4),
		slog.Int64("duration_us", d.Microseconds()),
	)
}

// logConn writes the access-log line of a connection that was not
// intercepted (bypassed, blocked, or failed before any request).
func (s *Server) logConn(ci *ConnInfo, decision, reason string, up, down int64) {
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
