package session

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"
	"sync"

	"github.com/portcullis-gw/portcullis/policy"
	"github.com/portcullis-gw/portcullis/policy/filetype"
)

// Request is the enforcement of one covered request and its response. The
// proxy calls OnRequest before forwarding, OnResponse on the origin's
// response, Outcome for the record and Close at the end.
type Request struct {
	e      *Enforcer
	engine *policy.Engine
	ctx    context.Context
	// Ref is the access-log id shown on block pages and in replaced files.
	Ref  string
	Host string // shown on block pages
	// StepUp is whether step-up can run and whether this session did it.
	StepUp StepUp
	// OnFinal is called once, from Close, with the final decision when it
	// asks for an alert.
	OnFinal func(req *policy.SessionRequest, d *policy.SessionDecision)

	base   policy.SessionRequest // subject, method, host, path
	up     flow                  // the request (and its body)
	down   flow                  // the response, when it is a download
	def    *policy.Activity
	fields *Fields

	mu        sync.Mutex
	out       Outcome
	final     policy.SessionDecision // copy of the decision behind out
	finalReq  policy.SessionRequest
	clientErr error
	closers   []func()
}

// Begin starts enforcing a request the engine covers (engine.Covers(host)
// is the caller's check: it is all an uncovered request costs).
func (e *Enforcer) Begin(ctx context.Context, engine *policy.Engine, subj policy.Subject, r *http.Request) *Request {
	q := &Request{e: e, engine: engine, ctx: ctx, Host: r.Host}
	q.base = policy.SessionRequest{Subject: subj, Method: r.Method, Host: r.Host, Path: r.URL.Path}
	q.up = flow{q: q, req: q.base}
	q.down = flow{q: q}
	return q
}

// Outcome is the decision as it stands (final once the body has been
// read).
func (q *Request) Outcome() Outcome {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.out
}

// Block is what to tell the user about a block.
func (q *Request) Block() BlockInfo {
	q.mu.Lock()
	defer q.mu.Unlock()
	return BlockInfo{Message: q.out.Message, Policy: q.out.Winner, Reference: q.Ref, Host: q.Host}
}

// ClientError is the error reading the client's body broke on, if any: the
// proxy answers it with 400, never 502.
func (q *Request) ClientError() error {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.clientErr
}

func (q *Request) setClientErr(err error) {
	q.mu.Lock()
	if q.clientErr == nil {
		q.clientErr = err
	}
	q.mu.Unlock()
}

// Close fires the alert of the final decision and releases spools.
func (q *Request) Close() {
	q.mu.Lock()
	closers := q.closers
	q.closers = nil
	alert := q.out.Decided && q.final.Alert && q.OnFinal != nil
	q.mu.Unlock()
	for _, c := range closers {
		c()
	}
	if alert {
		q.OnFinal(&q.finalReq, &q.final)
	}
}

func (q *Request) onClose(f func()) {
	q.mu.Lock()
	q.closers = append(q.closers, f)
	q.mu.Unlock()
}

// flow is one decision in the making: the request's, or its response's.
// The two are separate because an upload's body may still stream while
// the response arrives.
type flow struct {
	q   *Request
	req policy.SessionRequest
	d   policy.SessionDecision
}

func (f *flow) decide() {
	f.q.engine.SessionInto(&f.req, &f.d)
	if f.d.Action == policy.ActionStepUp {
		f.satisfyStepUp()
	}
}

// apply hands a file check's results to the next decision.
func (f *flow) apply(fc *fileCheck) {
	f.req.File = &fc.info
	if fc.status != policy.InspectionNotDone {
		f.req.Inspection, f.req.Content = fc.status, fc.content
	}
	if fc.malware != policy.MalwareNotScanned {
		f.req.Malware = fc.malware
	}
}

