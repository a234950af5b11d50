package console

import (
	"net/http"
	"time"

	"github.com/portcullis-gw/portcullis/policy"
)

// The policies page: every policy in evaluation order with its switches
// (enabled, monitor-only), hit counts and last hit from the activity
// store, the lint findings, and what is pending in the tray for it.

// hitWindow is the window of the hit counts.
const hitWindow = 7 * 24 * time.Hour

// PolicyOverviewRow is one policy of the list.
type PolicyOverviewRow struct {
	PolicyRow
	// MonitorOnly: the monitor-only switch is on; OriginalAction is what
	// the policy does when it is turned off.
	MonitorOnly    bool   `json:"monitor_only"`
	OriginalAction string `json:"original_action,omitempty"`
	// CanMonitorOnly: the switch applies (the policy does more than
	// monitor, or is monitor-only now).
	CanMonitorOnly bool     `json:"can_monitor_only"`
	Pending        []string `json:"pending,omitempty"` // summaries of staged changes to it
}

// PolicyOverview is GET /api/v1/policies.
type PolicyOverview struct {
	Dir      string              `json:"dir"`
	Files    []PolicyFileInfo    `json:"files"`
	Access   []PolicyOverviewRow `json:"access_policies"`
	Session  []PolicyOverviewRow `json:"session_policies"`
	Problems []Problem           `json:"problems,omitempty"`
	// HitsSince is the start of the hit counts' window.
	HitsSince time.Time `json:"hits_since"`
	Pending   int       `json:"pending_changes"`
	// Sections are the two tables of the page.
	Sections []policySection `json:"-"`
}

type policySection struct {
	Title, HID, Hint string
	Rows             []PolicyOverviewRow
}

func (c *Console) policyOverview() (*PolicyOverview, error) {
	files, names, err := c.policyFiles()
	if err != nil {
		return nil, err
	}
	since := c.opt.Now().Add(-hitWindow).UTC()
	ov := &PolicyOverview{Dir: c.opt.PolicyDir, HitsSince: since}
	for _, n := range names {
		ov.Files = append(ov.Files, PolicyFileInfo{Name: n, SHA256: digest(files[n]), Size: len(files[n]), Editable: fileNamePattern.MatchString(n)})
	}
	set, problems := c.validate(files)
	ov.Problems = problems
	if set == nil {
		return ov, nil
	}
	mem := c.monitorMemories()
	pending := map[string][]string{}
	if tv, err := c.trayView(); err == nil {
		ov.Pending = len(tv.Changes)
		for _, ch := range tv.Changes {
			if ch.Policy != "" {
				pending[ch.Policy] = append(pending[ch.Policy], ch.Summary)
			}
		}
	}
	row := func(order int, kind, id, name string, control policy.Control, action policy.Action, disabled bool, at policy.Pos) PolicyOverviewRow {
		r := PolicyOverviewRow{PolicyRow: PolicyRow{Order: order, Kind: kind, ID: id, Name: name, Action: action.String(),
			Disabled: disabled, File: at.File, Line: at.Line}, Pending: pending[id]}
		if kind == "session" {
			r.Control = control.String()
		}
		if m, ok := mem[id]; ok && action == policy.ActionMonitor {
			r.MonitorOnly, r.OriginalAction = true, m.Action
		}
		r.CanMonitorOnly = r.MonitorOnly || action != policy.ActionMonitor && action != policy.ActionUnset
		return r
	}
	var ids []string
	for i, p := range set.AccessPolicies {
		ov.Access = append(ov.Access, row(i+1, "access", p.ID, p.Name, policy.ControlUnset, p.Action, p.Disabled, p.At))
		ids = append(ids, p.ID)
	}
	for i, p := range set.SessionPolicies {
		ov.Session = append(ov.Session, row(i+1, "session", p.ID, p.Name, p.Control, p.Action, p.Disabled, p.At))
		ids = append(ids, p.ID)
	}
	if c.opt.Activity != nil {
		hits, err := c.opt.Activity.PolicyHits(ids, since)
		if err != nil {
			return nil, err
		}
		for _, rows := range [][]PolicyOverviewRow{ov.Access, ov.Session} {
			for i := range rows {
				h := hits[rows[i].ID]
				rows[i].Hits, rows[i].LastHit = h.Count, h.LastHit
			}
		}
	}
	ov.Sections = []policySection{{"Access policies", "ap-h", "per connection, in evaluation order", ov.Access},
		{"Session policies", "sp-h", "per request, in evaluation order", ov.Session}}
	return ov, nil
}

func (c *Console) apiPolicyOverview(w http.ResponseWriter, _ *http.Request, _ *session) {
	ov, err := c.policyOverview()
	if err != nil {
		apiError(w, statusOf(err), err.Error())
		return
	}
	writeJSON(w, http.StatusOK, ov)
}

func (c *Console) policyListPage(w http.ResponseWriter, r *http.Request, s *session) {
	ov, err := c.policyOverview()
	var msg string
	if err != nil {
		msg, ov = err.Error(), &PolicyOverview{}
	}
	c.render(w, r, s, "policylist", view{Title: "Policies", Nav: "policies", Error: msg, Flash: flashOf(r), D: ov})
}
