package policy

import "github.com/portcullis-gw/portcullis/policy/dlp"

// Engine is a compiled policy set. It is immutable and safe for concurrent
// use; on reload the caller compiles a new one and swaps an
// atomic.Pointer[Engine], so a request sees one whole set or the other.
type Engine struct {
	settings  effectiveSettings
	apps      []*appEntry
	appByID   map[string]int32
	hosts     hostIndex
	actByName map[string]int32 // activity name -> number (builtins 1..5 first)
	actNames  []string
	access    []accessPolicy
	session   []sessionPolicy
	// Candidate policies per app index, in file order: only these are
	// evaluated for a request, which keeps 1,000 policies under the 2 µs
	// budget (most policies name one or a few apps).
	accessByApp  [][]int32
	sessionByApp [][]int32
	detectors    *dlp.Set
	set          *PolicySet // the source, for explanations
}

type effectiveSettings struct {
	inspectionFailure, inspectionTimeout, oversize Action
	maxInspectionSize                              int64
	blockMessage                                   string
}

// DefaultMaxInspectionSize is the inspection size limit when the settings
// give none (50 MiB, the figure Defender for Cloud Apps uses); larger
// files get the oversize_file action.
const DefaultMaxInspectionSize = 50 << 20

// DefaultBlockMessage is shown when a blocking policy has no message.
const DefaultBlockMessage = "This action was blocked by your organisation's security policy."

// appEntry is a catalog app as compiled.
type appEntry struct {
	app        App // with admin custom domains appended
	activities []activityMatcher
}

type activityMatcher struct {
	num    int32
	def    *Activity
	method string
	host   *DomainSet // nil: any of the app's hosts
	path   pathPattern
}

type accessPolicy struct {
	info PolicyInfo
	f    filters
}

type sessionPolicy struct {
	info       PolicyInfo
	f          filters
	activities []int32 // block_activities: activity numbers
	files      fileFilter
	content    contentFilter
}

// PolicyInfo is what a decision tells about a matching policy.
type PolicyInfo struct {
	ID                 string
	Name               string
	Session            bool    // a session policy (else access)
	Control            Control // session policies
	Action             Action
	Message            string
	Severity           Severity
	Alert              bool
	Protect            Protect
	Malware            bool
	Notice             bool
	ApplyIfUnscannable bool
	At                 Pos
	index              int
	// the source, for explanations
	filters    *Filters
	activities *Names
	files      *FileFilter
	content    *ContentFilter
}

// MaxInspectionSize is the inspection size limit from the settings.
func (e *Engine) MaxInspectionSize() int64 { return e.settings.maxInspectionSize }

// App returns the catalog app serving host, or nil.
func (e *Engine) App(host string) *App {
	if i := e.hosts.lookup(host); i >= 0 {
		return &e.apps[i].app
	}
	return nil
}

// Apps lists the catalog (built-in plus the set's apps) in id order.
func (e *Engine) Apps() []*App {
	out := make([]*App, len(e.apps))
	for i, a := range e.apps {
		out[i] = &a.app
	}
	return out
}

// Activity resolves a request to its app and catalog activity (either may
// be nil). Activities that match on body fields never match here; use
// ResolveActivity with the body.
func (e *Engine) Activity(method, host, path string) (*App, *Activity) {
	return e.ResolveActivity(method, host, path, nil)
}

// ResolveActivity is Activity with access to body fields. The first
// activity of the app (catalog order) that matches wins.
func (e *Engine) ResolveActivity(method, host, path string, body FieldGetter) (*App, *Activity) {
	ai := e.hosts.lookup(host)
	if ai < 0 {
		return nil, nil
	}
	a := e.apps[ai]
	if m := a.resolve(method, normHost(host), path, body); m != nil {
		return &a.app, m.def
	}
	return &a.app, nil
}

func (a *appEntry) resolve(method, host, path string, body FieldGetter) *activityMatcher {
	for i := range a.activities {
		m := &a.activities[i]
		if m.method != "" && m.method != method {
			continue
		}
		if m.host != nil && !m.host.Match(host) {
			continue
		}
		if !m.path.match(path) {
			continue
		}
		if len(m.def.Match) > 0 && !fieldsMatch(m.def.Match, body) {
			continue
		}
		return m
	}
	return nil
}

func fieldsMatch(ms []FieldMatch, body FieldGetter) bool {
	if body == nil {
		return false
	}
	for _, fm := range ms {
		v, ok := body.Field(fm.Field)
		if !ok || fm.Equals != "" && v != fm.Equals {
			return false
		}
	}
	return true
}
