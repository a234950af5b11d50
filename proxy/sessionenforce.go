package proxy

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"time"

	"github.com/portcullis-gw/portcullis/policy"
	"github.com/portcullis-gw/portcullis/proxy/session"
	"github.com/portcullis-gw/portcullis/proxy/session/control"
)

// SessionConfig turns on session-policy enforcement in both the
// transparent and the suffix pipeline: downloads, uploads, body fields,
// inspection, scanning, protect, block pages and replaced files.
type SessionConfig struct {
	// Engine returns the policy engine in force; the appliance swaps it
	// atomically on reload. A request uses the engine it started with. nil
	// (or a nil engine) enforces nothing.
	Engine func() *policy.Engine
	// Subject says who is asking; nil gives the client address, a browser,
	// and the suffix session's user.
	Subject func(ci *ConnInfo, r *http.Request) policy.Subject
	// Scanner scans files for policies with malware: true.
	Scanner session.Scanner
	// Protector carries out protect.
	Protector session.Protector
	// SpoolDir holds bodies held past the memory threshold (files 0600,
	// unlinked at creation); default os.TempDir().
	SpoolDir string
	// MemorySpool is how much of a held body stays in memory
	// (session.DefaultMemorySpool).
	MemorySpool int64
	// MaxFieldBody bounds bodies read for body fields (session.DefaultMaxFieldBody).
	MaxFieldBody int64
	// InspectionTimeout bounds inspection after a body is complete;
	// ScanTimeout bounds waiting for the scanner after the last byte.
	InspectionTimeout time.Duration
	ScanTimeout       time.Duration
	// Alert receives every final decision with d.Alert set (once per
	// request, at its end).
	Alert func(ci *ConnInfo, r *http.Request, req *policy.SessionRequest, d *policy.SessionDecision)
	// Log receives enforcement messages (fail-opens, protect failures).
	Log *slog.Logger
	// ControlKey (32 bytes or more, shared by a fleet) turns on the in-page
	// controls: the print/clipboard control script, its report endpoint
	// and the monitoring notice (proxy/session/control). nil: off, and the
	// appliance refuses policies that need them.
	ControlKey []byte
}

func (s *Server) initSession() error {
	sc := s.cfg.Session
	log := sc.Log
	if log == nil {
		log = s.cfg.Log
	}
	e, err := session.New(session.Config{
		Scanner: sc.Scanner, Protector: sc.Protector, SpoolDir: sc.SpoolDir, MemorySpool: sc.MemorySpool,
		MaxFieldBody: sc.MaxFieldBody, InspectionTimeout: sc.InspectionTimeout, ScanTimeout: sc.ScanTimeout, Log: log,
	})
	if err != nil {
		return err
	}
	s.enforcer = e
	if len(sc.ControlKey) > 0 {
		c, err := control.New(control.Config{Key: sc.ControlKey, Endpoint: suffixEndpointPrefix})
		if err != nil {
			return err
		}
		s.control = c
	}
	return nil
}

// SessionStats are the enforcement counters (nil without SessionConfig).
func (s *Server) SessionStats() *session.Stats {
	if s.enforcer == nil {
		return nil
	}
	return &s.enforcer.Stats
}

// sessionCovered is the whole cost of session enforcement for a request no
// session policy covers: an atomic load and a host lookup.
func (s *Server) sessionCovered(host string) *policy.Engine {
	if s.enforcer == nil {
		return nil
	}
	e := s.cfg.Session.Engine()
	if e == nil || !e.Covers(host) {
		return nil
	}
	return e
}

func (s *Server) sessionSubject(ci *ConnInfo, r *http.Request) policy.Subject {
	if f := s.cfg.Session.Subject; f != nil {
		return f(ci, r)
	}
	subj := policy.Subject{SourceIP: ci.Client.Addr(), ClientApp: policy.ClientBrowser}
	if id, ok := RequestUser(r.Context()); ok {
		subj.User, subj.Groups = id.User, id.Groups
	}
	return subj
}

