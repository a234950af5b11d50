package policy

import (
	"fmt"
	"io"
	"strings"
)

// ExplainAccess writes a human-readable account of an access decision:
// the outcome, then every matching policy with the conditions that made it
// match. Not for the hot path (it allocates freely).
func (e *Engine) ExplainAccess(w io.Writer, req *AccessRequest, d *AccessDecision) {
	fmt.Fprintf(w, "access decision: %s\n", decisionLine(&d.decision))
	e.explainSubject(w, req.Host, d.App, &req.Subject)
	if d.App != nil {
		fmt.Fprintf(w, "intercept: %v\n", d.Intercept)
		if !d.Intercept {
			fmt.Fprintln(w, "  (native client and no matching policy names mobile_desktop: the connection is tunnelled untouched)")
		}
	} else {
		fmt.Fprintln(w, "  (host is not in the app catalog: the connection is not intercepted)")
	}
	e.explainMatches(w, &d.decision, func(m *Match) []string { return e.why(m.Policy, d.App, &req.Subject) })
}

// ExplainSession writes the account of a session decision.
func (e *Engine) ExplainSession(w io.Writer, req *SessionRequest, d *SessionDecision) {
	fmt.Fprintf(w, "session decision: %s\n", decisionLine(&d.decision))
	e.explainSubject(w, req.Host, d.App, &req.Subject)
	act := d.Activity
	if act == "" {
		act = "(none)"
	}
	fmt.Fprintf(w, "request: %s %s, kind %s, activity %s\n", req.Method, req.Path, req.Kind, act)
	if req.File != nil {
		fmt.Fprintf(w, "file: %s\n", fileLine(req.File))
	}
	fmt.Fprintf(w, "content: %s\n", req.Inspection)
	if req.Inspection == InspectionDone && req.Content != nil {
		writeContent(w, req.Content)
	}
	if req.Malware != MalwareNotScanned {
		fmt.Fprintf(w, "malware scan: %s\n", req.Malware)
	}
	if d.NeedInspection {
		fmt.Fprintln(w, "needs inspection: a policy depends on the content or the file's label; inspect the body and evaluate again")
	}
	if d.NeedScan {
		fmt.Fprintln(w, "needs a malware scan: a policy depends on it; scan the file and evaluate again")
	}
	if d.Pending != ActionUnset {
		fmt.Fprintf(w, "pending: a waiting policy could still %s\n", d.Pending)
	}
	if d.Notice != nil {
		fmt.Fprintf(w, "monitoring notice: policy %q\n", d.Notice.ID)
	}
	if d.Protect != nil {
		fmt.Fprintf(w, "protect: label %q, encrypt %v\n", d.Protect.Label, d.Protect.Encrypt)
	}
	if d.ReplaceFile {
		fmt.Fprintln(w, "the download is replaced by a text file carrying the message")
	}
	e.explainMatches(w, &d.decision, func(m *Match) []string {
		r := e.why(m.Policy, d.App, &req.Subject)
		return append(r, e.whySession(m, req, d)...)
	})
}

func decisionLine(d *decision) string {
	s := d.Action.String()
	if w := d.WinningPolicy(); w != nil {
		s += fmt.Sprintf(" (policy %q at %s)", w.ID, w.At)
	} else {
		s += " (no policy matched: default)"
	}
	if d.Message != "" {
		s += fmt.Sprintf("\nmessage: %q", d.Message)
	}
	if d.Severity != SeverityUnset {
		s += fmt.Sprintf("\nseverity: %s", d.Severity)
	}
	if d.Alert {
		s += "\nalert: yes"
	}
	return s
}

func (e *Engine) explainSubject(w io.Writer, host string, app *App, s *Subject) {
	if app != nil {
		fmt.Fprintf(w, "app: %s (%s) for host %s\n", app.ID, app.Name, host)
	} else {
		fmt.Fprintf(w, "app: none for host %s\n", host)
	}
	fmt.Fprintf(w, "user: %q, groups %s, device tags %s\n", s.User, list(s.Groups), list(s.DeviceTags))
	ip := "unknown"
	if s.SourceIP.IsValid() {
		ip = s.SourceIP.String()
	}
	fmt.Fprintf(w, "client: %s, user-agent tags %s, source %s\n", s.ClientApp, list(s.UATags), ip)
}

func (e *Engine) explainMatches(w io.Writer, d *decision, why func(*Match) []string) {
	fmt.Fprintf(w, "matching policies: %d\n", len(d.Matches))
	for i := range d.Matches {
		m := &d.Matches[i]
		mark := " "
		if i == d.Winner {
			mark = "*"
		}
		kind := "access"
		if m.Policy.Session {
			kind = "session/" + m.Policy.Control.String()
		}
		fmt.Fprintf(w, "%s %s %q -> %s [%s] at %s\n", mark, kind, m.Policy.ID, m.Action, m.Cause, m.Policy.At)
		for _, r := range why(m) {
			fmt.Fprintf(w, "    - %s\n", r)
		}
	}
}

func list(v []string) string {
	if len(v) == 0 {
		return "[]"
	}
	return "[" + strings.Join(v, ", ") + "]"
}

