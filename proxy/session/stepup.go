package session

import "github.com/portcullis-gw/portcullis/policy"

// StepUp is where a request stands with step-up authentication; the proxy
// sets it on the Request before OnRequest.
type StepUp uint8

const (
	// StepUpUnavailable: nothing can run a step-up (policies asking for
	// it are refused at load; one that gets here anyway blocks).
	StepUpUnavailable StepUp = iota
	// StepUpNeeded: the proxy can send the user to step up and this
	// session has not. A step-up decision stops the action (OnRequest or
	// OnResponse report it blocked) with Outcome.Action ActionStepUp, and
	// the proxy answers it with the step-up flow instead of a block page.
	StepUpNeeded
	// StepUpDone: the session stepped up within its lifetime. Step-up
	// policies are satisfied: the strongest of the other matches decides.
	StepUpDone
)

// satisfyStepUp makes a step-up decision of a stepped-up session the
// decision of the other policies that matched. With none stronger than
// allow, the step-up policy stays the winner with action allow, so the
// record names it.
func (f *flow) satisfyStepUp() {
	d := &f.d
	if f.q.StepUp != StepUpDone || d.Action != policy.ActionStepUp {
		return
	}
	stepUp := d.Winner
	d.Action, d.Winner, d.Message, d.Protect = policy.ActionAllow, stepUp, "", nil
	best := policy.ActionAllow
	for i, m := range d.Matches {
		if m.Action != policy.ActionStepUp && m.Action > best {
			best, d.Winner = m.Action, i
		}
	}
	d.Action = best
	if w := d.WinningPolicy(); w != nil && d.Winner != stepUp {
		d.Message = w.Message
		if best == policy.ActionProtect {
			p := w.Protect
			d.Protect = &p
		}
	}
}

// stepUpOutcome is a step-up decision's outcome: the step-up to run, or a
// block where none can be.
func (f *flow) stepUpOutcome(o *Outcome) {
	if f.q.StepUp == StepUpUnavailable {
		o.Action, o.Reason = policy.ActionBlock, o.Reason+"; step-up is not available, blocked"
		return
	}
	o.Reason += "; step-up required"
}

// stepUpNote names a satisfied step-up in the record's reason.
func (f *flow) stepUpNote(o *Outcome) {
	if f.q.StepUp != StepUpDone {
		return
	}
	for _, m := range f.d.Matches {
		if m.Policy != nil && m.Policy.Action == policy.ActionStepUp {
			o.Reason = stringsJoin(o.Reason, "step-up done (policy "+m.Policy.ID+")")
			return
		}
	}
}

func stringsJoin(a, b string) string {
	if a == "" {
		return b
	}
	return a + "; " + b
}
