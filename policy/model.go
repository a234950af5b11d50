package policy

// The model mirrors the YAML files one to one: field tags are the keys, and
// every struct remembers where it was written (At) so that validation and
// `policy check` can point at the line to fix. Serialising a PolicySet with
// Marshal and parsing it again gives the same set (the fuzz target holds us
// to that).

// PolicySet is everything the engine compiles: catalog additions, tags,
// detectors, settings and the policies themselves. Several files merge into
// one set (see Merge).
type PolicySet struct {
	Apps            []App           `yaml:"apps,omitempty"`
	CustomDomains   []CustomDomains `yaml:"custom_domains,omitempty"`
	IPTags          []IPTag         `yaml:"ip_tags,omitempty"`
	DeviceTags      []DeviceTag     `yaml:"device_tags,omitempty"`
	Detectors       []Detector      `yaml:"detectors,omitempty"`
	Settings        *Settings       `yaml:"settings,omitempty"`
	AccessPolicies  []AccessPolicy  `yaml:"access_policies,omitempty"`
	SessionPolicies []SessionPolicy `yaml:"session_policies,omitempty"`
}

// App is a catalog entry: a SaaS or internal app and how to recognise it.
type App struct {
	ID         string     `yaml:"id"`
	Name       string     `yaml:"name,omitempty"`
	Domains    []string   `yaml:"domains"` // exact host names or "*.suffix"
	Activities []Activity `yaml:"activities,omitempty"`
	At         Pos        `yaml:"-"`
}

// Activity is a named thing users do in an app, recognised by method and
// host/path pattern (and optionally body fields), e.g. "send message" =
// POST /api/chat.postMessage.
type Activity struct {
	ID     string `yaml:"id"`
	Name   string `yaml:"name,omitempty"`
	Method string `yaml:"method,omitempty"` // empty: any method
	Host   string `yaml:"host,omitempty"`   // empty: any of the app's domains; else exact or "*.suffix"
	// Path is "/exact", "/prefix/**" or with "*" standing for one segment.
	Path string `yaml:"path"`
	// Body fields (JSON keys or form fields) that must be present with the
	// given value for the activity to match, e.g. a GraphQL operationName.
	Match []FieldMatch `yaml:"match,omitempty"`
	// Content lists the body fields whose text the proxy hands to content
	// inspection for this activity (e.g. the message text).
	Content []string `yaml:"content,omitempty"`
	// Kind marks an endpoint that transfers files: "download" (its
	// responses are downloads even without Content-Disposition) or
	// "upload" (its request bodies are uploads).
	Kind string `yaml:"kind,omitempty"`
	At   Pos    `yaml:"-"`
}

// FileKind is the file transfer the activity's Kind names, KindRequest
// when it names none.
func (a *Activity) FileKind() ActivityKind {
	switch a.Kind {
	case "download":
		return KindDownload
	case "upload":
		return KindUpload
	}
	return KindRequest
}

// FieldMatch is one body-field condition of an activity.
type FieldMatch struct {
	Field string `yaml:"field"`
	// Equals is the value the field must have; omitted, the field only has
	// to be present.
	Equals string `yaml:"equals,omitempty"`
	At     Pos    `yaml:"-"`
}

// CustomDomains adds admin-owned domains to a catalog app (vanity and
// tenant domains, e.g. a SharePoint custom domain).
type CustomDomains struct {
	App     string   `yaml:"app"`
	Domains []string `yaml:"domains"`
	At      Pos      `yaml:"-"`
}

// IPTag names a set of address ranges (corporate, vpn, risky...).
type IPTag struct {
	ID     string   `yaml:"id"`
	Ranges []string `yaml:"ranges"` // CIDR prefixes or single addresses
	At     Pos      `yaml:"-"`
}

// DeviceTag declares an admin-defined device tag so that policies can use it
// and a typo in a policy is caught (valid_client_certificate and compliant
// are built in).
type DeviceTag struct {
	ID          string `yaml:"id"`
	Description string `yaml:"description,omitempty"`
	At          Pos    `yaml:"-"`
}