// sessionRequest decides r before it goes upstream. It answers the client
// itself (block page, 400) and returns false when the request stops here.
// r.Host is the origin's host (suffix mode maps it back first); shownHost
// is the one the user sees.
func (s *Server) sessionRequest(w http.ResponseWriter, r *http.Request, ci *ConnInfo, st *requestState, shownHost string) bool {
	engine := s.sessionCovered(r.Host)
	if engine == nil {
		return true
	}
	q := s.enforcer.Begin(r.Context(), engine, s.sessionSubject(ci, r), r)
	q.Ref, q.Host = st.id, shownHost
	q.StepUp = s.stepUpState(ci, st)
	if alert := s.cfg.Session.Alert; alert != nil {
		q.OnFinal = func(req *policy.SessionRequest, d *policy.SessionDecision) { alert(ci, r, req, d) }
	}
	st.sess = q
	blocked, err := q.OnRequest(r)
	if err != nil {
		st.set("error", "client body: "+err.Error())
		s.cfg.Log.Debug("malformed request body", "err", err, "id", st.id)
		http.Error(w, "malformed request body", http.StatusBadRequest)
		return false
	}
	s.noteSession(st)
	if blocked {
		s.Stats.RequestsBlocked.Add(1)
		if s.stepUpRequired(w, r, st) {
			return false
		}
		session.WriteBlock(w, r, http.StatusForbidden, q.Block())
		return false
	}
	return true
}

// noteSession puts the session outcome on the access-log decision.
func (s *Server) noteSession(st *requestState) {
	o := st.sess.Outcome()
	if !o.Decided || o.Winner == "" && o.Action <= policy.ActionAllow {
		return
	}
	reason := o.Reason
	if o.InspectionReason != "" {
		reason += " (" + o.InspectionReason + ")"
	}
	switch {
	case o.Action >= policy.ActionStepUp: // a step-up stops the action until it is done
		st.set("block", reason)
	case o.Action == policy.ActionProtect:
		st.set("protect", reason)
	case o.Action == policy.ActionMonitor:
		st.set("monitor", reason)
	default:
		st.set("allow", reason)
	}
}

// sessionResponse decides a response (downloads) before anything of it
// is written. It reports whether the response is a download, whose bytes
// the suffix proxy does not rewrite.
func (s *Server) sessionResponse(resp *http.Response) (bool, error) {
	st := stateOf(resp.Request.Context())
	if st == nil || st.sess == nil {
		return false, nil
	}
	dl, err := st.sess.OnResponse(resp)
	if dl {
		st.download = true
		s.noteSession(st)
		s.stepUpResponse(resp, st)
	}
	return dl, err
}

// sessionModifyResponse is the transparent proxy's ModifyResponse.
func (s *Server) sessionModifyResponse(resp *http.Response) error {
	if _, err := s.sessionResponse(resp); err != nil {
		return err
	}
	return s.controlInject(resp, resp.Request.Host)
}

// sessionUpstreamError answers a round trip that failed because the
// client's body broke (a tee'd upload shorter than announced): the
// client's error, not the origin's.
func (s *Server) sessionUpstreamError(w http.ResponseWriter, st *requestState) bool {
	if st == nil || st.sess == nil {
		return false
	}
	err := st.sess.ClientError()
	if err == nil || !errors.Is(err, session.ErrMalformed) {
		return false
	}
	st.set("error", "client body: "+err.Error())
	http.Error(w, "malformed request body", http.StatusBadRequest)
	return true
}

// sessionRecord adds the session outcome to a record. A body inspected
// as it streamed is decided at its last byte, so the decision is taken
// again from the outcome here.
func (s *Server) sessionRecord(rc *Record, st *requestState) {
	if st.control != nil {
		o := st.control
		rc.App, rc.Activity, rc.Action, rc.Policies, rc.Policy = o.App, o.Activity, o.Action, o.Policies, o.Winner
		return
	}
	if st.sess == nil {
		return
	}
	s.noteSession(st)
	rc.Decision, rc.Reason = st.decision, st.reason
	o := st.sess.Outcome()
	if !o.Decided {
		return
	}
	rc.App, rc.Activity, rc.Action, rc.Policies = o.App, o.Activity, o.Action, o.Policies
	rc.File, rc.FileParts, rc.Detectors = o.File, o.FileParts, o.Detectors
	rc.Inspection, rc.InspectionReason = o.Inspection, o.InspectionReason
	rc.Malware, rc.MalwareSignature = o.Malware, o.Signature
	rc.Policy = o.Winner
}

// SessionOf is the session enforcement of the request ctx belongs to, nil
// when no session policy covers it. It is the hook where HTML responses are
// produced (ModifyResponse of either pipeline, after sessionResponse):
// Decision().Notice is the monitoring-notice policy, and Engine() answers
// whether print, cut_copy and paste are controlled for the subject.
func SessionOf(ctx context.Context) *session.Request {
	if st := stateOf(ctx); st != nil {
		return st.sess
	}
	return nil
}
