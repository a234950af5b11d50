package proxy

import (
	"errors"
	"net/http"
	"strings"

	"github.com/portcullis-gw/portcullis/policy"
	"github.com/portcullis-gw/portcullis/proxy/session"
	"github.com/portcullis-gw/portcullis/proxy/session/control"
)

// The in-page controls (proxy/session/control) in both pipelines: the
// endpoints under /.portcullis/ on every intercepted or suffixed host of a
// covered app, the monitoring notice in front of a navigation, and the
// control script in HTML pages that a print or clipboard policy covers.
// Reports of attempts are decided as activities and recorded like any
// request.

// controlEndpoint serves a request under the proxy's endpoint prefix. It
// reports false when the request is not one of the control endpoints.
func (s *Server) controlEndpoint(w http.ResponseWriter, r *http.Request, ci *ConnInfo, st *requestState) bool {
	if s.control == nil || !strings.HasPrefix(r.URL.Path, suffixEndpointPrefix) {
		return false
	}
	origin := r.Host
	if st.origin != "" {
		origin = st.origin
	}
	engine := s.sessionCovered(origin)
	if engine == nil {
		return false
	}
	st.set("allow", "gateway endpoint")
	return s.control.ServeEndpoint(w, r, func(rep control.Report) {
		subj := s.sessionSubject(ci, r)
		req := policy.SessionRequest{Subject: subj, Method: r.Method, Host: origin, Path: r.URL.Path, Kind: rep.Kind}
		var d policy.SessionDecision
		engine.SessionInto(&req, &d)
		st.control = controlOutcome(&req, &d, rep)
		s.controlDecision(st)
		if alert := s.cfg.Session.Alert; alert != nil && d.Alert {
			alert(ci, r, &req, &d)
		}
	})
}

// controlOutcome is the record of a reported attempt: the page's script
// blocked it (or let it happen under a monitor policy).
func controlOutcome(req *policy.SessionRequest, d *policy.SessionDecision, rep control.Report) *session.Outcome {
	o := &session.Outcome{Decided: true, Activity: req.Kind.String(), Kind: req.Kind, Action: policy.ActionMonitor}
	if d.App != nil {
		o.App = d.App.ID
	}
	for _, m := range d.Matches {
		o.Policies = append(o.Policies, m.Policy.ID)
	}
	if w := d.WinningPolicy(); w != nil {
		o.Winner, o.Cause = w.ID, d.Matches[d.Winner].Cause
	}
	what := "allowed"
	if rep.Blocked {
		o.Action, what = policy.ActionBlock, "blocked"
	}
	o.Reason = req.Kind.String() + " " + what + " in the page"
	if o.Winner != "" {
		o.Reason = "policy " + o.Winner + ": " + o.Reason
	}
	return o
}

// controlDecision puts a report's outcome on the access-log decision.
func (s *Server) controlDecision(st *requestState) {
	o := st.control
	switch {
	case o.Action >= policy.ActionBlock:
		st.set("block", o.Reason)
	default:
		st.set("monitor", o.Reason)
	}
}

// controlNotice sends a top-level navigation to the monitoring notice
// when a monitor policy with notice: true covers it and the user has not
// seen it in this session. It reports whether it answered.
func (s *Server) controlNotice(w http.ResponseWriter, r *http.Request, st *requestState) bool {
	if s.control == nil || st.sess == nil {
		return false
	}
	_, d := st.sess.Decision()
	if d.Notice == nil || d.App == nil {
		return false
	}
	r = shownRequest(r, st)
	if !s.control.NeedsNotice(r, d.App.ID) {
		return false
	}
	msg := d.Notice.Message
	if msg == "" {
		msg = "Your organisation monitors the use of this app."
	}
	st.set("allow", "monitoring notice shown (policy "+d.Notice.ID+")")
	s.control.RedirectToNotice(w, r, d.App.ID, msg)
	return true
}

// shownRequest is r with the host the browser uses: in suffix mode the
// request has been mapped to the origin by now, but the in-page controls'
// cookies and tokens belong to the suffixed host.
func shownRequest(r *http.Request, st *requestState) *http.Request {
	if st.suffixed == "" || r.Host == st.suffixed {
		return r
	}
	shown := *r
	shown.Host = st.suffixed
	return &shown
}

// controlRules are the page's print and clipboard rules for the subject:
// only block_activities policies listing print, cut_copy or paste count,
// so a monitor-everything policy does not put the script in every page.
func controlRules(e *policy.Engine, req policy.SessionRequest) (control.Rules, bool) {
	var rules control.Rules
	var any bool
	for _, k := range [...]policy.ActivityKind{policy.KindPrint, policy.KindCutCopy, policy.KindPaste} {
		req.Kind, req.Activity, req.Body, req.File = k, "", nil, nil
		var d policy.SessionDecision
		e.SessionInto(&req, &d)
		mode := control.Allow
		for _, m := range d.Matches {
			if m.Policy.Control != policy.ControlBlockActivities {
				continue
			}
			if md := control.ModeFor(m.Action); md > mode {
				mode = md
			}
			if rules.Message == "" && m.Action >= policy.ActionBlock {
				rules.Message = m.Policy.Message
			}
		}
		if mode == control.Allow {
			continue
		}
		any = true
		switch k {
		case policy.KindPrint:
			rules.Print = mode
		case policy.KindCutCopy:
			rules.CutCopy = mode
		case policy.KindPaste:
			rules.Paste = mode
		}
	}
	return rules, any
}

// controlInject puts the control script into an HTML response a print or
// clipboard policy covers. host is the one the browser uses. A page the
// script cannot go into (not HTML, an unknown charset or encoding) is
// served without it; when a rule would block, that is refused instead,
// since the policy could not hold.
func (s *Server) controlInject(resp *http.Response, host string) error {
	st := stateOf(resp.Request.Context())
	if s.control == nil || st == nil || st.sess == nil || st.download || resp.Request.Method == http.MethodHead ||
		resp.StatusCode < 200 || resp.StatusCode >= 300 || resp.StatusCode == http.StatusNoContent || resp.Body == nil || resp.Body == http.NoBody {
		return nil
	}
	if mt := strings.ToLower(resp.Header.Get("Content-Type")); !strings.HasPrefix(mt, "text/html") && !strings.HasPrefix(mt, "application/xhtml+xml") {
		return nil
	}
	req, _ := st.sess.Decision()
	rules, ok := controlRules(st.sess.Engine(), req)
	if !ok {
		return nil
	}
	in := st.in
	if in == nil {
		in = resp.Request
	}
	sid := s.control.Session(headerWriter{resp.Header}, shownRequest(in, st))
	body, err := s.control.Inject(resp.Header, resp.Body, host, rules, sid)
	if err != nil {
		if rules.Print == control.Block || rules.CutCopy == control.Block || rules.Paste == control.Block {
			s.enforcer.Stats.FailClosed.Add(1)
			st.set("block", "control script cannot be put in this page: "+err.Error())
			return errControlRefused
		}
		s.enforcer.Stats.FailOpen.Add(1)
		s.cfg.Log.Warn("control script not put in a page; monitor rules only, served without it", "err", err, "id", st.id)
		return nil
	}
	resp.Body = body
	resp.ContentLength = -1
	s.Stats.ControlInjected.Add(1)
	return nil
}

// errControlRefused ends a page whose blocking print or clipboard rule the
// control script could not carry (the ReverseProxy answers 502 and the
// access log names why).
var errControlRefused = errors.New("page refused: the control script cannot be put in it and a policy blocks print or clipboard use")
