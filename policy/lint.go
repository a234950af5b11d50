package policy

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
)

// lintDuplicates finds policies that match exactly the same traffic: with
// different actions they conflict (the more restrictive one always wins,
// so the other is dead and the admin probably meant something else); with
// the same action one of them is redundant.
func (c *compiler) lintDuplicates(set *PolicySet) {
	type first struct {
		id     string
		action Action
		at     Pos
	}
	seen := map[string]first{}
	check := func(sig, id string, action Action, at Pos, disabled bool) {
		if disabled {
			return
		}
		if f, ok := seen[sig]; ok {
			if f.action != action {
				c.lint.add(at, ErrConflict, fmt.Sprintf("narrow the filters of one of them, or delete one (%s always wins)", max(f.action, action)),
					"policy %q matches exactly the same traffic as %q (%s) but says %s", id, f.id, f.at, action)
			} else {
				c.lint.add(at, ErrUnreachable, "delete one of the two", "policy %q duplicates %q (%s)", id, f.id, f.at)
			}
			return
		}
		seen[sig] = first{id, action, at}
	}
	for _, p := range set.AccessPolicies {
		check("access|"+filtersSig(&p.Filters), p.ID, p.Action, p.At, p.Disabled)
	}
	for _, p := range set.SessionPolicies {
		var b strings.Builder
		b.WriteString("session|")
		b.WriteString(filtersSig(&p.Filters))
		fmt.Fprintf(&b, "|%s|%s|", p.Control, namesSig(p.Activities))
		f := &p.Files
		fmt.Fprintf(&b, "%s|%s|%s|%d|%d|%s|%s|", namesSig(f.Names), namesSig(f.Extensions), namesSig(f.MIMETypes),
			f.MinSize, f.MaxSize, f.Label, namesSig(f.Labels))
		refs := make([]string, len(p.Content.Detectors))
		for i, d := range p.Content.Detectors {
			refs[i] = fmt.Sprintf("%s>=%d", d.ID, max(d.MinCount, 1))
		}
		slices.Sort(refs)
		fmt.Fprintf(&b, "%s|%s|%v", strings.Join(refs, ","), p.Content.Match, p.ApplyIfUnscannable)
		check(b.String(), p.ID, p.Action, p.At, p.Disabled)
	}
}

func filtersSig(f *Filters) string {
	clients := f.ClientApps
	if clients.IsZero() {
		clients = Names{AnyOf: []string{"browser"}}
	}
	return strings.Join([]string{namesSig(f.Apps), namesSig(f.Users), namesSig(f.Groups), namesSig(f.DeviceTags),
		namesSig(clients), namesSig(f.UserAgentTags), namesSig(f.IPRanges), namesSig(f.IPTags)}, ";")
}

func namesSig(n Names) string {
	norm := func(l []string) string {
		c := make([]string, len(l))
		for i, s := range l {
			c[i] = strings.ToLower(strings.TrimSpace(s))
		}
		slices.Sort(c)
		return strings.Join(slices.Compact(c), ",")
	}
	return norm(n.AnyOf) + "!" + norm(n.NoneOf)
}

// IsWarning reports a finding that does not make a set wrong, only worth a
// second look (a policy without any condition). Check returns warnings with
// the errors; `policy check` and the console show them and apply anyway.
func IsWarning(e *Error) bool { return errors.Is(e.Kind, ErrNoCondition) }

// lintSet runs the logic checks that look at the set as a whole, after
// every policy compiled.
func (c *compiler) lintSet(set *PolicySet) {
	c.lintDuplicates(set)
	c.lintShadowed(set)
	c.lintNoCondition(set)
}

// lintNoCondition flags policies that apply to everyone everywhere: an
// access policy without filters, a monitor session policy without filters.
// (A download or upload policy without filters still has its condition:
// the request is a transfer; block_activities names its activities.)
func (c *compiler) lintNoCondition(set *PolicySet) {
	for _, p := range set.AccessPolicies {
		if !p.Disabled && p.Filters.IsZero() {
			c.lint.add(p.At, ErrNoCondition, "add filters (apps, users, groups, ip_tags...) unless it is meant for every connection",
				"access policy %q has no condition: it %ss every browser connection to every app", p.ID, p.Action)
		}
	}
	for _, p := range set.SessionPolicies {
		if !p.Disabled && p.Control == ControlMonitor && p.Filters.IsZero() {
			c.lint.add(p.At, ErrNoCondition, "add filters (apps, users, groups...) unless it is meant for every request",
				"session policy %q has no condition: it monitors every browser request to every app", p.ID)
		}
	}
}

