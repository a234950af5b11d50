package console

import (
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"time"

	"github.com/portcullis-gw/portcullis/appliance/activity"
)

func (c *Console) dashboardPage(w http.ResponseWriter, r *http.Request, s *session) {
	d, err := c.dashboard(r.URL.Query().Get("range"))
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	c.render(w, r, s, "dashboard", view{Title: "Dashboard", Nav: "dashboard", D: dashView{Dashboard: d, Ranges: rangeNames()}})
}

// dashboardLive is the part of the dashboard htmx refreshes.
func (c *Console) dashboardLive(w http.ResponseWriter, r *http.Request, s *session) {
	d, err := c.dashboard(r.URL.Query().Get("range"))
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	c.render(w, r, s, "dashboard#live", view{D: dashView{Dashboard: d}})
}

type dashView struct {
	*Dashboard
	Ranges []string
}

func rangeNames() []string {
	var out []string
	for _, r := range dashboardRanges {
		out = append(out, r.Name)
	}
	return out
}

func (c *Console) apiDashboard(w http.ResponseWriter, r *http.Request, _ *session) {
	d, err := c.dashboard(r.URL.Query().Get("range"))
	if err != nil {
		apiError(w, http.StatusInternalServerError, err.Error())
		return
	}
	writeJSON(w, http.StatusOK, d)
}

type activityView struct {
	Query   url.Values
	Links   searchLinks
	Filters []activeFilter
	Events  []activity.Event
	Next    string
	Took    string
	Since   string
	Ranges  []string
	Actions []string
	// Saved are the account's saved searches; Encoded is this search's
	// parameters, for saving it and for the live tail.
	Saved   []SavedSearch
	Encoded string
}

type activeFilter struct {
	Param, Label, Value string
	Remove              string
	Not                 bool // an exclusion (not_<param>)
}

func (c *Console) activityPage(w http.ResponseWriter, r *http.Request, s *session) {
	v := r.URL.Query()
	if !v.Has("since") && !v.Has("from") && !v.Has("to") {
		v.Set("since", "24h")
	}
	av := activityView{Query: v, Links: searchLinks{v}, Since: v.Get("since"), Saved: c.searches.of(s.User),
		Ranges:  []string{"15m", "1h", "24h", "7d", "30d"},
		Actions: []string{"allow", "monitor", "protect", "require_step_up", "block", "bypass"}}
	if !slices.Contains(av.Ranges, av.Since) {
		// Only the offered ranges are echoed into the page's own links.
		av.Since = ""
	}
	for _, f := range eventFilters {
		for _, val := range nonEmpty(v[f.Param]) {
			av.Filters = append(av.Filters, activeFilter{Param: f.Param, Label: f.Label, Value: val, Remove: av.Links.WithoutValue(f.Param, val)})
		}
		for _, val := range nonEmpty(v["not_"+f.Param]) {
			av.Filters = append(av.Filters, activeFilter{Param: "not_" + f.Param, Label: f.Label, Value: val, Not: true,
				Remove: av.Links.WithoutValue("not_"+f.Param, val)})
		}
	}
	if enc, err := c.cleanSearchQuery(v.Encode()); err == nil {
		av.Encoded = enc
	}
	q, err := parseEventQuery(v, c.opt.Now())
	status := http.StatusOK
	var errMsg string
	if err == nil {
		start := time.Now()
		var p activity.Page
		p, err = c.opt.Activity.Search(q)
		av.Took = time.Since(start).Round(100 * time.Microsecond).String()
		av.Events, av.Next = p.Events, p.Next
	}
	if err != nil {
		status, errMsg = http.StatusBadRequest, err.Error()
	}
	w.WriteHeader(status)
	c.render(w, r, s, "activity", view{Title: "Activity", Nav: "activity", Error: errMsg, D: av})
}

type drawerView struct {
	E     *activity.Event
	Links searchLinks
}

func (c *Console) eventDrawer(w http.ResponseWriter, r *http.Request, s *session) {
	v := r.URL.Query()
	ts, err1 := strconv.ParseInt(v.Get("ts"), 10, 64)
	seq, err2 := strconv.ParseInt(v.Get("seq"), 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		http.Error(w, "ts and seq: numbers", http.StatusBadRequest)
		return
	}
	ev, err := c.findEvent(time.Unix(0, ts), seq)
	if err != nil {
		http.Error(w, err.Error(), http.StatusNotFound)
		return
	}
	c.render(w, r, s, "activity#drawer", view{D: drawerView{E: ev, Links: searchLinks{drawerSearch(v)}}})
}

type editView struct {
	File    string
	New     bool
	Content string
	SHA256  string
	Dir     string
}

const newPolicyTemplate = `# Policies in this file are evaluated after those of files whose names sort
# before it. Validation runs as you type; Dry run replays recent events.
session_policies:
  - id: my-policy
    filters:
      apps: [origin-lab]
    control: block_activities
    activities: [download_file]
    action: monitor
`

func (c *Console) policyEditPage(w http.ResponseWriter, r *http.Request, s *session) {
	name := r.URL.Query().Get("file")
	ev := editView{File: name, Dir: c.opt.PolicyDir}
	files, _, err := c.policyFiles()
	if err != nil {
		c.render(w, r, s, "edit", view{Title: "Edit policies", Nav: "policies", Error: err.Error(), D: ev})
		return
	}
	if name == "" {
		ev.New, ev.Content = true, newPolicyTemplate
	} else if !fileNamePattern.MatchString(name) {
		w.WriteHeader(http.StatusBadRequest)
		c.render(w, r, s, "edit", view{Title: "Edit policies", Nav: "policies", Error: ErrBadFileName.Error(), D: ev})
		return
	} else if b, ok := files[name]; ok {
		ev.Content, ev.SHA256 = string(b), digest(b)
	} else {
		ev.New, ev.Content = true, newPolicyTemplate
	}
	c.render(w, r, s, "edit", view{Title: "Edit " + name, Nav: "policies", D: ev})
}

func (c *Console) revisionsPage(w http.ResponseWriter, r *http.Request, s *session) {
	revs, err := c.revs.list(r.URL.Query().Get("file"), 100)
	var msg string
	if err != nil {
		msg = err.Error()
	}
	c.render(w, r, s, "revisions", view{Title: "Policy revisions", Nav: "policies", Error: msg, D: revs})
}

type auditView struct {
	Entries []AuditEntry
	Actor   string
	Action  string
}

func (c *Console) auditPage(w http.ResponseWriter, r *http.Request, s *session) {
	v := r.URL.Query()
	av := auditView{Actor: v.Get("actor"), Action: v.Get("action")}
	es, err := c.audit.search(AuditQuery{Actor: av.Actor, Action: av.Action, Limit: 500})
	var msg string
	if err != nil {
		msg = err.Error()
	}
	av.Entries = es
	c.render(w, r, s, "audit", view{Title: "Admin audit log", Nav: "audit", Error: msg, D: av})
}
