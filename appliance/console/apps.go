package console

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/portcullis-gw/portcullis/policy"
)

// The apps page: the catalog the engine runs with (built-in apps, the
// policy directory's own, custom domains added to either), onboarding a
// custom app, and the domains the suffix proxy saw in apps' responses that
// belong to no app, each with "add to app". Every change goes through the
// pending-changes tray into one console-owned file of the policy
// directory, consoleAppsFile.

// consoleAppsFile is where the console writes apps and custom domains. The
// console rewrites it whole (canonical YAML); hand edits keep working but
// lose their comments when the console next changes it.
const consoleAppsFile = "console-apps.yaml"

const appsFileHeader = "# Apps and custom domains onboarded from the console. The console rewrites\n" +
	"# this file (canonical YAML): keep hand-written apps in another file.\n"

// ErrBadApp: an onboarding form that cannot become an app.
var ErrBadApp = errors.New("bad app")

// DiscoveredDomain is a domain the proxy saw in an app's responses that no
// onboarded app serves (the appliance's GET /discovered, given to the
// console by Options.Discovered).
type DiscoveredDomain struct {
	Host      string    `json:"host"`
	FirstSeen time.Time `json:"first_seen"`
	LastSeen  time.Time `json:"last_seen"`
	Seen      uint64    `json:"seen"`
	Via       string    `json:"via"`
}

// AppForm is a custom app to onboard.
type AppForm struct {
	ID         string         `json:"id"`
	Name       string         `json:"name,omitempty"`
	Domains    []string       `json:"domains"`
	Activities []ActivityForm `json:"activities,omitempty"`
}

// ActivityForm is one activity of an app to onboard.
type ActivityForm struct {
	ID     string `json:"id"`
	Name   string `json:"name,omitempty"`
	Method string `json:"method,omitempty"`
	Path   string `json:"path"`
	Kind   string `json:"kind,omitempty"` // download, upload or empty
}

// AppRow is one app of the catalog.
type AppRow struct {
	ID         string   `json:"id"`
	Name       string   `json:"name,omitempty"`
	Source     string   `json:"source"` // built-in, custom
	Where      string   `json:"where,omitempty"`
	Domains    []string `json:"domains"`
	Activities []string `json:"activities,omitempty"`
	Policies   int      `json:"policies"` // policies naming it in filters.apps
}

// AppsView is the apps page's and GET /api/v1/apps' data.
type AppsView struct {
	Apps       []AppRow           `json:"apps"`
	Discovered []DiscoveredDomain `json:"discovered"`
	// DiscoveryOff: the appliance gives the console no discovered domains
	// (no suffix proxy).
	DiscoveryOff bool      `json:"discovery_off,omitempty"`
	Problems     []Problem `json:"problems,omitempty"`
	File         string    `json:"file"`
}

func (c *Console) appsView() (*AppsView, error) {
	av := &AppsView{File: consoleAppsFile, Discovered: []DiscoveredDomain{}}
	files, _, err := c.policyFiles()
	if err != nil && !errors.Is(err, ErrNoPolicyDir) {
		return nil, err
	}
	set, _ := parseSet(files)
	if set == nil {
		set = &policy.PolicySet{}
	}
	e, err := policy.Compile(set)
	if err != nil {
		av.Problems = problemsOf(err)
		if e, err = policy.Compile(&policy.PolicySet{}); err != nil {
			return nil, err
		}
	}
	own := map[string]policy.Pos{}
	for _, a := range set.Apps {
		own[a.ID] = a.At
	}
	uses := map[string]int{}
	count := func(f *policy.Filters) {
		for _, id := range f.Apps.AnyOf {
			uses[id]++
		}
	}
	for i := range set.AccessPolicies {
		count(&set.AccessPolicies[i].Filters)
	}
	for i := range set.SessionPolicies {
		count(&set.SessionPolicies[i].Filters)
	}
	for _, a := range e.Apps() {
		row := AppRow{ID: a.ID, Name: a.Name, Source: "built-in", Domains: a.Domains, Policies: uses[a.ID]}
		if at, ok := own[a.ID]; ok {
			row.Source, row.Where = "custom", fmt.Sprintf("%s:%d", at.File, at.Line)
		}
		for _, act := range a.Activities {
			row.Activities = append(row.Activities, act.ID)
		}
		av.Apps = append(av.Apps, row)
	}
	if c.opt.Discovered == nil {
		av.DiscoveryOff = true
		return av, nil
	}
	for _, d := range c.opt.Discovered() {
		if e.App(d.Host) == nil {
			av.Discovered = append(av.Discovered, d)
		}
	}
	slices.SortStableFunc(av.Discovered, func(a, b DiscoveredDomain) int { return b.LastSeen.Compare(a.LastSeen) })
	return av, nil
}

