package session

import (
	"bytes"
	"errors"
	"fmt"
	"io"

	"github.com/portcullis-gw/portcullis/policy"
)

// fileResult is what runFile leaves of a file.
type fileResult struct {
	body    io.ReadCloser
	size    int64 // -1 when unknown
	blocked bool
	decoded bool // body is the decoded file: drop Content-Encoding
	changed bool // body differs from the origin's (protected): drop validators
}

// runFile carries out f's first decision (already made on the headers and
// the sniffed head) for one file whose remaining bytes are rest: block at
// once, pass it on (hashed, inspected as it streams when a waiting policy
// could at most monitor), or hold it until inspected, scanned and decided
// again.
func (f *flow) runFile(fc *fileCheck, head []byte, rest io.ReadCloser, size int64, enc string, upload bool) (fileResult, error) {
	q := f.q
	d := &f.d
	if d.Action >= policy.ActionStepUp || upload && d.Action == policy.ActionProtect {
		f.record(f.settle(fc, true))
		return fileResult{blocked: true}, nil
	}
	needs := d.NeedInspection || d.NeedScan
	hold := d.Action == policy.ActionProtect || needs && d.Pending > policy.ActionMonitor
	limit := q.engine.MaxInspectionSize()
	inspect, scan := d.NeedInspection, d.NeedScan
	if !hold {
		fc.arm(q.ctx, q.engine, inspect, scan, false, limit, enc)
		if needs {
			q.e.Stats.Streamed.Add(1)
		}
		o := f.settle(fc, false)
		o.Streamed = needs
		f.record(o)
		// arm fed the head to the checks already: the tee skips it.
		t := &teeBody{f: f, fc: fc, r: io.MultiReader(bytes.NewReader(head), rest), c: rest, size: size, inspect: inspect, upload: upload, needs: needs, skip: int64(len(head))}
		return fileResult{body: t, size: size}, nil
	}

	q.e.Stats.Held.Add(1)
	fc.arm(q.ctx, q.engine, inspect, scan, true, limit, enc)
	q.onClose(fc.close)
	fwd := fc.spool
	if !identityEncoding(enc) {
		// The file spool holds decoded bytes; the forwarding copy keeps
		// the encoded ones.
		fwd = newSpool(q.e.cfg.SpoolDir, q.e.cfg.MemorySpool, limit)
		_, _ = fwd.Write(head)
		q.onClose(func() { _ = fwd.Close() })
	}
	var leftover []byte
	over := fwd.Full()
	buf := make([]byte, 32<<10)
	for !over {
		n, err := rest.Read(buf)
		if n > 0 {
			chunk := buf[:n]
			before := fwd.Size()
			_, _ = fc.Write(chunk)
			if fwd != fc.spool {
				_, _ = fwd.Write(chunk)
			}
			if fwd.Full() {
				over = true
				leftover = append([]byte(nil), chunk[fwd.Size()-before:]...)
			}
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			fc.close()
			if upload {
				q.e.Stats.ClientErrors.Add(1)
				return fileResult{}, fmt.Errorf("%w: %v", ErrMalformed, err)
			}
			return fileResult{}, fmt.Errorf("reading the origin's body: %w", err)
		}
	}
	if upload && size >= 0 && !over && fwd.Size() != size {
		q.e.Stats.ClientErrors.Add(1)
		return fileResult{}, fmt.Errorf("%w: %d body bytes for a Content-Length of %d", ErrMalformed, fwd.Size(), size)
	}
	fc.partial = over
	fc.finish(q.ctx, q.engine, inspect)
	if over {
		if inspect && fc.status != policy.InspectionTooLarge {
			fc.fail(policy.InspectionTooLarge, fmt.Sprintf("over the inspection limit of %d bytes", limit))
		}
		if scan {
			fc.malware, fc.reason = policy.MalwareTooLarge, fmt.Sprintf("over the inspection limit of %d bytes: not scanned", limit)
		}
		fc.info.Size = size
	}
	if inspect && fc.status == policy.InspectionDone {
		q.e.Stats.Inspected.Add(1)
	}
	f.apply(fc)
	f.decide()
	o := f.settle(fc, true)
	o.Held = true
	if o.Action == policy.ActionBlock {
		f.record(o)
		return fileResult{blocked: true}, nil
	}
	if d.Action == policy.ActionProtect {
		return f.protect(fc, o, over)
	}
	f.record(o)
	if over {
		return fileResult{body: readCloser{io.MultiReader(fwd.Reader(), bytes.NewReader(leftover), rest), rest}, size: size}, nil
	}
	_ = rest.Close()
	return fileResult{body: io.NopCloser(fwd.Reader()), size: fwd.Size()}, nil
}

