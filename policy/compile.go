package policy

import (
	"fmt"
	"net/netip"
	"regexp"
	"slices"
	"strings"

	"github.com/portcullis-gw/portcullis/policy/dlp"
)

// Built-in device and user-agent tags.
var (
	builtinDeviceTags = []string{DeviceValidClientCertificate, DeviceCompliant}
	builtinUATags     = []string{UAOutdatedBrowser, UAOutdatedOS, UANativeClient}
	clientAppNames    = []string{"browser", "mobile_desktop"}
)

// compiler carries the state of one Compile.
type compiler struct {
	e        *Engine
	errs     errs
	lint     errs
	caps     *Capabilities // nil: the engine alone, every control assumed enforceable
	ipTags   map[string][]netip.Prefix
	devTags  map[string]bool
	actApps  map[int32][]int32 // activity number -> apps defining it
	policyID map[string]Pos
	// apps each compiled policy applies to, parallel to e.access / e.session
	accessApps, sessionApps [][]int32
}

// Compile validates a policy set against the built-in catalog and builds
// an Engine. Structural and reference errors fail it (an ErrorList);
// logic problems that still allow a well-defined evaluation (conflicting,
// duplicate or unreachable policies) do not, and are returned by Check.
func Compile(set *PolicySet) (*Engine, error) {
	e, _, err := compile(set, nil)
	return e, err
}

// CompileFor is Compile for an appliance that can enforce only what caps
// says: a policy asking for anything else is an error at its position,
// so no policy is ever accepted and then silently not enforced.
func CompileFor(set *PolicySet, caps Capabilities) (*Engine, error) {
	e, _, err := compile(set, &caps)
	return e, err
}

// Check is what `policy check` runs: Compile's errors plus the logic
// problems, every one with a position and a fix hint.
func Check(set *PolicySet) error { return check(set, nil) }

// CheckFor is Check against what an appliance can enforce (see CompileFor).
func CheckFor(set *PolicySet, caps Capabilities) error { return check(set, &caps) }

func check(set *PolicySet, caps *Capabilities) error {
	_, lint, err := compile(set, caps)
	if err != nil {
		all := append(ErrorList(nil), err.(ErrorList)...)
		return append(all, lint...)
	}
	if len(lint) > 0 {
		return lint
	}
	return nil
}

func compile(set *PolicySet, caps *Capabilities) (*Engine, ErrorList, error) {
	if set == nil {
		set = &PolicySet{}
	}
	c := &compiler{
		e: &Engine{
			appByID:   map[string]int32{},
			hosts:     hostIndex{exact: map[string]int32{}, suffix: map[string]int32{}},
			actByName: map[string]int32{},
			set:       set,
		},
		caps:     caps,
		ipTags:   map[string][]netip.Prefix{},
		devTags:  map[string]bool{},
		actApps:  map[int32][]int32{},
		policyID: map[string]Pos{},
	}
	for i, n := range builtinActivities {
		if i > 0 {
			c.e.actByName[n] = int32(i)
		}
	}
	c.e.actNames = append([]string(nil), builtinActivities[:]...)
	c.catalog(set)
	c.tags(set)
	c.detectors(set)
	c.settings(set.Settings)
	for i := range set.AccessPolicies {
		c.accessPolicy(&set.AccessPolicies[i])
	}
	for i := range set.SessionPolicies {
		c.sessionPolicy(&set.SessionPolicies[i])
	}
	c.index()
	c.lintSet(set)
	if err := c.errs.err(); err != nil {
		return nil, c.lint.list, err
	}
	return c.e, c.lint.list, nil
}

var idPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9_.-]{0,63}$`)

func (c *compiler) checkID(id string, at Pos, what string) bool {
	if id == "" {
		c.errs.add(at, ErrMissing, "add an id: lower-case letters, digits, '_', '-', '.'", "%s has no id", what)
		return false
	}
	if !idPattern.MatchString(id) {
		c.errs.add(at, ErrBadValue, "use lower-case letters, digits, '_', '-' and '.', at most 64 characters", "%s id %q is not a valid id", what, id)
		return false
	}
	return true
}

func (c *compiler) catalog(set *PolicySet) {
	builtin, err := builtinCatalog()
	if err != nil {
		if l, ok := err.(ErrorList); ok {
			c.errs.list = append(c.errs.list, l...)
		}
		return
	}
	own := map[string]Pos{}
	for _, a := range set.Apps {
		if at, dup := own[a.ID]; dup {
			c.errs.add(a.At, ErrDuplicate, "rename or delete one of the two", "app %q is already defined at %s", a.ID, at)
			continue
		}
		own[a.ID] = a.At
	}
	// An admin app with a built-in id replaces the built-in definition.
	var apps []App
	for _, a := range builtin.Apps {
		if _, replaced := own[a.ID]; !replaced {
			apps = append(apps, a)
		}
	}
	seen := map[string]bool{}
	for _, a := range set.Apps {
		if !seen[a.ID] {
			seen[a.ID] = true
			apps = append(apps, a)
		}
	}
	slices.SortStableFunc(apps, func(a, b App) int { return strings.Compare(a.ID, b.ID) })
	for _, a := range apps {
		c.app(a)
	}
	for _, cd := range set.CustomDomains {
		i, ok := c.e.appByID[cd.App]
		if !ok {
			c.unknownRef(cd.At, "app", cd.App, c.appIDs())
			continue
		}
		if len(cd.Domains) == 0 {
			c.errs.add(cd.At, ErrMissing, "list the domains to add, e.g. domains: [files.corp.example]", "custom_domains for %q lists no domains", cd.App)
		}
		for _, d := range cd.Domains {
			if c.domain(d, i, cd.At) {
				c.e.apps[i].app.Domains = append(c.e.apps[i].app.Domains, d)
			}
		}
	}
}

func (c *compiler) appIDs() []string {
	ids := make([]string, 0, len(c.e.apps))
	for _, a := range c.e.apps {
		ids = append(ids, a.app.ID)
	}
	return ids
}

func (c *compiler) app(a App) {
	if !c.checkID(a.ID, a.At, "app") {
		return
	}
	idx := int32(len(c.e.apps))
	a.Domains = append([]string(nil), a.Domains...)
	entry := &appEntry{app: a}
	c.e.apps = append(c.e.apps, entry)
	c.e.appByID[a.ID] = idx
	if len(a.Domains) == 0 {
		c.errs.add(a.At, ErrMissing, "add domains: [app.example.com, \"*.app.example.com\"]", "app %q has no domains", a.ID)
	}
	for _, d := range a.Domains {
		c.domain(d, idx, a.At)
	}
	acts := map[string]bool{}
	for k := range a.Activities {
		act := &entry.app.Activities[k]
		if !c.checkID(act.ID, act.At, "activity") {
			continue
		}
		if acts[act.ID] {
			c.errs.add(act.At, ErrDuplicate, "rename one of the two", "activity %q is defined twice in app %q", act.ID, a.ID)
			continue
		}
		acts[act.ID] = true
		if slices.Contains(builtinActivities[:], act.ID) {
			c.errs.add(act.At, ErrBadValue, fmt.Sprintf("rename it, e.g. %s_file", act.ID), "activity id %q is reserved for the built-in activity", act.ID)
			continue
		}
		if act.Kind != "" && act.FileKind() == KindRequest {
			c.errs.add(act.At, ErrBadValue, "use kind: download or kind: upload", "activity %q: kind %q is not a file transfer", act.ID, act.Kind)
		}
		m := activityMatcher{def: act, method: strings.ToUpper(act.Method)}
		if m.method != "" && !validMethod(m.method) {
			c.errs.add(act.At, ErrBadValue, "use an HTTP method such as GET or POST", "activity %q: %q is not an HTTP method", act.ID, act.Method)
		}
		if act.Host != "" {
			ds, err := NewDomainSet([]string{act.Host})
			if err != nil {
				c.errs.add(act.At, ErrBadValue, "write an exact host or \"*.suffix\"", "activity %q host: %v", act.ID, err)
			}
			m.host = ds
		}
		pp, err := compilePath(act.Path)
		if err != nil {
			c.errs.add(act.At, ErrBadValue, "write a path such as /api/send, /files/* or /files/**", "activity %q: %v", act.ID, err)
		}
		m.path = pp
		for _, fm := range act.Match {
			if fm.Field == "" {
				c.errs.add(fm.At, ErrMissing, "name the body field: field: operationName", "activity %q has a match without a field", act.ID)
			}
		}
		num, ok := c.e.actByName[act.ID]
		if !ok {
			num = int32(len(c.e.actNames))
			c.e.actNames = append(c.e.actNames, act.ID)
			c.e.actByName[act.ID] = num
		}
		m.num = num
		c.actApps[num] = append(c.actApps[num], idx)
		entry.activities = append(entry.activities, m)
	}
}

func validMethod(m string) bool {
	for i := 0; i < len(m); i++ {
		if m[i] < 'A' || m[i] > 'Z' {
			return false
		}
	}
	return len(m) > 0 && len(m) <= 16
}

// domain adds one host pattern of app idx to the host index.
func (c *compiler) domain(d string, idx int32, at Pos) bool {
	n := strings.TrimSuffix(strings.ToLower(strings.TrimSpace(d)), ".")
	if _, err := NewDomainSet([]string{n}); err != nil {
		c.errs.add(at, ErrBadValue, "write an exact host (app.example.com) or a wildcard (\"*.example.com\", quoted)", "domain %q: %v", d, err)
		return false
	}
	m := c.e.hosts.exact
	if strings.HasPrefix(n, "*.") {
		n, m = n[2:], c.e.hosts.suffix
	}
	if other, ok := m[n]; ok && other != idx {
		c.errs.add(at, ErrConflict, "remove the domain from one of the apps", "domain %q of app %q already belongs to app %q",
			d, c.e.apps[idx].app.ID, c.e.apps[other].app.ID)
		return false
	}
	m[n] = idx
	return true
}

func (c *compiler) tags(set *PolicySet) {
	for _, t := range set.IPTags {
		if !c.checkID(t.ID, t.At, "ip tag") {
			continue
		}
		if _, dup := c.ipTags[t.ID]; dup {
			c.errs.add(t.At, ErrDuplicate, "merge the ranges into one tag", "ip tag %q is defined twice", t.ID)
			continue
		}
		if len(t.Ranges) == 0 {
			c.errs.add(t.At, ErrMissing, "add ranges: [192.0.2.0/24]", "ip tag %q has no ranges", t.ID)
		}
		var ps []netip.Prefix
		for _, r := range t.Ranges {
			if p, ok := c.prefix(r, t.At); ok {
				ps = append(ps, p)
			}
		}
		c.ipTags[t.ID] = ps
	}
	for _, t := range set.DeviceTags {
		if !c.checkID(t.ID, t.At, "device tag") {
			continue
		}
		if c.devTags[t.ID] || slices.Contains(builtinDeviceTags, t.ID) {
			c.errs.add(t.At, ErrDuplicate, "delete the declaration (built-in tags need none)", "device tag %q is already defined", t.ID)
			continue
		}
		c.devTags[t.ID] = true
	}
}

func (c *compiler) prefix(r string, at Pos) (netip.Prefix, bool) {
	if p, err := netip.ParsePrefix(r); err == nil {
		if p != p.Masked() {
			c.errs.add(at, ErrBadValue, fmt.Sprintf("write %s", p.Masked()), "range %q has host bits set", r)
			return netip.Prefix{}, false
		}
		return p, true
	}
	if a, err := netip.ParseAddr(r); err == nil {
		return netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()), true
	}
	c.errs.add(at, ErrBadValue, "write a CIDR prefix (198.51.100.0/24, 2001:db8::/32) or one address", "%q is not an IP range", r)
	return netip.Prefix{}, false
}

func (c *compiler) detectors(set *PolicySet) {
	var customs []dlp.Custom
	seen := map[string]bool{}
	for _, d := range set.Detectors {
		if !c.checkID(d.ID, d.At, "detector") {
			continue
		}
		if dlp.IsBuiltin(d.ID) || seen[d.ID] {
			c.errs.add(d.At, ErrDuplicate, "choose another id", "detector %q is already defined", d.ID)
			continue
		}
		seen[d.ID] = true
		switch {
		case d.Regex != "" && len(d.Keywords) > 0:
			c.errs.add(d.At, ErrBadValue, "split it into two detectors", "detector %q has both regex and keywords", d.ID)
			continue
		case d.Regex != "":
			re, err := regexp.Compile(d.Regex)
			if err != nil {
				c.errs.add(d.At, ErrBadRegex, "use RE2 syntax (no look-around or back-references)", "detector %q: %v", d.ID, err)
				continue
			}
			if re.MatchString("") {
				c.errs.add(d.At, ErrBadRegex, "make the pattern require at least one character (+ instead of *)", "detector %q: the regex matches empty text", d.ID)
				continue
			}
		case len(d.Keywords) > 0:
			bad := false
			for _, k := range d.Keywords {
				if strings.TrimSpace(k) == "" || len(k) > dlp.MaxCustomMatch {
					c.errs.add(d.At, ErrBadValue, fmt.Sprintf("keywords are 1 to %d bytes", dlp.MaxCustomMatch), "detector %q has an empty or too long keyword", d.ID)
					bad = true
				}
			}
			if bad {
				continue
			}
		default:
			c.errs.add(d.At, ErrMissing, "add regex: '...' or keywords: [...]", "detector %q has neither regex nor keywords", d.ID)
			continue
		}
		customs = append(customs, dlp.Custom{ID: d.ID, Name: d.Name, Regex: d.Regex, Keywords: d.Keywords, CaseSensitive: d.CaseSensitive})
	}
	s, err := dlp.NewSet(customs)
	if err != nil {
		c.errs.add(Pos{}, ErrBadValue, "", "detectors: %v", err)
		s, _ = dlp.NewSet(nil)
	}
	c.e.detectors = s
}

func (c *compiler) settings(s *Settings) {
	st := effectiveSettings{
		inspectionFailure: ActionBlock, inspectionTimeout: ActionBlock, oversize: ActionBlock,
		maxInspectionSize: DefaultMaxInspectionSize, blockMessage: DefaultBlockMessage,
	}
	if s != nil {
		for _, x := range []struct {
			name string
			v    Action
			dst  *Action
		}{
			{"inspection_failure", s.InspectionFailure, &st.inspectionFailure},
			{"inspection_timeout", s.InspectionTimeout, &st.inspectionTimeout},
			{"oversize_file", s.OversizeFile, &st.oversize},
		} {
			switch x.v {
			case ActionUnset:
			case ActionAllow, ActionMonitor, ActionBlock:
				*x.dst = x.v
			default:
				c.errs.add(s.At, ErrBadValue, "use allow, monitor or block", "settings.%s cannot be %s", x.name, x.v)
			}
		}
		if s.MaxInspectionSize > 0 {
			st.maxInspectionSize = int64(s.MaxInspectionSize)
		}
		if s.BlockMessage != "" {
			st.blockMessage = s.BlockMessage
		}
	}
	c.e.settings = st
}

func (c *compiler) unknownRef(at Pos, what, got string, valid []string) {
	hint := fmt.Sprintf("define the %s first, or use one of: %s", what, strings.Join(sortedCopy(valid), ", "))
	if len(valid) > 12 {
		hint = fmt.Sprintf("define the %s first", what)
	}
	if s := closest(got, valid); s != "" {
		hint = fmt.Sprintf("did you mean %q?", s)
	}
	c.errs.add(at, ErrUnknownRef, hint, "unknown %s %q", what, got)
}

// names checks every entry of a filter against valid (nil: anything goes).
func (c *compiler) names(n *Names, what string, valid []string) {
	check := func(list []string, none bool) {
		for i, v := range list {
			if strings.TrimSpace(v) == "" {
				c.errs.add(n.posOf(none, i), ErrBadValue, "delete the empty entry", "empty %s in filter", what)
				continue
			}
			if valid != nil && !slices.Contains(valid, v) {
				c.unknownRef(n.posOf(none, i), what, v, valid)
			}
		}
	}
	check(n.AnyOf, false)
	check(n.NoneOf, true)
	// any_of entries that none_of also excludes can never match.
	if len(n.AnyOf) > 0 {
		dead := 0
		for _, v := range n.AnyOf {
			if slices.ContainsFunc(n.NoneOf, func(x string) bool { return strings.EqualFold(x, v) }) {
				dead++
			}
		}
		if dead == len(n.AnyOf) {
			c.lint.add(n.At, ErrUnreachable, "remove the names from none_of or from any_of", "%s filter: every any_of entry is also in none_of, so it never matches", what)
		}
	}
}

func (c *compiler) filters(f *Filters, at Pos) filters {
	c.names(&f.Apps, "app", c.appIDs())
	c.names(&f.Users, "user", nil)
	c.names(&f.Groups, "group", nil)
	dev := append(append([]string(nil), builtinDeviceTags...), mapKeys(c.devTags)...)
	c.names(&f.DeviceTags, "device tag", dev)
	c.names(&f.ClientApps, "client app", clientAppNames)
	c.names(&f.UserAgentTags, "user-agent tag", builtinUATags)
	c.names(&f.IPTags, "ip tag", mapKeys(c.ipTags))
	out := filters{
		users: newNameFilter(f.Users), groups: newNameFilter(f.Groups),
		deviceTags: newNameFilter(f.DeviceTags), uaTags: newNameFilter(f.UserAgentTags),
		clients: clientBrowserBit,
	}
	if !f.ClientApps.IsZero() {
		out.clients = clientBrowserBit | clientNativeBit
		if len(f.ClientApps.AnyOf) > 0 {
			out.clients = 0
			for _, v := range f.ClientApps.AnyOf {
				out.clients |= clientBit(v)
			}
		}
		for _, v := range f.ClientApps.NoneOf {
			out.clients &^= clientBit(v)
		}
		out.explicitNative = out.clients&clientNativeBit != 0
		if out.clients == 0 {
			c.lint.add(f.ClientApps.At, ErrUnreachable, "allow at least one of browser, mobile_desktop", "client_apps excludes every client, so the policy never matches")
		}
	}
	out.ipRanges.on = !f.IPRanges.IsZero()
	for i, r := range f.IPRanges.AnyOf {
		if p, ok := c.prefix(r, f.IPRanges.posOf(false, i)); ok {
			out.ipRanges.any = append(out.ipRanges.any, p)
		}
	}
	for i, r := range f.IPRanges.NoneOf {
		if p, ok := c.prefix(r, f.IPRanges.posOf(true, i)); ok {
			out.ipRanges.none = append(out.ipRanges.none, p)
		}
	}
	out.ipTags.on = !f.IPTags.IsZero()
	for _, t := range f.IPTags.AnyOf {
		out.ipTags.any = append(out.ipTags.any, c.ipTags[t]...)
	}
	for _, t := range f.IPTags.NoneOf {
		out.ipTags.none = append(out.ipTags.none, c.ipTags[t]...)
	}
	_ = at
	return out
}

func clientBit(v string) uint8 {
	switch v {
	case "browser":
		return clientBrowserBit
	case "mobile_desktop":
		return clientNativeBit
	}
	return 0
}

func mapKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

func (c *compiler) policyHeader(id string, at Pos, what string) bool {
	if !c.checkID(id, at, what) {
		return false
	}
	if prev, dup := c.policyID[id]; dup {
		c.errs.add(at, ErrDuplicate, "give each policy its own id", "policy id %q is already used at %s", id, prev)
		return false
	}
	c.policyID[id] = at
	return true
}

func (c *compiler) accessPolicy(p *AccessPolicy) {
	if !c.policyHeader(p.ID, p.At, "access policy") {
		return
	}
	switch p.Action {
	case ActionAllow, ActionMonitor, ActionBlock:
	case ActionUnset:
		c.errs.add(p.At, ErrMissing, "add action: allow, monitor or block", "access policy %q has no action", p.ID)
	default:
		c.errs.add(p.At, ErrBadValue, "access policies allow, monitor or block; use a session policy for "+p.Action.String(), "access policy %q cannot %s", p.ID, p.Action)
	}
	f := c.filters(&p.Filters, p.At)
	if p.Disabled {
		return
	}
	c.accessApps = append(c.accessApps, c.appsOf(&p.Filters, p.At, p.ID))
	c.e.access = append(c.e.access, accessPolicy{
		info: PolicyInfo{ID: p.ID, Name: p.Name, Action: p.Action, Message: p.Message, Severity: p.Severity, Alert: p.Alert, At: p.At, index: len(c.e.access), filters: &p.Filters},
		f:    f,
	})
}

func (c *compiler) sessionPolicy(p *SessionPolicy) {
	if !c.policyHeader(p.ID, p.At, "session policy") {
		return
	}
	f := c.filters(&p.Filters, p.At)
	sp := sessionPolicy{
		info: PolicyInfo{ID: p.ID, Name: p.Name, Session: true, Control: p.Control, Action: p.Action, Message: p.Message,
			Severity: p.Severity, Alert: p.Alert, Protect: p.Protect, Malware: p.Malware, Notice: p.Notice, ApplyIfUnscannable: p.ApplyIfUnscannable, At: p.At,
			filters: &p.Filters, activities: &p.Activities, files: &p.Files, content: &p.Content},
		f: f,
	}
	var allowed []Action
	switch p.Control {
	case ControlUnset:
		c.errs.add(p.At, ErrMissing, "add control: monitor, block_activities, download or upload", "session policy %q has no control", p.ID)
		return
	case ControlMonitor:
		allowed = []Action{ActionMonitor}
	case ControlBlockActivities:
		allowed = []Action{ActionMonitor, ActionStepUp, ActionBlock}
	case ControlDownload:
		allowed = []Action{ActionMonitor, ActionProtect, ActionStepUp, ActionBlock}
	case ControlUpload:
		// Protect labels and encrypts what users take out of an app; an
		// upload is not rewritten on its way in.
		allowed = []Action{ActionMonitor, ActionStepUp, ActionBlock}
	}
	if p.Action == ActionUnset {
		c.errs.add(p.At, ErrMissing, "add action: "+actionList(allowed), "session policy %q has no action", p.ID)
	} else if !slices.Contains(allowed, p.Action) {
		c.errs.add(p.At, ErrBadValue, "with control "+p.Control.String()+" use: "+actionList(allowed), "session policy %q: control %s cannot %s", p.ID, p.Control, p.Action)
	}
	if !p.Protect.IsZero() && p.Action != ActionProtect {
		c.errs.add(p.Protect.At, ErrBadValue, "delete protect, or set action: protect", "session policy %q has protect settings but action %s", p.ID, p.Action)
	}
	if p.Action == ActionProtect && p.Protect.IsZero() {
		c.errs.add(p.At, ErrMissing, "add protect: {label: Confidential, encrypt: true}", "session policy %q protects but says neither label nor encrypt", p.ID)
	}
	if u := p.Protect.Unsupported; u != ActionUnset && u != ActionAllow && u != ActionBlock {
		c.errs.add(p.Protect.At, ErrBadValue, "use unsupported: block or unsupported: allow", "session policy %q: protect.unsupported cannot be %s", p.ID, u)
	}
	if p.Malware {
		if p.Control != ControlDownload && p.Control != ControlUpload {
			c.errs.add(p.At, ErrBadValue, "delete malware, or use control: download or upload", "session policy %q: malware scanning applies to downloads and uploads only", p.ID)
		}
		if !p.Content.IsZero() {
			c.errs.add(p.Content.At, ErrBadValue, "write one policy for malware and another for content", "session policy %q asks for both malware and content conditions", p.ID)
		}
	}
	if p.Notice && p.Control != ControlMonitor {
		c.errs.add(p.At, ErrBadValue, "delete notice, or use control: monitor", "session policy %q: the monitoring notice belongs to control monitor", p.ID)
	}
	c.enforceable(p)
	// Activities.
	if p.Control == ControlBlockActivities {
		if len(p.Activities.AnyOf) == 0 {
			c.errs.add(p.At, ErrMissing, "add activities: [print, cut_copy, paste] or catalog activity ids", "session policy %q blocks activities but lists none", p.ID)
		}
		if len(p.Activities.NoneOf) > 0 {
			c.errs.add(p.Activities.At, ErrBadValue, "list the activities to control under any_of (or as a plain list)", "session policy %q: activities take no none_of", p.ID)
		}
		appSet := c.policyApps(&p.Filters)
		for i, a := range p.Activities.AnyOf {
			num, ok := c.e.actByName[a]
			if !ok {
				c.unknownRef(p.Activities.posOf(false, i), "activity", a, c.e.actNames[1:])
				continue
			}
			sp.activities = append(sp.activities, num)
			if int(num) >= len(builtinActivities) && !slices.ContainsFunc(c.actApps[num], func(x int32) bool { return appSet[x] }) {
				c.lint.add(p.Activities.posOf(false, i), ErrUnreachable, "add the activity's app to filters.apps or remove the activity",
					"activity %q is not defined by any app this policy applies to", a)
			}
		}
	} else if !p.Activities.IsZero() {
		c.errs.add(p.Activities.At, ErrBadValue, "delete activities, or use control: block_activities", "session policy %q: activities only apply to control block_activities", p.ID)
	}
	// Files.
	if !p.Files.IsZero() {
		if p.Control != ControlDownload && p.Control != ControlUpload {
			c.errs.add(p.Files.At, ErrBadValue, "delete files, or use control: download or upload", "session policy %q: file filters only apply to downloads and uploads", p.ID)
		}
		sp.files = c.fileFilter(&p.Files)
	}
	// Content.
	if !p.Content.IsZero() {
		if p.Control == ControlMonitor {
			c.errs.add(p.Content.At, ErrBadValue, "delete content, or use control download, upload or block_activities", "session policy %q: monitor-only policies do not inspect content", p.ID)
		}
		if len(p.Content.Detectors) == 0 {
			c.errs.add(p.Content.At, ErrMissing, "add detectors: [{id: credit_card}]", "session policy %q: content lists no detectors", p.ID)
		}
		sp.content.all = p.Content.Match == MatchAll
		for _, d := range p.Content.Detectors {
			idx := c.e.detectors.Index(d.ID)
			if idx < 0 {
				valid := make([]string, c.e.detectors.Len())
				for k := range valid {
					valid[k] = c.e.detectors.ID(k)
				}
				c.unknownRef(d.At, "detector", d.ID, valid)
				continue
			}
			if d.MinCount < 0 {
				c.errs.add(d.At, ErrBadValue, "use 1 or more", "detector %q: min_count %d is negative", d.ID, d.MinCount)
			}
			sp.content.refs = append(sp.content.refs, contentRef{id: d.ID, idx: idx, min: max(d.MinCount, 1)})
		}
	} else if p.ApplyIfUnscannable {
		c.lint.add(p.At, ErrUnreachable, "delete apply_if_unscannable, or add a content filter", "session policy %q: apply_if_unscannable has no effect without a content filter", p.ID)
	}
	if p.Disabled {
		return
	}
	c.sessionApps = append(c.sessionApps, c.appsOf(&p.Filters, p.At, p.ID))
	sp.info.index = len(c.e.session)
	c.e.session = append(c.e.session, sp)
}

func actionList(as []Action) string {
	s := make([]string, len(as))
	for i, a := range as {
		s[i] = a.String()
	}
	return strings.Join(s, ", ")
}

func (c *compiler) fileFilter(f *FileFilter) fileFilter {
	out := fileFilter{on: true, minSize: int64(f.MinSize), maxSize: int64(f.MaxSize), label: f.Label}
	for i, n := range f.Names.AnyOf {
		out.names = append(out.names, c.glob(n, f.Names.posOf(false, i)))
	}
	for i, n := range f.Names.NoneOf {
		out.notNames = append(out.notNames, c.glob(n, f.Names.posOf(true, i)))
	}
	ext := Names{At: f.Extensions.At}
	for _, x := range f.Extensions.AnyOf {
		ext.AnyOf = append(ext.AnyOf, strings.TrimPrefix(x, "."))
	}
	for _, x := range f.Extensions.NoneOf {
		ext.NoneOf = append(ext.NoneOf, strings.TrimPrefix(x, "."))
	}
	c.names(&f.Extensions, "extension", nil)
	out.ext = newNameFilter(ext)
	mime := func(list []string, none bool) []string {
		var o []string
		for i, m := range list {
			typ, sub, ok := strings.Cut(m, "/")
			if !ok || typ == "" || sub == "" || strings.Contains(sub, "/") || strings.Contains(typ, "*") || strings.Contains(sub, "*") && sub != "*" {
				c.errs.add(f.MIMETypes.posOf(none, i), ErrBadValue, "write type/subtype or type/*, e.g. application/pdf", "%q is not a MIME type pattern", m)
				continue
			}
			o = append(o, strings.ToLower(m))
		}
		return o
	}
	out.mime = mime(f.MIMETypes.AnyOf, false)
	out.notMIME = mime(f.MIMETypes.NoneOf, true)
	c.names(&f.Labels, "label", nil)
	out.labels = newNameFilter(f.Labels)
	if f.MinSize > 0 && f.MaxSize > 0 && f.MinSize > f.MaxSize {
		c.lint.add(f.At, ErrUnreachable, "swap min_size and max_size", "min_size %s is above max_size %s, so no file matches", f.MinSize, f.MaxSize)
	}
	if f.Label == LabelAbsent && len(f.Labels.AnyOf) > 0 {
		c.lint.add(f.At, ErrUnreachable, "use label: present, or drop labels", "label: absent contradicts labels any_of, so no file matches")
	}
	return out
}

func (c *compiler) glob(p string, at Pos) string {
	p = strings.ToLower(p)
	if _, err := pathMatchCheck(p); err != nil {
		c.errs.add(at, ErrBadValue, "use * ? and [a-z] only, e.g. *.docx", "file name pattern %q: %v", p, err)
	}
	return p
}

// policyApps is the set of app indexes a policy applies to.
func (c *compiler) policyApps(f *Filters) map[int32]bool {
	out := map[int32]bool{}
	if len(f.Apps.AnyOf) > 0 {
		for _, id := range f.Apps.AnyOf {
			if i, ok := c.e.appByID[id]; ok {
				out[i] = true
			}
		}
	} else {
		for i := range c.e.apps {
			out[int32(i)] = true
		}
	}
	for _, id := range f.Apps.NoneOf {
		if i, ok := c.e.appByID[id]; ok {
			delete(out, i)
		}
	}
	return out
}

// index builds the per-app candidate lists from the apps each compiled
// policy applies to.
func (c *compiler) index() {
	e := c.e
	e.accessByApp = make([][]int32, len(e.apps))
	e.sessionByApp = make([][]int32, len(e.apps))
	for k, apps := range c.accessApps {
		for _, i := range apps {
			e.accessByApp[i] = append(e.accessByApp[i], int32(k))
		}
	}
	for k, apps := range c.sessionApps {
		for _, i := range apps {
			e.sessionByApp[i] = append(e.sessionByApp[i], int32(k))
		}
	}
}

// appsOf lists the app indexes a policy applies to, in index order, and
// reports a policy that applies to none.
func (c *compiler) appsOf(f *Filters, at Pos, id string) []int32 {
	set := c.policyApps(f)
	if len(set) == 0 {
		c.lint.add(at, ErrUnreachable, "fix filters.apps", "policy %q applies to no app", id)
	}
	out := make([]int32, 0, len(set))
	for i := range c.e.apps {
		if set[int32(i)] {
			out = append(out, int32(i))
		}
	}
	return out
}
