package console

import (
	"bytes"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/portcullis-gw/portcullis/appliance/activity"
	"github.com/portcullis-gw/portcullis/policy"
)

// DryRun is what a changed policy set would have decided for recent
// recorded events, next to what the policies on disk decide for them.
type DryRun struct {
	Events      int          `json:"events"`  // evaluated
	Changed     int          `json:"changed"` // action or deciding policy differs
	Transitions []Transition `json:"transitions"`
	// Undecided counts events whose new decision depends on what the event
	// does not record (the body's content, a malware scan): the action
	// shown for them is the one without that input.
	Undecided int         `json:"undecided"`
	Samples   []DrySample `json:"samples"`
	Took      float64     `json:"took_ms"`
}

// Transition counts events moving from one action to another.
type Transition struct {
	From  string `json:"from"`
	To    string `json:"to"`
	Count int    `json:"count"`
}

// DrySample is one event whose decision changes, with both decisions and
// the new one explained.
type DrySample struct {
	Event    EventJSON `json:"event"`
	Recorded string    `json:"recorded"` // the action the appliance took then
	Before   string    `json:"before"`   // the policies on disk, now
	After    string    `json:"after"`    // the changed policies
	Explain  string    `json:"explain"`
	Missing  []string  `json:"missing,omitempty"` // inputs the event lacks
}

const (
	defaultDryRunEvents = 1000
	maxDryRunEvents     = 20000
	maxDrySamples       = 25
)

// dryRun compiles both sets with the appliance's capabilities and replays
// the last n events (newest first) through each.
func (c *Console) dryRun(current, candidate map[string][]byte, n int) (*DryRun, []Problem, error) {
	start := time.Now()
	if n <= 0 {
		n = defaultDryRunEvents
	}
	n = min(n, maxDryRunEvents)
	caps := c.opt.Capabilities()
	newSet, problems := c.validate(candidate)
	if len(problems) > 0 {
		return nil, problems, nil
	}
	after, err := policy.CompileFor(newSet, caps)
	if err != nil {
		return nil, problemsOf(err), nil
	}
	var before *policy.Engine
	if oldSet, err := parseSet(current); err == nil {
		before, _ = policy.CompileFor(oldSet, caps)
	}
	if before == nil {
		// The directory on disk is broken: compare against no policies.
		if before, err = policy.Compile(&policy.PolicySet{}); err != nil {
			return nil, nil, err
		}
	}
	res := &DryRun{}
	trans := map[[2]string]int{}
	q := activity.Query{Limit: 1000}
	for res.Events < n {
		q.Limit = min(1000, n-res.Events)
		p, err := c.opt.Activity.Search(q)
		if err != nil {
			return nil, nil, err
		}
		for i := range p.Events {
			ev := &p.Events[i]
			b := decide(before, ev)
			a := decide(after, ev)
			res.Events++
			if len(a.missing) > 0 {
				res.Undecided++
			}
			if a.summary() == b.summary() {
				continue
			}
			res.Changed++
			trans[[2]string{b.action, a.action}]++
			if len(res.Samples) < maxDrySamples {
				res.Samples = append(res.Samples, DrySample{Event: eventJSON(ev), Recorded: ev.Action,
					Before: b.summary(), After: a.summary(), Explain: a.explain(after), Missing: a.missing})
			}
		}
		if p.Next == "" {
			break
		}
		q.After = p.Next
	}
	for k, v := range trans {
		res.Transitions = append(res.Transitions, Transition{From: k[0], To: k[1], Count: v})
	}
	sort.Slice(res.Transitions, func(i, j int) bool { return res.Transitions[i].Count > res.Transitions[j].Count })
	res.Took = float64(time.Since(start).Microseconds()) / 1000
	return res, nil, nil
}

// replayed is one engine's decision for one recorded event.
type replayed struct {
	action, policy string
	missing        []string
	access         *policy.AccessRequest
	accessD        *policy.AccessDecision
	session        *policy.SessionRequest
	sessionD       *policy.SessionDecision
}

func (r *replayed) summary() string {
	if r.policy == "" {
		return r.action
	}
	return r.action + " (" + r.policy + ")"
}

func (r *replayed) explain(e *policy.Engine) string {
	var b bytes.Buffer
	if r.sessionD != nil {
		e.ExplainSession(&b, r.session, r.sessionD)
	} else if r.accessD != nil {
		e.ExplainAccess(&b, r.access, r.accessD)
	}
	return strings.TrimSpace(b.String())
}

var builtinKinds = map[string]policy.ActivityKind{"download": policy.KindDownload, "upload": policy.KindUpload,
	"print": policy.KindPrint, "cut_copy": policy.KindCutCopy, "paste": policy.KindPaste}

// decide rebuilds the requests the proxy made for ev from its recorded
// fields and evaluates them: the access decision, then (for requests) the
// session decision, as the pipeline does.
func decide(e *policy.Engine, ev *activity.Event) replayed {
	subj := policy.Subject{User: ev.User, Groups: ev.Groups, DeviceTags: ev.DeviceTags, SourceIP: ev.SourceIP, ClientApp: policy.ClientBrowser}
	switch ev.ClientApp {
	case "mobile_desktop", "mobile", "desktop":
		subj.ClientApp = policy.ClientMobileDesktop
	}
	host := strings.ToLower(ev.Host)
	ar := &policy.AccessRequest{Subject: subj, Host: host}
	ad := e.Access(ar)
	out := replayed{access: ar, accessD: &ad}
	if ad.Action == policy.ActionBlock || ev.Method == "" {
		out.action, out.policy = accessAction(&ad), winner(ad.Matches, ad.Winner)
		return out
	}
	sr := &policy.SessionRequest{Subject: subj, Method: ev.Method, Host: host, Path: ev.Path}
	if k, ok := builtinKinds[ev.Activity]; ok {
		sr.Kind = k
	} else if _, def := e.Activity(ev.Method, host, ev.Path); def != nil {
		sr.Kind = def.FileKind()
	}
	if ev.FileName != "" || ev.FileSHA256 != "" {
		size := ev.FileSize
		if size == 0 && ev.FileSHA256 == "" {
			size = -1
		}
		sr.File = &policy.FileInfo{Name: ev.FileName, MIME: ev.FileType, Size: size, Label: ev.FileLabel, LabelKnown: ev.FileSHA256 != ""}
	}
	sd := e.Session(sr)
	out.session, out.sessionD = sr, &sd
	if sd.NeedInspection {
		out.missing = append(out.missing, "body content (not recorded)")
	}
	if sd.NeedScan {
		out.missing = append(out.missing, "malware scan result (not recorded)")
	}
	out.action, out.policy = sd.Action.String(), winner(sd.Matches, sd.Winner)
	if len(out.missing) > 0 && sd.Pending > sd.Action {
		out.action = fmt.Sprintf("%s, %s if content matches", sd.Action, sd.Pending)
	}
	return out
}

func accessAction(d *policy.AccessDecision) string {
	if d.Action == policy.ActionBlock {
		return "block"
	}
	if !d.Intercept {
		return "bypass"
	}
	return d.Action.String()
}

func winner(m []policy.Match, w int) string {
	if w < 0 || w >= len(m) || m[w].Policy == nil {
		return ""
	}
	return m[w].Policy.ID
}