// lintShadowed flags a policy that never decides anything: another enabled
// policy with the terminal action (block) matches everything it matches,
// and since the most restrictive action wins (the earliest among equals),
// that one always decides instead. A shadowed policy that still adds an
// alert or a higher severity to the decision is left alone: it does
// something. Exact duplicates are lintDuplicates' finding, not repeated.
func (c *compiler) lintShadowed(set *PolicySet) {
	type entry struct {
		id     string
		action Action
		at     Pos
		f      *Filters
		sev    Severity
		alert  bool
		// session policies
		session bool
		sig     string // control, files, content, malware: must be equal
		control Control
		acts    []string
	}
	var list []entry
	for i := range set.AccessPolicies {
		p := &set.AccessPolicies[i]
		if !p.Disabled {
			list = append(list, entry{id: p.ID, action: p.Action, at: p.At, f: &p.Filters, sev: p.Severity, alert: p.Alert})
		}
	}
	for i := range set.SessionPolicies {
		p := &set.SessionPolicies[i]
		if p.Disabled {
			continue
		}
		fl := &p.Files
		refs := make([]string, len(p.Content.Detectors))
		for k, d := range p.Content.Detectors {
			refs[k] = fmt.Sprintf("%s>=%d", d.ID, max(d.MinCount, 1))
		}
		slices.Sort(refs)
		sig := fmt.Sprintf("%s|%s|%s|%d|%d|%s|%s|%s|%s|%v|%v", p.Control, namesSig(fl.Names), namesSig(fl.Extensions), fl.MinSize, fl.MaxSize,
			fl.Label, namesSig(fl.Labels), namesSig(fl.MIMETypes), strings.Join(refs, ","), p.Content.Match, p.Malware)
		var acts []string
		for _, a := range p.Activities.AnyOf {
			acts = append(acts, strings.ToLower(a))
		}
		list = append(list, entry{id: p.ID, action: p.Action, at: p.At, f: &p.Filters, sev: p.Severity, alert: p.Alert,
			session: true, sig: sig, control: p.Control, acts: acts})
	}
	for qi, q := range list {
		for pi, p := range list {
			if pi == qi || p.session != q.session || p.action != ActionBlock {
				continue
			}
			if q.action == ActionBlock && pi > qi {
				continue // among equals the earlier decides
			}
			if q.alert && !p.alert || q.sev > p.sev {
				continue
			}
			if q.session {
				if p.sig != q.sig {
					continue
				}
				if q.control == ControlBlockActivities && !subsetFold(q.acts, p.acts) {
					continue
				}
			}
			if !c.filtersCover(p.f, q.f) {
				continue
			}
			if c.filtersCover(q.f, p.f) && (!q.session || q.control != ControlBlockActivities || subsetFold(p.acts, q.acts)) {
				continue // the same traffic: lintDuplicates reports it
			}
			c.lint.add(q.at, ErrUnreachable, fmt.Sprintf("narrow or delete %q, or move this policy's conditions out of it", p.id),
				"policy %q never decides: %q (%s) matches everything it matches and blocks", q.id, p.id, p.at)
			break
		}
	}
}

// filtersCover reports whether every subject and app that q's filters match
// is matched by p's as well. It errs on the side of "no": a finding must
// be certain, a missed one only costs a hint.
func (c *compiler) filtersCover(p, q *Filters) bool {
	pApps, qApps := c.policyApps(p), c.policyApps(q)
	for a := range qApps {
		if !pApps[a] {
			return false
		}
	}
	if clientBits(&q.ClientApps)&^clientBits(&p.ClientApps) != 0 {
		return false
	}
	for _, pair := range [][2]*Names{{&p.Users, &q.Users}, {&p.Groups, &q.Groups}, {&p.DeviceTags, &q.DeviceTags},
		{&p.UserAgentTags, &q.UserAgentTags}, {&p.IPTags, &q.IPTags}} {
		if !namesCover(pair[0], pair[1]) {
			return false
		}
	}
	return rangesCover(&p.IPRanges, &q.IPRanges)
}