// protect carries out the protect action on a held download.
func (f *flow) protect(fc *fileCheck, o Outcome, over bool) (fileResult, error) {
	q := f.q
	p := f.d.Protect
	var labeled, encrypted bool
	err := ErrUnsupported
	var out *Spool
	if q.e.cfg.Protector != nil && !over && fc.spool != nil {
		out = newSpool(q.e.cfg.SpoolDir, q.e.cfg.MemorySpool, 2*q.engine.MaxInspectionSize()+1<<20)
		q.onClose(func() { _ = out.Close() })
		labeled, encrypted, err = q.e.cfg.Protector.Protect(out, fc.spool, fc.spool.Size(), fc.info.MIME, p)
	}
	switch {
	case err == nil:
		q.e.Stats.Protected.Add(1)
		o.Labeled, o.Encrypted = labeled, encrypted
		f.record(o)
		return fileResult{body: io.NopCloser(out.Reader()), size: out.Size(), decoded: true, changed: true}, nil
	case errors.Is(err, ErrUnsupported):
		q.e.Stats.Unsupported.Add(1)
		q.e.cfg.Log.Info("file cannot be protected", "file", fc.info.Name, "mime", fc.info.MIME, "policy", o.Winner, "then", p.UnsupportedAction().String(), "ref", q.Ref)
		if p.UnsupportedAction() == policy.ActionAllow && fc.spool != nil && !over {
			o.Action = policy.ActionAllow
			o.Reason += "; file cannot be protected, let through (protect.unsupported: allow)"
			f.record(o)
			return fileResult{body: io.NopCloser(fc.spool.Reader()), size: fc.spool.Size(), decoded: true}, nil
		}
		o.Reason += "; file cannot be protected, blocked"
	default:
		q.e.cfg.Log.Warn("protect failed: blocked", "err", err, "file", fc.info.Name, "policy", o.Winner, "ref", q.Ref)
		o.Reason += "; protect failed, blocked"
	}
	o.Action = policy.ActionBlock
	if o.Message == "" || o.Message == f.d.Message && f.d.Action != policy.ActionBlock {
		o.Message = "This file cannot be protected as your organisation's policy requires, so it was blocked."
	}
	f.record(o)
	return fileResult{blocked: true}, nil
}

// teeBody passes a body on while its file check inspects it. The final
// decision is made when the last byte has been read — at Content-Length,
// not only at EOF — so it is on the record before that byte is delivered.
type teeBody struct {
	f       *flow
	fc      *fileCheck
	r       io.Reader
	c       io.Closer
	size, n int64
	inspect bool
	upload  bool
	needs   bool
	done    bool
	skip    int64 // leading bytes the checks already saw
}

func (t *teeBody) Read(p []byte) (int, error) {
	n, err := t.r.Read(p)
	if n > 0 {
		b := p[:n]
		if t.skip > 0 {
			k := min(t.skip, int64(len(b)))
			b, t.skip = b[k:], t.skip-k
		}
		_, _ = t.fc.Write(b)
		t.n += int64(n)
	}
	if err != nil && err != io.EOF && t.upload {
		t.f.q.setClientErr(fmt.Errorf("%w: %v", ErrMalformed, err))
	}
	if !t.done && (err == io.EOF || t.size >= 0 && t.n >= t.size) {
		t.finish("")
	}
	return n, err
}

func (t *teeBody) finish(incomplete string) {
	t.done = true
	fc := t.fc
	fc.finish(t.f.q.ctx, t.f.q.engine, t.inspect)
	if incomplete != "" && t.inspect {
		fc.status, fc.reason = policy.InspectionFailed, incomplete
	}
	if t.inspect && fc.status == policy.InspectionDone {
		t.f.q.e.Stats.Inspected.Add(1)
	}
	t.f.apply(fc)
	if t.needs {
		t.f.decide()
	}
	o := t.f.settle(fc, true)
	o.Streamed = t.needs
	t.f.record(o)
	fc.close()
}

func (t *teeBody) Close() error {
	err := t.c.Close()
	if !t.done {
		t.finish("body ended before its end was read")
	}
	return err
}