// settle is the outcome of f.d. last: nothing more will be learnt, so a
// policy still waiting could not be evaluated: it fails closed when it
// could have done more than monitor.
func (f *flow) settle(fc *fileCheck, last bool) Outcome {
	q := f.q
	d := &f.d
	o := Outcome{Decided: true, Kind: f.req.Kind, Activity: d.Activity, Action: d.Action, Message: d.Message, Alert: d.Alert,
		Inspection: f.req.Inspection, Malware: f.req.Malware}
	if d.App != nil {
		o.App = d.App.ID
	}
	for _, m := range d.Matches {
		o.Policies = append(o.Policies, m.Policy.ID)
	}
	if w := d.WinningPolicy(); w != nil {
		o.Winner, o.Cause = w.ID, d.Matches[d.Winner].Cause
		o.Reason = "policy " + w.ID + ": " + o.Cause.String()
	}
	if fc != nil {
		o.File = &FileOutcome{Name: fc.info.Name, Size: fc.info.Size, MIME: fc.info.MIME, Label: fc.info.Label, LabelKnown: fc.info.LabelKnown}
		o.File.SHA256 = fc.hex()
		o.InspectionReason, o.Signature = fc.reason, fc.sig
		o.Detectors = detectorHits(fc.content)
	}
	if f.req.Content != nil && o.Detectors == nil {
		o.Detectors = detectorHits(f.req.Content)
	}
	switch o.Action {
	case policy.ActionStepUp:
		// Without a way to step up (refused at load), one that reaches
		// the proxy anyway fails closed.
		f.stepUpOutcome(&o)
	case policy.ActionProtect:
		if f.req.Kind != policy.KindDownload {
			o.Action, o.Reason = policy.ActionBlock, o.Reason+"; protect applies to downloads only, blocked"
		}
	}
	f.stepUpNote(&o)
	if last && (d.NeedInspection || d.NeedScan) && d.Pending > policy.ActionMonitor && o.Action < policy.ActionBlock {
		q.e.Stats.FailClosed.Add(1)
		o.Action = policy.ActionBlock
		o.Reason = strings.TrimPrefix(o.Reason+"; ", "; ") + "a policy could not be evaluated (" + f.req.Inspection.String() + "), blocked"
		if o.InspectionReason == "" {
			o.InspectionReason = "label or scan result unavailable"
		}
	}
	if o.Action == policy.ActionBlock && o.Message == "" {
		o.Message = q.engine.BlockMessage()
	}
	if last {
		f.countFailOpen(&o)
	}
	return o
}

// countFailOpen counts a decision where a policy that would have done more
// than monitor could not be evaluated and the default let it through.
func (f *flow) countFailOpen(o *Outcome) {
	q := f.q
	if o.Action > policy.ActionMonitor {
		return
	}
	for _, m := range f.d.Matches {
		if m.Cause == policy.CauseDefault && m.Policy.Action > policy.ActionMonitor && m.Action <= policy.ActionMonitor {
			q.e.Stats.FailOpen.Add(1)
			q.e.cfg.Log.Warn("session policy could not be evaluated; default let the request through",
				"policy", m.Policy.ID, "inspection", f.req.Inspection.String(), "malware", f.req.Malware.String(), "ref", q.Ref)
			return
		}
	}
}

// record makes o the request's outcome.
func (f *flow) record(o Outcome) {
	q := f.q
	q.e.Stats.Decided.Add(1)
	if o.Action == policy.ActionBlock {
		q.e.Stats.Blocked.Add(1)
	}
	q.mu.Lock()
	q.out = o
	q.final = f.d
	q.final.Matches = append([]policy.Match(nil), f.d.Matches...)
	q.finalReq = f.req
	q.mu.Unlock()
}

// OnRequest decides a request before it goes upstream. It returns true
// when the request is blocked (the caller answers with WriteBlock and the
// request never reaches the app). An error wrapping ErrMalformed is the
// client's (400). It may replace r.Body with one that yields the same bytes
// the client sent.
func (q *Request) OnRequest(r *http.Request) (blocked bool, err error) {
	if r.Method == http.MethodGet {
		// A range of a file is never decided as the file would be: ranges
		// are refused on covered hosts, so downloads arrive whole.
		r.Header.Del("Range")
		r.Header.Del("If-Range")
	}
	hasBody := r.Body != nil && r.Body != http.NoBody && r.ContentLength != 0
	ct := r.Header.Get("Content-Type")
	mt, params, _ := mime.ParseMediaType(ct)
	mt = strings.ToLower(mt)
	wants := q.engine.WantsBody(r.Method, r.Host, r.URL.Path)
	q.fields = QueryFields(r.URL.RawQuery)
	if wants {
		q.up.req.Body = q.fields
	}
	switch {
	case hasBody && mt == "multipart/form-data" && (wants || q.engine.CoversUploads(r.Host)):
		// Held only where an upload policy or a body-field activity could
		// use it; other apps' forms stream through.
		return q.multipart(r, params["boundary"])
	case hasBody && wants && fieldType(mt):
		return q.bodyFields(r, ct)
	}
	q.up.req.Kind = policy.KindRequest
	q.up.decide()
	q.def = q.up.d.Def
	if hasBody && q.up.d.Action < policy.ActionBlock {
		if name, ok := IsRawUpload(r, q.def); ok {
			return q.rawUpload(r, name)
		}
	}
	if q.up.d.NeedInspection {
		// Nothing to inspect: a content policy sees an empty body.
		in := q.engine.NewInspector()
		q.up.req.Inspection, q.up.req.Content = policy.InspectionDone, in.Result()
		q.up.decide()
	}
	o := q.up.settle(nil, true)
	q.up.record(o)
	// A step-up stops the request as a block does, until it is done.
	return o.Action >= policy.ActionStepUp, nil
}

func fieldType(mt string) bool {
	return mt == "application/x-www-form-urlencoded" || mt == "application/json" || strings.HasSuffix(mt, "+json")
}