// Detector is an admin-defined content detector: a regular expression or a
// keyword dictionary. Built-in detectors (credit_card, iban, us_ssn, email,
// swift_bic) need no definition.
type Detector struct {
	ID            string   `yaml:"id"`
	Name          string   `yaml:"name,omitempty"`
	Regex         string   `yaml:"regex,omitempty"`
	Keywords      []string `yaml:"keywords,omitempty"`
	CaseSensitive bool     `yaml:"case_sensitive,omitempty"`
	At            Pos      `yaml:"-"`
}

// Settings are the default behaviours. Unset actions mean block: content we
// could not look at is treated as content we must not let out.
type Settings struct {
	InspectionFailure Action   `yaml:"inspection_failure,omitempty"`
	InspectionTimeout Action   `yaml:"inspection_timeout,omitempty"`
	OversizeFile      Action   `yaml:"oversize_file,omitempty"`
	MaxInspectionSize ByteSize `yaml:"max_inspection_size,omitempty"`
	BlockMessage      string   `yaml:"block_message,omitempty"`
	At                Pos      `yaml:"-"`
}

// AccessPolicy decides per connection whether a user may reach an app.
type AccessPolicy struct {
	ID          string   `yaml:"id"`
	Name        string   `yaml:"name,omitempty"`
	Description string   `yaml:"description,omitempty"`
	Disabled    bool     `yaml:"disabled,omitempty"`
	Filters     Filters  `yaml:"filters,omitempty"`
	Action      Action   `yaml:"action,omitempty"` // allow, monitor or block
	Message     string   `yaml:"message,omitempty"`
	Severity    Severity `yaml:"severity,omitempty"`
	Alert       bool     `yaml:"alert,omitempty"`
	At          Pos      `yaml:"-"`
}

// SessionPolicy decides per request what a user may do inside an app.
type SessionPolicy struct {
	ID          string  `yaml:"id"`
	Name        string  `yaml:"name,omitempty"`
	Description string  `yaml:"description,omitempty"`
	Disabled    bool    `yaml:"disabled,omitempty"`
	Filters     Filters `yaml:"filters,omitempty"`
	Control     Control `yaml:"control,omitempty"`
	// Activities is used by block_activities: print, cut_copy, paste,
	// download, upload, or activity ids from the catalog.
	Activities Names         `yaml:"activities,omitempty"`
	Files      FileFilter    `yaml:"files,omitempty"`
	Content    ContentFilter `yaml:"content,omitempty"`
	Action     Action        `yaml:"action,omitempty"`
	Message    string        `yaml:"message,omitempty"`
	Protect    Protect       `yaml:"protect,omitempty"`
	// Malware makes a download/upload policy match files a malware scanner
	// reports as infected (the appliance must have a scanner configured).
	Malware bool `yaml:"malware,omitempty"`
	// Notice (control monitor only) shows the user a "this session is
	// monitored" page with Message once per session before the app.
	Notice             bool     `yaml:"notice,omitempty"`
	ApplyIfUnscannable bool     `yaml:"apply_if_unscannable,omitempty"`
	Severity           Severity `yaml:"severity,omitempty"`
	Alert              bool     `yaml:"alert,omitempty"`
	At                 Pos      `yaml:"-"`
}

// Filters are the conditions shared by access and session policies. Every
// filter that is set must hold; an unset filter holds for everyone. A policy
// without client_apps applies to browsers only, so native clients are never
// intercepted unless a policy says so.
type Filters struct {
	Apps          Names `yaml:"apps,omitempty"`
	Users         Names `yaml:"users,omitempty"`
	Groups        Names `yaml:"groups,omitempty"`
	DeviceTags    Names `yaml:"device_tags,omitempty"`
	ClientApps    Names `yaml:"client_apps,omitempty"` // browser, mobile_desktop
	UserAgentTags Names `yaml:"user_agent_tags,omitempty"`
	IPRanges      Names `yaml:"ip_ranges,omitempty"`
	IPTags        Names `yaml:"ip_tags,omitempty"`
}

