package policy

import "fmt"

// Action is what a policy does to matching traffic. The numeric order is the
// precedence: when several policies match, the largest action wins, so the
// most restrictive one always decides (block > require step-up > protect >
// monitor > allow).
type Action uint8

const (
	ActionUnset   Action = iota // no action given; Settings fall back to their defaults
	ActionAllow                 // let it through, log the activity
	ActionMonitor               // let it through, log it as a policy match
	ActionProtect               // let it through after labelling/encrypting the file
	ActionStepUp                // require step-up (re-)authentication first
	ActionBlock                 // refuse, show the custom message
)

var actionNames = [...]string{"", "allow", "monitor", "protect", "require_step_up", "block"}

func (a Action) String() string {
	if int(a) < len(actionNames) {
		if a == ActionUnset {
			return "unset"
		}
		return actionNames[a]
	}
	return fmt.Sprintf("action(%d)", a)
}

// MarshalText writes the YAML spelling.
func (a Action) MarshalText() ([]byte, error) {
	if a == ActionUnset || int(a) >= len(actionNames) {
		return nil, fmt.Errorf("%w: action %d has no name", ErrBadValue, a)
	}
	return []byte(actionNames[a]), nil
}

// UnmarshalText reads the YAML spelling.
func (a *Action) UnmarshalText(b []byte) error {
	for i, n := range actionNames {
		if i > 0 && n == string(b) {
			*a = Action(i)
			return nil
		}
	}
	return enumError("action", string(b), actionNames[1:])
}

// IsZero lets omitempty drop unset actions when serialising.
func (a Action) IsZero() bool { return a == ActionUnset }

// Severity ranks alerts.
type Severity uint8

const (
	SeverityUnset Severity = iota
	SeverityLow
	SeverityMedium
	SeverityHigh
)

var severityNames = [...]string{"", "low", "medium", "high"}

func (s Severity) String() string {
	if s == SeverityUnset {
		return "unset"
	}
	if int(s) < len(severityNames) {
		return severityNames[s]
	}
	return fmt.Sprintf("severity(%d)", s)
}

func (s Severity) MarshalText() ([]byte, error) {
	if s == SeverityUnset || int(s) >= len(severityNames) {
		return nil, fmt.Errorf("%w: severity %d has no name", ErrBadValue, s)
	}
	return []byte(severityNames[s]), nil
}

func (s *Severity) UnmarshalText(b []byte) error {
	for i, n := range severityNames {
		if i > 0 && n == string(b) {
			*s = Severity(i)
			return nil
		}
	}
	return enumError("severity", string(b), severityNames[1:])
}

func (s Severity) IsZero() bool { return s == SeverityUnset }

// Control is what a session policy watches.
type Control uint8

const (
	ControlUnset           Control = iota
	ControlMonitor                 // every request of the app: monitor only
	ControlBlockActivities         // the listed activities (print, cut_copy, paste, catalog activities)
	ControlDownload                // file downloads
	ControlUpload                  // file uploads
)

var controlNames = [...]string{"", "monitor", "block_activities", "download", "upload"}

func (c Control) String() string {
	if c == ControlUnset {
		return "unset"
	}
	if int(c) < len(controlNames) {
		return controlNames[c]
	}
	return fmt.Sprintf("control(%d)", c)
}

func (c Control) MarshalText() ([]byte, error) {
	if c == ControlUnset || int(c) >= len(controlNames) {
		return nil, fmt.Errorf("%w: control %d has no name", ErrBadValue, c)
	}
	return []byte(controlNames[c]), nil
}

func (c *Control) UnmarshalText(b []byte) error {
	for i, n := range controlNames {
		if i > 0 && n == string(b) {
			*c = Control(i)
			return nil
		}
	}
	return enumError("control", string(b), controlNames[1:])
}

func (c Control) IsZero() bool { return c == ControlUnset }

// LabelState filters files on whether they carry a sensitivity label.
type LabelState uint8

const (
	LabelAny     LabelState = iota // no condition
	LabelPresent                   // the file carries some label
	LabelAbsent                    // the file carries no label
)

var labelStateNames = [...]string{"any", "present", "absent"}

func (l LabelState) String() string {
	if int(l) < len(labelStateNames) {
		return labelStateNames[l]
	}
	return fmt.Sprintf("label_state(%d)", l)
}

func (l LabelState) MarshalText() ([]byte, error) {
	if int(l) >= len(labelStateNames) {
		return nil, fmt.Errorf("%w: label state %d has no name", ErrBadValue, l)
	}
	return []byte(labelStateNames[l]), nil
}

func (l *LabelState) UnmarshalText(b []byte) error {
	for i, n := range labelStateNames {
		if n == string(b) {
			*l = LabelState(i)
			return nil
		}
	}
	return enumError("label state", string(b), labelStateNames[:])
}

func (l LabelState) IsZero() bool { return l == LabelAny }

// MatchMode says how a content filter combines its detectors.
type MatchMode uint8

const (
	MatchAny MatchMode = iota // any detector reaching its minimum count
	MatchAll                  // every detector reaching its minimum count
)

var matchModeNames = [...]string{"any", "all"}

func (m MatchMode) String() string {
	if int(m) < len(matchModeNames) {
		return matchModeNames[m]
	}
	return fmt.Sprintf("match(%d)", m)
}

func (m MatchMode) MarshalText() ([]byte, error) {
	if int(m) >= len(matchModeNames) {
		return nil, fmt.Errorf("%w: match mode %d has no name", ErrBadValue, m)
	}
	return []byte(matchModeNames[m]), nil
}

func (m *MatchMode) UnmarshalText(b []byte) error {
	for i, n := range matchModeNames {
		if n == string(b) {
			*m = MatchMode(i)
			return nil
		}
	}
	return enumError("match mode", string(b), matchModeNames[:])
}

func (m MatchMode) IsZero() bool { return m == MatchAny }

// enumError is returned by the UnmarshalText methods; the decoder turns it
// into a positioned *Error whose hint lists the valid spellings.
type enumErr struct {
	what, got string
	valid     []string
}

func (e *enumErr) Error() string {
	return fmt.Sprintf("%q is not a valid %s", e.got, e.what)
}

func enumError(what, got string, valid []string) error {
	return &enumErr{what: what, got: got, valid: valid}
}
