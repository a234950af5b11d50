package policy

// Session decides one request or activity. It allocates the decision; the
// proxy's hot path uses SessionInto with a reused decision instead.
func (e *Engine) Session(req *SessionRequest) SessionDecision {
	var d SessionDecision
	e.SessionInto(req, &d)
	return d
}

// SessionInto decides a request into d, reusing d.Matches.
func (e *Engine) SessionInto(req *SessionRequest, d *SessionDecision) {
	d.Reset()
	ai := e.hosts.lookup(req.Host)
	if ai < 0 {
		return
	}
	app := e.apps[ai]
	d.App = &app.app
	// The activity numbers this request counts as: its kind (download,
	// print...) and its catalog activity.
	kindNum := int32(-1)
	if req.Kind != KindRequest && int(req.Kind) < len(builtinActivities) {
		kindNum = int32(req.Kind)
		d.Activity = builtinActivities[req.Kind]
	}
	actNum := int32(-1)
	if req.Activity != "" {
		if n, ok := e.actByName[req.Activity]; ok {
			actNum = n
			d.Activity = req.Activity
		}
	} else if m := app.resolve(req.Method, normHost(req.Host), req.Path, req.Body); m != nil {
		actNum = m.num
		d.Activity, d.Def = m.def.ID, m.def
	}
	for _, k := range e.sessionByApp[ai] {
		p := &e.session[k]
		switch p.info.Control {
		case ControlMonitor:
		case ControlBlockActivities:
			if !containsNum(p.activities, kindNum) && !containsNum(p.activities, actNum) {
				continue
			}
		case ControlDownload:
			if req.Kind != KindDownload {
				continue
			}
		case ControlUpload:
			if req.Kind != KindUpload {
				continue
			}
		}
		if !p.f.match(&req.Subject) {
			continue
		}
		if p.files.needsLabel() && req.File != nil && !req.File.LabelKnown {
			// The label is only known once the whole file was read: the
			// policy waits for it if the rest of its file filter holds, and
			// when the file could not be read the default behaviour for
			// that decides, as for content.
			if p.files.matchBesidesLabel(req.File) {
				switch req.Inspection {
				case InspectionNotDone, InspectionDone:
					d.NeedInspection = true
					d.pend(p.info.Action)
				default:
					e.unscannable(d, &p.info, req.Inspection)
				}
			}
			continue
		}
		if !p.files.match(req.File) {
			continue
		}
		if p.info.Notice && d.Notice == nil {
			d.Notice = &p.info
		}
		if p.info.Malware {
			switch req.Malware {
			case MalwareNotScanned:
				d.NeedScan = true
				d.pend(p.info.Action)
			case MalwareInfected:
				d.add(&p.info, p.info.Action, CauseMalware)
			case MalwareClean:
			default:
				e.unscannable(d, &p.info, scanInspection(req.Malware))
			}
			continue
		}
		if !p.content.set() {
			d.add(&p.info, p.info.Action, CauseFilters)
			continue
		}
		switch req.Inspection {
		case InspectionNotDone:
			d.NeedInspection = true
			d.pend(p.info.Action)
		case InspectionDone:
			if req.Content != nil && p.content.match(e, req.Content) {
				d.add(&p.info, p.info.Action, CauseContent)
			}
		default:
			e.unscannable(d, &p.info, req.Inspection)
		}
	}
	e.finish(&d.decision)
	if d.Action == ActionProtect {
		d.Protect = &d.Matches[d.Winner].Policy.Protect
	}
	d.ReplaceFile = d.Action == ActionBlock && req.Kind == KindDownload
}

// unscannable decides a policy whose content or file could not be inspected
// or scanned: the policy's own action when it says apply_if_unscannable,
// else the settings' default behaviour. A monitor policy never changes
// traffic, so its default is capped at monitor: the failure is recorded,
// nothing is let through that the policy would have stopped.
func (e *Engine) unscannable(d *SessionDecision, p *PolicyInfo, s InspectionStatus) {
	if p.ApplyIfUnscannable {
		d.add(p, p.Action, CauseUnscannable)
		return
	}
	a := e.unscannableAction(s)
	if p.Action <= ActionMonitor && a > ActionMonitor {
		a = ActionMonitor
	}
	d.add(p, a, CauseDefault)
}

// scanInspection maps a failed malware scan onto the inspection status
// whose default behaviour applies to it.
func scanInspection(m MalwareStatus) InspectionStatus {
	switch m {
	case MalwareScanTimeout:
		return InspectionTimeout
	case MalwareTooLarge:
		return InspectionTooLarge
	}
	return InspectionFailed
}

// WantsBody reports whether a request could be a catalog activity that
// matches on body fields or hands body fields to inspection: the proxy then
// reads the body (bounded) into a FieldGetter before asking Session.
func (e *Engine) WantsBody(method, host, path string) bool {
	ai := e.hosts.lookup(host)
	if ai < 0 {
		return false
	}
	h := normHost(host)
	for i := range e.apps[ai].activities {
		m := &e.apps[ai].activities[i]
		if len(m.def.Match) == 0 && len(m.def.Content) == 0 {
			continue
		}
		if (m.method == "" || m.method == method) && (m.host == nil || m.host.Match(h)) && m.path.match(path) {
			return true
		}
	}
	return false
}

// CoversUploads reports whether any enabled upload policy applies to
// host's app: multipart bodies to other apps need not be held back.
func (e *Engine) CoversUploads(host string) bool {
	ai := e.hosts.lookup(host)
	if ai < 0 {
		return false
	}
	for _, k := range e.sessionByApp[ai] {
		p := &e.session[k]
		if p.info.Control == ControlUpload || p.info.Control == ControlBlockActivities && containsNum(p.activities, int32(KindUpload)) {
			return true
		}
	}
	return false
}

// BlockMessage is the settings' message for blocks whose policy has none.
func (e *Engine) BlockMessage() string { return e.settings.blockMessage }

// Covers reports whether any enabled session policy applies to host's app
// at all: requests to other hosts skip session work entirely.
func (e *Engine) Covers(host string) bool {
	ai := e.hosts.lookup(host)
	return ai >= 0 && len(e.sessionByApp[ai]) > 0
}

func (e *Engine) unscannableAction(s InspectionStatus) Action {
	switch s {
	case InspectionTimeout:
		return e.settings.inspectionTimeout
	case InspectionTooLarge:
		return e.settings.oversize
	}
	return e.settings.inspectionFailure
}

func containsNum(list []int32, n int32) bool {
	if n < 0 {
		return false
	}
	for _, x := range list {
		if x == n {
			return true
		}
	}
	return false
}