// applyAppChange edits the console's apps file for app_add and app_domain.
func (c *Console) applyAppChange(ch Change, before []byte, note func(string) string) ([]byte, string, error) {
	set := &policy.PolicySet{}
	if before != nil {
		s, err := policy.Parse(ch.File, before)
		if err != nil {
			return nil, "", fmt.Errorf("%w: %s does not parse, fix it in the editor first: %v", ErrCannotEdit, ch.File, err)
		}
		set = s
	}
	var summary string
	switch ch.Kind {
	case ChangeAppAdd:
		a, err := ch.App.app()
		if err != nil {
			return nil, "", err
		}
		set.Apps = append(set.Apps, a)
		summary = fmt.Sprintf("added app %s (%s)", a.ID, strings.Join(a.Domains, ", "))
	case ChangeAppDomain:
		d := strings.ToLower(strings.TrimSuffix(strings.TrimSpace(ch.Domain), "."))
		if d == "" || ch.AppID == "" {
			return nil, "", fmt.Errorf("%w: name the app and the domain", ErrBadApp)
		}
		i := slices.IndexFunc(set.CustomDomains, func(cd policy.CustomDomains) bool { return cd.App == ch.AppID })
		if i < 0 {
			set.CustomDomains = append(set.CustomDomains, policy.CustomDomains{App: ch.AppID})
			i = len(set.CustomDomains) - 1
		}
		if slices.Contains(set.CustomDomains[i].Domains, d) {
			return nil, "", fmt.Errorf("%w: %s is already a domain of %s", ErrBadApp, d, ch.AppID)
		}
		set.CustomDomains[i].Domains = append(set.CustomDomains[i].Domains, d)
		summary = fmt.Sprintf("app %s: domain %s added", ch.AppID, d)
	}
	out, err := policy.Marshal(set)
	if err != nil {
		return nil, "", fmt.Errorf("%w: %v", ErrBadApp, err)
	}
	return append([]byte(appsFileHeader), out...), note(summary), nil
}

// app is the form as a catalog entry; the compiler checks the rest (ids,
// domains, paths) when the tray validates the directory.
func (f *AppForm) app() (policy.App, error) {
	if f == nil || strings.TrimSpace(f.ID) == "" {
		return policy.App{}, fmt.Errorf("%w: the app needs an id", ErrBadApp)
	}
	a := policy.App{ID: strings.TrimSpace(f.ID), Name: strings.TrimSpace(f.Name)}
	for _, d := range f.Domains {
		if d = strings.TrimSpace(d); d != "" {
			a.Domains = append(a.Domains, strings.ToLower(d))
		}
	}
	if len(a.Domains) == 0 {
		return a, fmt.Errorf("%w: app %s needs at least one domain", ErrBadApp, a.ID)
	}
	for _, act := range f.Activities {
		a.Activities = append(a.Activities, policy.Activity{ID: strings.TrimSpace(act.ID), Name: strings.TrimSpace(act.Name),
			Method: strings.ToUpper(strings.TrimSpace(act.Method)), Path: strings.TrimSpace(act.Path), Kind: strings.TrimSpace(act.Kind)})
	}
	return a, nil
}

// appFormOf reads the onboarding form: domains separated by commas or
// spaces, one activity per line as "id METHOD /path [download|upload]"
// (METHOD may be * for any).
func appFormOf(r *http.Request) *AppForm {
	f := &AppForm{ID: r.PostFormValue("id"), Name: r.PostFormValue("name")}
	f.Domains = strings.FieldsFunc(r.PostFormValue("domains"), func(r rune) bool { return r == ',' || r == ' ' || r == '\n' || r == '\r' || r == '\t' })
	for _, line := range strings.Split(r.PostFormValue("activities"), "\n") {
		w := strings.Fields(line)
		if len(w) == 0 {
			continue
		}
		a := ActivityForm{ID: w[0]}
		if len(w) > 1 && w[1] != "*" {
			a.Method = w[1]
		}
		if len(w) > 2 {
			a.Path = w[2]
		}
		if len(w) > 3 {
			a.Kind = w[3]
		}
		f.Activities = append(f.Activities, a)
	}
	return f
}

func (c *Console) apiApps(w http.ResponseWriter, _ *http.Request, _ *session) {
	av, err := c.appsView()
	if err != nil {
		apiError(w, statusOf(err), err.Error())
		return
	}
	writeJSON(w, http.StatusOK, av)
}

func (c *Console) appsPage(w http.ResponseWriter, r *http.Request, s *session) {
	av, err := c.appsView()
	var msg string
	if err != nil {
		msg, av = err.Error(), &AppsView{}
	}
	c.render(w, r, s, "apps", view{Title: "Apps", Nav: "apps", Error: msg, Flash: flashOf(r), D: av})
}