// readBounded reads at most max bytes; over reports more were there.
// A read error is the client's.
func readBounded(r io.Reader, max int64) (buf []byte, over bool, err error) {
	buf, err = io.ReadAll(io.LimitReader(r, max+1))
	if err != nil {
		return nil, false, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if int64(len(buf)) > max {
		return buf, true, nil
	}
	return buf, false, nil
}

// bodyFields reads a JSON or URL-encoded body (bounded by MaxFieldBody)
// into fields, decides the activity, inspects its content fields when a
// policy waits for them, and forwards the body byte for byte.
func (q *Request) bodyFields(r *http.Request, ct string) (bool, error) {
	buf, over, err := readBounded(r.Body, q.e.cfg.MaxFieldBody)
	if err != nil {
		q.e.Stats.ClientErrors.Add(1)
		return false, err
	}
	parse := buf
	if over {
		parse = buf[:q.e.cfg.MaxFieldBody]
	}
	fields, perr := ReadFields(ct, parse, r.URL.RawQuery)
	q.fields = fields
	q.up.req.Body = fields
	q.up.req.Kind = policy.KindRequest
	q.up.decide()
	q.def = q.up.d.Def
	var reason string
	if q.up.d.NeedInspection {
		switch {
		case over:
			q.up.req.Inspection, reason = policy.InspectionFailed, fmt.Sprintf("body over the %d-byte field limit", q.e.cfg.MaxFieldBody)
			q.e.Stats.Failed.Add(1)
		case perr != nil:
			q.up.req.Inspection, reason = policy.InspectionFailed, "body fields: "+perr.Error()
			q.e.Stats.Failed.Add(1)
		default:
			in := q.engine.NewInspector()
			if q.def != nil && len(q.def.Content) > 0 {
				for _, name := range q.def.Content {
					fields.Text(in, name)
				}
			} else {
				_, _ = in.Write(buf)
			}
			q.up.req.Inspection, q.up.req.Content = policy.InspectionDone, in.Result()
			q.e.Stats.Inspected.Add(1)
		}
		q.up.decide()
	} else if over && q.up.d.Def == nil {
		// The activity may be named by a field past the limit: it could not
		// be recognised.
		reason = fmt.Sprintf("body over the %d-byte field limit: activity not recognised", q.e.cfg.MaxFieldBody)
	}
	o := q.up.settle(nil, true)
	o.InspectionReason = reason
	o.Held = true
	q.up.record(o)
	if o.Action >= policy.ActionStepUp {
		return true, nil
	}
	if over {
		rest := r.Body
		r.Body = readCloser{io.MultiReader(bytes.NewReader(buf), rest), rest}
	} else {
		r.Body = io.NopCloser(bytes.NewReader(buf))
	}
	return false, nil
}

type readCloser struct {
	io.Reader
	c io.Closer
}

func (r readCloser) Close() error { return r.c.Close() }

// readHead reads up to want bytes; io.EOF before that is a short body, any
// other error is returned.
func readHead(r io.Reader, want int) ([]byte, error) {
	buf := make([]byte, want)
	n := 0
	for n < want {
		k, err := r.Read(buf[n:])
		n += k
		if err == io.EOF {
			break
		}
		if err != nil {
			return buf[:n], err
		}
	}
	return buf[:n], nil
}

func headLen(size int64) int {
	if size >= 0 && size < filetype.SniffLen {
		return int(size)
	}
	return filetype.SniffLen
}

// rawUpload decides a PUT/POST/PATCH whose body is a file.
func (q *Request) rawUpload(r *http.Request, name string) (bool, error) {
	fc := q.e.newFileCheck(name, r.ContentLength)
	head, err := readHead(r.Body, headLen(r.ContentLength))
	if err != nil || r.ContentLength > 0 && int64(len(head)) < int64(headLen(r.ContentLength)) {
		q.e.Stats.ClientErrors.Add(1)
		return false, fmt.Errorf("%w: body shorter than its Content-Length", ErrMalformed)
	}
	fc.sniff(head)
	q.up.req.Kind, q.up.req.File = policy.KindUpload, &fc.info
	q.up.req.Inspection, q.up.req.Content, q.up.req.Malware = policy.InspectionNotDone, nil, policy.MalwareNotScanned
	q.up.decide()
	res, err := q.up.runFile(fc, head, r.Body, r.ContentLength, r.Header.Get("Content-Encoding"), true)
	if err != nil {
		return false, err
	}
	if res.blocked {
		return true, nil
	}
	r.Body = res.body
	if res.size >= 0 {
		r.ContentLength = res.size
	}
	return false, nil
}

// Decision is the request's final decision so far and the request it was
// made for (copies; Notice is the monitoring-notice policy). With Engine
// it is the hook for whatever decorates HTML responses (the monitoring
// notice, the control script asking the engine about print, cut_copy and
// paste for this subject and app).
func (q *Request) Decision() (policy.SessionRequest, policy.SessionDecision) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if !q.out.Decided {
		return q.up.req, q.up.d
	}
	return q.finalReq, q.final
}

// Engine is the policy engine the request is decided with.
func (q *Request) Engine() *policy.Engine { return q.engine }
