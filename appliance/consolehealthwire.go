package appliance

import (
	"fmt"
	"time"

	"github.com/portcullis-gw/portcullis/appliance/console"
)

// consoleComponents is the dashboard's health panel: the state of every
// part of the appliance from its own counters, as Prometheus and SNMP
// export them.
func (a *Appliance) consoleComponents() []console.Component {
	var out []console.Component
	var failOpen uint64

	dp := console.Component{Name: "Datapath", State: "off", Summary: "not attached: traffic is not steered to the proxy"}
	if a.datapath != nil {
		att := a.datapath.Attachment()
		c, err := a.datapath.Counters()
		if err != nil {
			dp.State, dp.Summary = "fail", "attached to "+att.Interface+", counters unreadable: "+err.Error()
		} else {
			failOpen += c.NoListenerPassed + c.OrphanPassed
			dp.State = "ok"
			mode := map[bool]string{true: "fail open", false: "fail closed"}[a.cfg.Datapath.FailOpen]
			dp.Summary = fmt.Sprintf("attached to %s (%s), %s", att.Interface, att.Mode, mode)
			if c.AssignErrors > 0 || c.NoListenerPassed+c.OrphanPassed+c.NoListenerRefused+c.OrphanRefused > 0 {
				dp.State = "warn"
				dp.Summary += "; some traffic met no listener or could not be assigned"
			}
			dp.Counts = []console.Counter{cnt("steered flows", c.Steered), cnt("bypassed packets", c.Bypassed),
				cnt("forwarded, no listener (fail open)", c.NoListenerPassed+c.OrphanPassed),
				cnt("refused, no listener (fail closed)", c.NoListenerRefused+c.OrphanRefused),
				cnt("QUIC dropped", c.QUICDropped), cnt("malformed", c.Malformed), cnt("assign errors", c.AssignErrors)}
			if !att.Steering.CountsPackets() {
				// Route steering counts connections only (agent.Counters).
				dp.Summary = fmt.Sprintf("attached to %s (route steering), %s", att.Interface, mode)
				dp.Counts = []console.Counter{cnt("steered flows", c.Steered),
					cnt("refused, no listener (fail closed)", c.NoListenerRefused), cnt("assign errors", c.AssignErrors)}
			}
		}
	}
	out = append(out, dp)

	if st := a.proxy.SessionStats(); st != nil {
		failOpen += st.FailOpen.Load()
		insp := console.Component{Name: "Inspection", State: "ok", Summary: "session policies enforced; content inspected as it streams",
			Counts: []console.Counter{cnt("decided", st.Decided.Load()), cnt("inspected", st.Inspected.Load()), cnt("held until decided", st.Held.Load()),
				cnt("blocked", st.Blocked.Load()), cnt("protected", st.Protected.Load()), cnt("too large", st.TooLarge.Load()),
				cnt("failed", st.Failed.Load()), cnt("timed out", st.Timeouts.Load()), cnt("failed closed", st.FailClosed.Load()),
				cnt("failed open", st.FailOpen.Load())}}
		if st.Failed.Load()+st.Timeouts.Load()+st.FailOpen.Load() > 0 {
			insp.State, insp.Summary = "warn", "some inspections failed or timed out; see the counts"
		}
		out = append(out, insp)
		scan := console.Component{Name: "Malware scanner", State: "off", Summary: "no scanner configured: malware policies are refused"}
		if m := a.cfg.Session.Malware; m.Clamd.Address != "" || m.ICAP.URL != "" {
			var names []string
			if m.Clamd.Address != "" {
				names = append(names, "clamd "+m.Clamd.Address)
			}
			if m.ICAP.URL != "" {
				names = append(names, "ICAP "+m.ICAP.URL)
			}
			scan.State, scan.Summary = "ok", fmt.Sprint(names)
			if st.ScanErrors.Load() > 0 {
				scan.State, scan.Summary = "warn", scan.Summary+": some scans failed"
			}
			scan.Counts = []console.Counter{cnt("infected", st.Infected.Load()), cnt("scan errors", st.ScanErrors.Load()), cnt("answered from cache", st.ScanCached.Load())}
		}
		out = append(out, scan)
	}

	fo := console.Component{Name: "Fail-open", State: "ok", Summary: "nothing passed uninspected since start", Counts: []console.Counter{cnt("fail-opens", failOpen)}}
	if failOpen > 0 {
		fo.State, fo.Summary = "warn", fmt.Sprintf("%d requests or packets passed uninspected since start (by the fail mode an admin chose)", failOpen)
	}
	out = append(out, fo)

	if a.activity != nil {
		st := a.activity.store.Stats()
		es := console.Component{Name: "Event store", State: "ok",
			Summary: fmt.Sprintf("committing; last group %d ms after its first event", st.LastCommitLag.Milliseconds()),
			Counts: []console.Counter{cnt("written", st.Written), cnt("queued", uint64(max(st.QueueDepth, 0))), cnt("dropped", st.Dropped),
				cnt("refused", st.Refused), cnt("lost", st.Lost), cnt("write errors", st.WriteErrors)}}
		switch {
		case !st.Healthy:
			es.State, es.Summary = "fail", fmt.Sprint("not committing: ", a.activity.store.LastError())
		case st.Dropped+st.Lost > 0:
			es.State, es.Summary = "warn", "events were dropped or lost since start"
		}
		out = append(out, es)

		sinks, err := a.activity.store.SinkStates(a.exporters.names()...)
		if err != nil {
			out = append(out, console.Component{Name: "Exporters", State: "fail", Summary: err.Error()})
		}
		for _, s := range sinks {
			c := console.Component{Name: "Exporter " + s.Name, State: "ok", Summary: "delivering",
				Counts: []console.Counter{cnt("events to deliver", uint64(s.Behind)), cnt("failed attempts", s.Failures)}}
			switch {
			case s.Failing:
				c.State, c.Summary = "fail", "failing since "+s.ErrorAt.UTC().Format(time.TimeOnly)+": "+s.LastError
			case s.Behind > 1000:
				c.State, c.Summary = "warn", fmt.Sprintf("%d events behind", s.Behind)
			case !s.LastDelivery.IsZero():
				c.Summary = "last delivery " + s.LastDelivery.UTC().Format(time.TimeOnly)
			}
			out = append(out, c)
		}
	}

	sn := console.Component{Name: "SNMP", State: "off", Summary: "no AgentX socket configured"}
	if a.snmp != nil {
		ok, lastErr, at := a.snmp.sub.State()
		switch {
		case ok:
			sn.State, sn.Summary = "ok", "registered with snmpd at "+a.cfg.SNMP.AgentXSocket
		case lastErr != "":
			sn.State, sn.Summary = "fail", "not connected to snmpd since "+at.UTC().Format(time.TimeOnly)+": "+lastErr
		default:
			sn.State, sn.Summary = "fail", "not connected to snmpd at "+a.cfg.SNMP.AgentXSocket
		}
	}
	out = append(out, sn)
	return out
}

func cnt(name string, v uint64) console.Counter { return console.Counter{Name: name, Value: v} }
