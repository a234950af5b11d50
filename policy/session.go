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
		d.Activity = m.def.ID
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
		if !p.f.match(&req.Subject) || !p.files.match(req.File) {
			continue
		}
		if !p.content.set() {
			d.add(&p.info, p.info.Action, CauseFilters)
			continue
		}
		switch req.Inspection {
		case InspectionNotDone:
			d.NeedInspection = true
		case InspectionDone:
			if req.Content != nil && p.content.match(e, req.Content) {
				d.add(&p.info, p.info.Action, CauseContent)
			}
		default:
			if p.info.ApplyIfUnscannable {
				d.add(&p.info, p.info.Action, CauseUnscannable)
			} else {
				d.add(&p.info, e.unscannableAction(req.Inspection), CauseDefault)
			}
		}
	}
	e.finish(&d.decision)
	if d.Action == ActionProtect {
		d.Protect = &d.Matches[d.Winner].Policy.Protect
	}
	d.ReplaceFile = d.Action == ActionBlock && req.Kind == KindDownload
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
