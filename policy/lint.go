package policy

import (
	"fmt"
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