// why lists the filter conditions of p as they apply to the subject.
func (e *Engine) why(p *PolicyInfo, app *App, s *Subject) []string {
	f := p.filters
	var out []string
	if app != nil {
		out = append(out, "app "+nameWhy(f.Apps, app.ID, "all apps"))
	}
	if !f.Users.IsZero() {
		out = append(out, fmt.Sprintf("user %q %s", s.User, nameWhy(f.Users, "", "")))
	}
	if !f.Groups.IsZero() {
		out = append(out, "groups "+list(s.Groups)+" "+manyWhy(f.Groups))
	}
	if !f.DeviceTags.IsZero() {
		out = append(out, "device tags "+list(s.DeviceTags)+" "+manyWhy(f.DeviceTags))
	}
	if f.ClientApps.IsZero() {
		out = append(out, fmt.Sprintf("client %s (no client_apps filter: browsers only)", s.ClientApp))
	} else {
		out = append(out, fmt.Sprintf("client %s %s", s.ClientApp, nameWhy(f.ClientApps, "", "")))
	}
	if !f.UserAgentTags.IsZero() {
		out = append(out, "user-agent tags "+list(s.UATags)+" "+manyWhy(f.UserAgentTags))
	}
	if !f.IPRanges.IsZero() {
		out = append(out, fmt.Sprintf("source %s %s", s.SourceIP, nameWhy(f.IPRanges, "", "")))
	}
	if !f.IPTags.IsZero() {
		out = append(out, fmt.Sprintf("source %s %s", s.SourceIP, rangesWhy(f.IPTags)))
	}
	return out
}

func nameWhy(n Names, v, all string) string {
	if n.IsZero() {
		return v + " (" + all + ")"
	}
	var parts []string
	if len(n.AnyOf) > 0 {
		parts = append(parts, "is one of "+list(n.AnyOf))
	}
	if len(n.NoneOf) > 0 {
		parts = append(parts, "is none of "+list(n.NoneOf))
	}
	if v != "" {
		return v + " " + strings.Join(parts, " and ")
	}
	return strings.Join(parts, " and ")
}

func manyWhy(n Names) string {
	var parts []string
	if len(n.AnyOf) > 0 {
		parts = append(parts, "include one of "+list(n.AnyOf))
	}
	if len(n.NoneOf) > 0 {
		parts = append(parts, "include none of "+list(n.NoneOf))
	}
	return strings.Join(parts, " and ")
}

func rangesWhy(n Names) string {
	var parts []string
	if len(n.AnyOf) > 0 {
		parts = append(parts, "is in ip tag "+list(n.AnyOf))
	}
	if len(n.NoneOf) > 0 {
		parts = append(parts, "is in none of ip tags "+list(n.NoneOf))
	}
	return strings.Join(parts, " and ")
}

func (e *Engine) whySession(m *Match, req *SessionRequest, d *SessionDecision) []string {
	p := m.Policy
	var out []string
	switch p.Control {
	case ControlMonitor:
		out = append(out, "every request of the app is monitored")
	case ControlBlockActivities:
		out = append(out, fmt.Sprintf("activity %s is one of %s", d.Activity, list(p.activities.AnyOf)))
	case ControlDownload:
		out = append(out, "the request is a file download")
	case ControlUpload:
		out = append(out, "the request is a file upload")
	}
	if !p.files.IsZero() && req.File != nil {
		out = append(out, "file "+fileLine(req.File)+" passes the file filter")
	}
	if p.Malware {
		switch m.Cause {
		case CauseMalware:
			out = append(out, "malware scan: infected")
		case CauseUnscannable:
			out = append(out, fmt.Sprintf("malware scan: %s; apply_if_unscannable is set", req.Malware))
		case CauseDefault:
			out = append(out, fmt.Sprintf("malware scan: %s; the default behaviour for that is %s", req.Malware, m.Action))
		}
	}
	if !p.content.IsZero() {
		switch m.Cause {
		case CauseContent:
			for _, ref := range p.content.Detectors {
				n := req.Content.CountID(ref.ID)
				line := fmt.Sprintf("content: %s found %d time(s), minimum %d", ref.ID, n, max(ref.MinCount, 1))
				if idx := req.Content.Set().Index(ref.ID); idx >= 0 {
					var ex []string
					for _, s := range req.Content.Samples(idx) {
						ex = append(ex, fmt.Sprintf("%s at byte %d", s.Masked, s.Offset))
					}
					if len(ex) > 0 {
						line += " (e.g. " + strings.Join(ex, "; ") + ")"
					}
				}
				out = append(out, line)
			}
			if p.content.Match == MatchAll {
				out = append(out, "content: all detectors had to match")
			}
		case CauseUnscannable:
			out = append(out, fmt.Sprintf("content: %s; apply_if_unscannable is set", req.Inspection))
		case CauseDefault:
			out = append(out, fmt.Sprintf("content: %s; the default behaviour for that is %s", req.Inspection, m.Action))
		}
	}
	return out
}

func fileLine(f *FileInfo) string {
	label := "none"
	if f.Label != "" {
		label = fmt.Sprintf("%q", f.Label)
	}
	size := "unknown size"
	if f.Size >= 0 {
		size = fmt.Sprintf("%d bytes", f.Size)
	}
	return fmt.Sprintf("%q (ext %q, mime %q, %s, label %s)", f.Name, fileExt(f), f.MIME, size, label)
}

func writeContent(w io.Writer, r *ContentResult) {
	s := r.Set()
	if s == nil {
		return
	}
	for i := 0; i < s.Len(); i++ {
		if n := r.Count(i); n > 0 {
			fmt.Fprintf(w, "  %s: %d\n", s.ID(i), n)
		}
	}
}
