package console

import (
	"net/http"
	"slices"
)

// Component is one part of the appliance on the dashboard's health panel:
// the datapath, inspection, the malware scanner, the event store, each
// exporter, SNMP. State is "ok", "warn" (working, but something needs a
// look: fail-opens, scan errors, an exporter behind), "fail" (not doing its
// job) or "off" (not configured).
type Component struct {
	Name    string    `json:"name"`
	State   string    `json:"state"`
	Summary string    `json:"summary"`
	Counts  []Counter `json:"counts,omitempty"`
}

// Counter is a named count since the appliance started (or, for an
// exporter, a current figure such as the events still to deliver).
type Counter struct {
	Name  string `json:"name"`
	Value uint64 `json:"value"`
}

// componentStates orders the states from the worst.
var componentStates = []string{"fail", "warn", "ok", "off"}

// healthView is the panel: the components and the worst state among them.
type healthView struct {
	Components []Component
	Worst      string
}

func (c *Console) health() healthView {
	v := healthView{Worst: "ok"}
	if c.opt.Components == nil {
		return v
	}
	v.Components = c.opt.Components()
	for _, comp := range v.Components {
		if slices.Index(componentStates, comp.State) < slices.Index(componentStates, v.Worst) && comp.State != "off" {
			v.Worst = comp.State
		}
	}
	return v
}

// dashboardHealth is the health panel alone, which the dashboard loads and
// refreshes every few seconds.
func (c *Console) dashboardHealth(w http.ResponseWriter, r *http.Request, s *session) {
	c.render(w, r, s, "dashboard#health", view{D: c.health()})
}

// apiHealth is the same panel as JSON.
func (c *Console) apiHealth(w http.ResponseWriter, _ *http.Request, _ *session) {
	h := c.health()
	comps := h.Components
	if comps == nil {
		comps = []Component{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"worst": h.Worst, "components": comps})
}
