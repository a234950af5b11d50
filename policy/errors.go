package policy

import (
	"errors"
	"fmt"
	"strings"
)

// Sentinel errors. Every problem found while parsing, validating or
// compiling a policy set is an *Error that wraps exactly one of these, so
// callers (the console, `policy check`, reload) can tell a typo from a
// logic problem with errors.Is without matching message text.
var (
	// ErrSyntax: the file is not well-formed YAML.
	ErrSyntax = errors.New("yaml syntax error")
	// ErrUnknownKey: a mapping key the model does not define (strict parsing).
	ErrUnknownKey = errors.New("unknown key")
	// ErrBadValue: a value has the wrong type or is out of range.
	ErrBadValue = errors.New("bad value")
	// ErrMissing: a required key is absent or empty.
	ErrMissing = errors.New("missing value")
	// ErrDuplicate: an id (app, activity, policy, detector, tag) is defined twice.
	ErrDuplicate = errors.New("duplicate id")
	// ErrUnknownRef: a reference to an app, activity, detector, device tag or IP tag that is not defined.
	ErrUnknownRef = errors.New("unknown reference")
	// ErrBadRegex: an admin detector's regular expression does not compile.
	ErrBadRegex = errors.New("bad regular expression")
	// ErrConflict: two policies match exactly the same traffic with different actions.
	ErrConflict = errors.New("conflicting policies")
	// ErrUnreachable: a policy can never match, or never changes any decision.
	ErrUnreachable = errors.New("unreachable policy")
	// ErrUnenforceable: the policy asks for a control the running appliance
	// is not set up to enforce (CompileFor); it is refused, never ignored.
	ErrUnenforceable = errors.New("cannot be enforced by this appliance")
	// ErrNoCondition: a policy applies to every user, device and app. It is
	// a warning (IsWarning): often meant, never silently.
	ErrNoCondition = errors.New("policy has no condition")
)

// Pos is a position in a policy file, 1-based like editors show it.
type Pos struct {
	File string
	Line int
	Col  int
}

func (p Pos) String() string {
	if p.File == "" && p.Line == 0 {
		return "<builtin>"
	}
	return fmt.Sprintf("%s:%d:%d", p.File, p.Line, p.Col)
}

// Error is one problem in a policy set: where, what, and how to fix it.
type Error struct {
	Pos  Pos
	Kind error // one of the sentinel errors above
	Msg  string
	Hint string // one line telling the admin what to change
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.Pos.String())
	b.WriteString(": ")
	b.WriteString(e.Msg)
	if e.Hint != "" {
		b.WriteString(" (fix: ")
		b.WriteString(e.Hint)
		b.WriteString(")")
	}
	return b.String()
}

func (e *Error) Unwrap() error { return e.Kind }

// ErrorList is every problem found in one pass, in file order; reporting
// them all at once saves admins an edit-check loop per typo.
type ErrorList []*Error

func (l ErrorList) Error() string {
	msgs := make([]string, len(l))
	for i, e := range l {
		msgs[i] = e.Error()
	}
	return strings.Join(msgs, "\n")
}

// Unwrap lets errors.Is find any of the contained kinds.
func (l ErrorList) Unwrap() []error {
	errs := make([]error, len(l))
	for i, e := range l {
		errs[i] = e
	}
	return errs
}

// errs collects problems during a pass.
type errs struct{ list ErrorList }

func (c *errs) add(pos Pos, kind error, hint, format string, args ...any) {
	c.list = append(c.list, &Error{Pos: pos, Kind: kind, Msg: fmt.Sprintf(format, args...), Hint: hint})
}

func (c *errs) err() error {
	if len(c.list) == 0 {
		return nil
	}
	return c.list
}
