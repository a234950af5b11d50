package session

import (
	"bytes"
	"fmt"
	"io"
	"net/http"

	"github.com/portcullis-gw/portcullis/policy"
)

// multipart holds a multipart/form-data body (up to the inspection limit),
// reads its text fields, then decides every file part with all fields
// known: on the part's headers and sniffed head first, then — when a
// policy waits — inspected and scanned. The request goes upstream, byte
// for byte, only when no part is blocked.
//
// One record per request: it carries the deciding part (the strongest
// outcome, the first among equals) and the number of file parts.
//
// Past the inspection limit the parts seen are decided as over the limit;
// parts after the limit are not seen: when the request is let through,
// that is counted and logged as a fail-open.
func (q *Request) multipart(r *http.Request, boundary string) (bool, error) {
	f := &q.up
	limit := q.engine.MaxInspectionSize()
	sp := newSpool(q.e.cfg.SpoolDir, q.e.cfg.MemorySpool, limit)
	q.onClose(func() { _ = sp.Close() })
	q.e.Stats.Held.Add(1)
	_, err := io.Copy(sp, r.Body)
	over := sp.Full()
	var leftover []byte
	if over {
		// io.Copy stopped on ErrSpoolFull; the tail of the chunk that
		// crossed the limit is kept aside and forwarded before the rest.
		err, leftover = nil, sp.overflow
	}
	if err != nil {
		q.e.Stats.ClientErrors.Add(1)
		return false, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	lim := PartLimits{MaxParts: q.e.cfg.MaxParts, MaxPartHeader: q.e.cfg.MaxPartHeader}
	// Pass 1: text fields.
	fields := QueryFields(r.URL.RawQuery)
	var fieldBytes int64
	werr := WalkMultipart(sp.Reader(), boundary, lim, func(p *Part) error {
		if p.FileName != "" {
			return nil
		}
		b, err := io.ReadAll(io.LimitReader(p, q.e.cfg.MaxFieldBody-fieldBytes+1))
		if err != nil {
			return err
		}
		fieldBytes += int64(len(b))
		if fieldBytes > q.e.cfg.MaxFieldBody {
			return errFields
		}
		return fields.add(p.FormName, string(b))
	})
	fieldsFailed := false
	switch {
	case werr == nil:
	case over:
		// The spool ends mid-body: what was parsed stands.
	case werr == errFields:
		fieldsFailed = true
	default:
		q.e.Stats.ClientErrors.Add(1)
		return false, werr
	}
	q.fields = fields
	f.req.Body = fields
	// The request itself: block_activities on its activity, content of its
	// text fields.
	f.req.Kind = policy.KindRequest
	f.decide()
	q.def = f.d.Def
	if f.d.NeedInspection {
		if fieldsFailed {
			f.req.Inspection = policy.InspectionFailed
		} else {
			in := q.engine.NewInspector()
			if q.def != nil {
				for _, name := range q.def.Content {
					fields.Text(in, name)
				}
			}
			f.req.Inspection, f.req.Content = policy.InspectionDone, in.Result()
		}
		f.decide()
	}
	best := f.settle(nil, true)
	best.Held = true
	bestD := f.d
	bestD.Matches = append([]policy.Match(nil), f.d.Matches...)
	bestReq := f.req
	// Pass 2: file parts.
	parts := 0
	werr = WalkMultipart(sp.Reader(), boundary, lim, func(p *Part) error {
		if p.FileName == "" {
			return nil
		}
		parts++
		fc := q.e.newFileCheck(p.FileName, -1)
		head, err := readHead(p, headLen(-1))
		if err != nil {
			return err
		}
		fc.sniff(head)
		pf := flow{q: q, req: q.base}
		pf.req.Body, pf.req.Kind, pf.req.File = fields, policy.KindUpload, &fc.info
		// The part's size is only known once read; decide on the head with
		// the size unknown, then with it.
		pf.decide()
		inspect, scan := pf.d.NeedInspection, pf.d.NeedScan
		fc.arm(q.ctx, q.engine, inspect, scan, false, limit, "")
		if _, err := io.Copy(fc, p); err != nil && !over {
			fc.close()
			return err
		}
		fc.finish(q.ctx, q.engine, inspect)
		if over && (inspect || scan) {
			if inspect {
				fc.fail(policy.InspectionTooLarge, fmt.Sprintf("request over the inspection limit of %d bytes", limit))
			}
			if scan {
				fc.malware = policy.MalwareTooLarge
			}
		}
		if inspect && fc.status == policy.InspectionDone {
			q.e.Stats.Inspected.Add(1)
		}
		pf.apply(fc)
		pf.decide()
		o := pf.settle(fc, true)
		o.Held = true
		fc.close()
		if best.File == nil && o.strength() >= best.strength() || o.strength() > best.strength() {
			best, bestD, bestReq = o, pf.d, pf.req
			bestD.Matches = append([]policy.Match(nil), pf.d.Matches...)
		}
		return nil
	})
	if werr != nil && !over {
		q.e.Stats.ClientErrors.Add(1)
		return false, werr
	}
	best.FileParts = parts
	if over && best.Action < policy.ActionBlock {
		q.e.Stats.FailOpen.Add(1)
		q.e.cfg.Log.Warn("multipart upload over the inspection limit: parts past it were not decided", "limit", limit, "ref", q.Ref)
		best.InspectionReason = fmt.Sprintf("request over the inspection limit of %d bytes: later parts not decided", limit)
		if best.Inspection == policy.InspectionNotDone {
			best.Inspection = policy.InspectionTooLarge
		}
	}
	f.d, f.req = bestD, bestReq
	f.record(best)
	if best.Action == policy.ActionBlock {
		return true, nil
	}
	if over {
		rest := r.Body
		r.Body = readCloser{io.MultiReader(sp.Reader(), bytes.NewReader(leftover), rest), rest}
		return false, nil
	}
	r.Body = io.NopCloser(sp.Reader())
	r.ContentLength = sp.Size()
	return false, nil
}
