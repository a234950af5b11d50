package policy

// Access decides a connection. It allocates the decision; the proxy's hot
// path uses AccessInto with a reused decision instead.
func (e *Engine) Access(req *AccessRequest) AccessDecision {
	var d AccessDecision
	e.AccessInto(req, &d)
	return d
}

// AccessInto decides a connection into d, reusing d.Matches: with a
// decision kept per worker it does not allocate.
func (e *Engine) AccessInto(req *AccessRequest, d *AccessDecision) {
	d.Reset()
	ai := e.hosts.lookup(req.Host)
	if ai < 0 {
		// Not onboarded: the appliance is not in this app's business.
		return
	}
	d.App = &e.apps[ai].app
	native := req.ClientApp == ClientMobileDesktop
	explicit := false
	for _, k := range e.accessByApp[ai] {
		p := &e.access[k]
		if !p.f.match(&req.Subject) {
			continue
		}
		explicit = explicit || p.f.explicitNative
		d.add(&p.info, p.info.Action, CauseFilters)
	}
	if native && !explicit {
		// A session policy that names native clients must see their
		// requests: intercept them for this app, whatever else that policy
		// filters on (the user, for one, is only known per request).
		for _, k := range e.sessionByApp[ai] {
			if e.session[k].f.explicitNative {
				explicit = true
				break
			}
		}
	}
	d.Intercept = !native || explicit
	e.finish(&d.decision)
}

// finish fills the message of a blocking decision.
func (e *Engine) finish(d *decision) {
	if d.Action == ActionBlock {
		d.Message = e.settings.blockMessage
		if w := d.WinningPolicy(); w != nil && w.Message != "" {
			d.Message = w.Message
		}
	} else if w := d.WinningPolicy(); w != nil {
		d.Message = w.Message
	}
}
