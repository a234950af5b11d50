package policy

// Cause says why a policy is in a decision.
type Cause uint8

const (
	// CauseFilters: every filter of the policy matched.
	CauseFilters Cause = iota
	// CauseContent: the filters matched and so did the content condition.
	CauseContent
	// CauseUnscannable: the content could not be inspected and the policy
	// says to apply its action anyway.
	CauseUnscannable
	// CauseDefault: the content could not be inspected; the settings'
	// default behaviour decided the action.
	CauseDefault
	// CauseMalware: the filters matched and a scanner found malware.
	CauseMalware
)

var causeNames = [...]string{"filters matched", "content matched", "content could not be inspected; policy applies its action anyway", "content could not be inspected; default behaviour applied", "malware found"}

func (c Cause) String() string {
	if int(c) < len(causeNames) {
		return causeNames[c]
	}
	return "unknown"
}

// Match is one policy that matched, with the action it asks for (which
// differs from the policy's own action only for CauseDefault).
type Match struct {
	Policy *PolicyInfo
	Action Action
	Cause  Cause
}

// decision is what access and session decisions share.
type decision struct {
	App      *App
	Action   Action // the winner's action; ActionAllow when nothing matched
	Winner   int    // index into Matches, -1 when nothing matched
	Message  string // for block: what the user is shown
	Severity Severity
	Alert    bool
	Matches  []Match // every matching policy, file order
}

func (d *decision) reset() {
	d.App, d.Action, d.Winner, d.Message, d.Severity, d.Alert = nil, ActionAllow, -1, "", SeverityUnset, false
	d.Matches = d.Matches[:0]
}

// add records a match; the most restrictive action wins, the earliest
// policy among equals, so decisions do not depend on map order or
// evaluation order beyond the files' own.
func (d *decision) add(p *PolicyInfo, a Action, cause Cause) {
	d.Matches = append(d.Matches, Match{Policy: p, Action: a, Cause: cause})
	if d.Winner < 0 || a > d.Matches[d.Winner].Action {
		d.Winner = len(d.Matches) - 1
		d.Action = a
	}
	if p.Severity > d.Severity {
		d.Severity = p.Severity
	}
	d.Alert = d.Alert || p.Alert
}

// pend notes an action a policy waiting for inspection could still take.
func (d *SessionDecision) pend(a Action) {
	if a > d.Pending {
		d.Pending = a
	}
}

// WinningPolicy is the policy that decided, or nil.
func (d *decision) WinningPolicy() *PolicyInfo {
	if d.Winner < 0 || d.Winner >= len(d.Matches) {
		return nil
	}
	return d.Matches[d.Winner].Policy
}

// AccessDecision is the answer for a connection.
type AccessDecision struct {
	decision
	// Intercept: terminate TLS and apply session policies. False for hosts
	// outside the catalog and for native clients no policy targets
	// explicitly (they are tunnelled untouched).
	Intercept bool
}

// Reset empties d for reuse, keeping its Matches capacity.
func (d *AccessDecision) Reset() { d.decision.reset(); d.Intercept = false }

// SessionDecision is the answer for a request or activity.
type SessionDecision struct {
	decision
	Activity string // catalog activity id or built-in kind name ("" for plain requests)
	// Def is the catalog activity the request was resolved to, nil when
	// none: its Content fields are what to inspect, its FileKind marks a
	// download or upload endpoint.
	Def *Activity
	// NeedInspection: some policy matched on everything but content, and the
	// request carried no inspection result. Inspect the body with
	// Engine.NewInspector and ask again with the result.
	NeedInspection bool
	// NeedScan: some policy with malware: true matched on everything but
	// the scan. Scan the file and ask again with Malware set.
	NeedScan bool
	// Pending is the most restrictive action a policy waiting for
	// inspection or a scan could still take (ActionUnset when none waits).
	// At most ActionMonitor, the body may stream while it is inspected;
	// anything stronger must be held back until the second decision.
	Pending Action
	// Notice is the first monitor policy with notice: true that matched:
	// the user is shown its message once per session.
	Notice *PolicyInfo
	// Protect is the winner's protect settings when Action is ActionProtect.
	Protect *Protect
	// ReplaceFile: a blocked download is replaced by a text file carrying
	// Message, so the user learns why instead of a broken download.
	ReplaceFile bool
}

// Reset empties d for reuse, keeping its Matches capacity.
func (d *SessionDecision) Reset() {
	d.decision.reset()
	d.Activity, d.Def, d.NeedInspection, d.NeedScan, d.Pending, d.Notice, d.Protect, d.ReplaceFile = "", nil, false, false, ActionUnset, nil, nil, false
}