// clientBits is the client kinds a client_apps filter lets through
// (unset: browsers only).
func clientBits(n *Names) uint8 {
	if n.IsZero() {
		return clientBrowserBit
	}
	bits := clientBrowserBit | clientNativeBit
	if len(n.AnyOf) > 0 {
		bits = 0
		for _, v := range n.AnyOf {
			bits |= clientBit(v)
		}
	}
	for _, v := range n.NoneOf {
		bits &^= clientBit(v)
	}
	return bits
}

// namesCover: whatever q lets through, p does. Sound for multi-valued
// attributes (groups, tags) too: p's none_of must be within q's, or a
// value set q allows could carry one that p refuses.
func namesCover(p, q *Names) bool {
	if len(p.AnyOf) > 0 {
		if len(q.AnyOf) == 0 {
			return false
		}
		for _, v := range q.AnyOf {
			if !containsFold(q.NoneOf, v) && !containsFold(p.AnyOf, v) {
				return false
			}
		}
	}
	return subsetFold(p.NoneOf, q.NoneOf)
}

// rangesCover is namesCover for address ranges, by prefix containment.
func rangesCover(p, q *Names) bool {
	parse := func(l []string) ([]netip.Prefix, bool) {
		out := make([]netip.Prefix, 0, len(l))
		for _, s := range l {
			if pf, err := netip.ParsePrefix(s); err == nil {
				out = append(out, pf.Masked())
			} else if a, err := netip.ParseAddr(s); err == nil {
				out = append(out, netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()))
			} else {
				return nil, false
			}
		}
		return out, true
	}
	pa, ok1 := parse(p.AnyOf)
	pn, ok2 := parse(p.NoneOf)
	qa, ok3 := parse(q.AnyOf)
	qn, ok4 := parse(q.NoneOf)
	if !ok1 || !ok2 || !ok3 || !ok4 {
		return false
	}
	within := func(x netip.Prefix, in []netip.Prefix) bool {
		for _, y := range in {
			if y.Bits() <= x.Bits() && y.Contains(x.Addr()) {
				return true
			}
		}
		return false
	}
	if len(pa) > 0 {
		if len(qa) == 0 {
			return false
		}
		for _, x := range qa {
			if !within(x, pa) {
				return false
			}
		}
	}
	// Every range p excludes must be excluded by q as well.
	for _, x := range pn {
		if !within(x, qn) {
			return false
		}
	}
	return true
}

func containsFold(l []string, v string) bool {
	return slices.ContainsFunc(l, func(x string) bool { return strings.EqualFold(x, v) })
}

// subsetFold: every entry of a is in b (ASCII case-insensitively).
func subsetFold(a, b []string) bool {
	for _, v := range a {
		if !containsFold(b, v) {
			return false
		}
	}
	return true
}

// SplitWarnings separates the warnings (IsWarning) out of what Check or a
// parse returned: err keeps every other problem (nil when only warnings
// were found), warnings are listed in order.
func SplitWarnings(in error) (err error, warnings ErrorList) {
	var keep []error
	var walk func(error)
	walk = func(e error) {
		var list ErrorList
		switch {
		case e == nil:
		case errors.As(e, &list) && e.Error() == list.Error():
			var rest ErrorList
			for _, x := range list {
				if IsWarning(x) {
					warnings = append(warnings, x)
				} else {
					rest = append(rest, x)
				}
			}
			if len(rest) > 0 {
				keep = append(keep, rest)
			}
		default:
			if j, ok := e.(interface{ Unwrap() []error }); ok {
				for _, x := range j.Unwrap() {
					walk(x)
				}
				return
			}
			keep = append(keep, e)
		}
	}
	walk(in)
	return errors.Join(keep...), warnings
}