// IsZero lets omitempty drop empty filter blocks.
func (f Filters) IsZero() bool {
	return f.Apps.IsZero() && f.Users.IsZero() && f.Groups.IsZero() && f.DeviceTags.IsZero() &&
		f.ClientApps.IsZero() && f.UserAgentTags.IsZero() && f.IPRanges.IsZero() && f.IPTags.IsZero()
}

// Names is one filter: the value must be one of AnyOf (when given) and none
// of NoneOf. In YAML a plain list is shorthand for any_of. For multi-valued
// attributes (groups, tags) "one of" means at least one value is listed.
type Names struct {
	AnyOf  []string `yaml:"any_of,omitempty"`
	NoneOf []string `yaml:"none_of,omitempty"`
	At     Pos      `yaml:"-"`
	// positions of each entry, for errors that point at one name
	anyAt, noneAt []Pos
}

// IsZero reports an unset filter.
func (n Names) IsZero() bool { return len(n.AnyOf) == 0 && len(n.NoneOf) == 0 }

// posOf returns where entry i of AnyOf (none=false) or NoneOf was written.
func (n *Names) posOf(none bool, i int) Pos {
	list := n.anyAt
	if none {
		list = n.noneAt
	}
	if i < len(list) {
		return list[i]
	}
	return n.At
}

// FileFilter narrows download/upload policies to some files.
type FileFilter struct {
	Names      Names      `yaml:"names,omitempty"` // glob patterns, path.Match syntax
	Extensions Names      `yaml:"extensions,omitempty"`
	MIMETypes  Names      `yaml:"mime_types,omitempty"` // "type/subtype" or "type/*"
	MinSize    ByteSize   `yaml:"min_size,omitempty"`
	MaxSize    ByteSize   `yaml:"max_size,omitempty"`
	Label      LabelState `yaml:"label,omitempty"`  // present / absent
	Labels     Names      `yaml:"labels,omitempty"` // label names (equals)
	At         Pos        `yaml:"-"`
}

func (f FileFilter) IsZero() bool {
	return f.Names.IsZero() && f.Extensions.IsZero() && f.MIMETypes.IsZero() &&
		f.MinSize == 0 && f.MaxSize == 0 && f.Label == LabelAny && f.Labels.IsZero()
}

// ContentFilter makes a policy depend on what content inspection found.
type ContentFilter struct {
	Detectors []DetectorRef `yaml:"detectors,omitempty"`
	Match     MatchMode     `yaml:"match,omitempty"`
	At        Pos           `yaml:"-"`
}

func (c ContentFilter) IsZero() bool { return len(c.Detectors) == 0 && c.Match == MatchAny }

// DetectorRef uses a detector with a minimum number of matches.
type DetectorRef struct {
	ID       string `yaml:"id"`
	MinCount int    `yaml:"min_count,omitempty"` // 0 and 1 both mean "at least one"
	At       Pos    `yaml:"-"`
}

// Protect says how the protect action transforms a file.
type Protect struct {
	Label   string `yaml:"label,omitempty"`
	Encrypt bool   `yaml:"encrypt,omitempty"`
	// Unsupported is what happens to files that cannot be protected (types
	// other than PDF and OOXML, encrypted or malformed files): block (the
	// default) or allow. Either way the outcome is logged.
	Unsupported Action `yaml:"unsupported,omitempty"`
	At          Pos    `yaml:"-"`
}

func (p Protect) IsZero() bool { return p.Label == "" && !p.Encrypt && p.Unsupported == ActionUnset }

// UnsupportedAction is Unsupported with its default applied.
func (p *Protect) UnsupportedAction() Action {
	if p.Unsupported == ActionAllow {
		return ActionAllow
	}
	return ActionBlock
}
