package appliance

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/portcullis-gw/portcullis/appliance/activity"
	"github.com/portcullis-gw/portcullis/policy"
)

// policyAlert is one matched policy that asked for an alert.
type policyAlert struct {
	Time     time.Time
	PolicyID string
	Severity policy.Severity
	User     string
	App      string
	Host     string
	Activity string
	Action   string
	Message  string
}

// alerter takes alerts off the request path: decisions offer them to a
// bounded queue and one goroutine records and forwards them. A full queue
// drops the alert and counts it; the request is never slowed by alerting.
type alerter struct {
	ch      chan policyAlert
	raise   func(policyAlert)
	dropped atomic.Uint64
	raised  atomic.Uint64
	done    chan struct{}
	once    sync.Once
}

func newAlerter(raise func(policyAlert)) *alerter {
	a := &alerter{ch: make(chan policyAlert, 1024), raise: raise, done: make(chan struct{})}
	go func() {
		defer close(a.done)
		for pa := range a.ch {
			a.raise(pa)
			a.raised.Add(1)
		}
	}()
	return a
}

func (a *alerter) offer(pa policyAlert) {
	if a == nil {
		return
	}
	defer func() { _ = recover() }() // offered after close: dropped
	select {
	case a.ch <- pa:
	default:
		a.dropped.Add(1)
	}
}

// close drains what is queued and stops.
func (a *alerter) close() {
	if a == nil {
		return
	}
	a.once.Do(func() { close(a.ch) })
	<-a.done
}

// alertsOf offers one alert per matched policy that asks for one.
func (a *alerter) alertsOf(matches []policy.Match, app *policy.App, subj policy.Subject, host, activity string) {
	if a == nil {
		return
	}
	for _, m := range matches {
		if m.Policy == nil || !m.Policy.Alert {
			continue
		}
		pa := policyAlert{Time: time.Now(), PolicyID: m.Policy.ID, Severity: m.Policy.Severity, User: subj.User,
			Host: host, Activity: activity, Action: m.Action.String(), Message: m.Policy.Message}
		if app != nil {
			pa.App = app.ID
		}
		a.offer(pa)
	}
}

// raiseAlert records a policy alert (at most activity.alert_daily_limit per
// policy and day; the rest are counted as suppressed) and, when it was
// raised, sends the SNMP notification. The syslog exporter delivers the
// alert record itself.
func (a *Appliance) raiseAlert(pa policyAlert) {
	sev := pa.Severity.String()
	if pa.Severity == policy.SeverityUnset {
		sev = activity.SeverityMedium
	}
	raised, err := a.activity.store.RaiseAlert(activity.Alert{Time: pa.Time, PolicyID: pa.PolicyID, Severity: sev,
		User: pa.User, App: pa.App, Host: pa.Host, Activity: pa.Activity, Message: pa.Message}, a.alertDailyLimit())
	if err != nil {
		a.log.Warn("alert not recorded", "policy", pa.PolicyID, "err", err)
		return
	}
	if raised {
		a.notifyAlert(pa.PolicyID, pa.Severity, pa.User, pa.App, pa.Message)
	}
}
