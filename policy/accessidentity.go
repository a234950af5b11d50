package policy

// BlockRestsOnIdentity reports whether a blocking access decision could be
// lifted once the user is known: every policy that blocked filters on the
// user, the groups or the device tags — what a login and its claims can
// change. A connection decided before the user is known (transparent mode,
// where the login runs inside the intercepted connection) is then decided
// again per request, with the user; a block by a policy that does not look
// at who the user is stands for everyone and needs no login.
func (d *AccessDecision) BlockRestsOnIdentity() bool {
	if d.Action != ActionBlock {
		return false
	}
	for i := range d.Matches {
		m := &d.Matches[i]
		if m.Action != ActionBlock {
			continue
		}
		if m.Policy == nil || !m.Policy.filtersOnIdentity() {
			return false
		}
	}
	return true
}

// filtersOnIdentity: the policy looks at the user, the groups or the
// device tags.
func (p *PolicyInfo) filtersOnIdentity() bool {
	f := p.filters
	return f != nil && (!f.Users.IsZero() || !f.Groups.IsZero() || !f.DeviceTags.IsZero())
}
