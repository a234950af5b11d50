package session

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"strings"
	"sync/atomic"
	"time"

	"github.com/portcullis-gw/portcullis/policy"
	"github.com/portcullis-gw/portcullis/policy/filetype"
)

// fileCheck is the inspection of one file's bytes (a download, a raw
// upload, one multipart file part). It is an io.Writer: the bytes are
// written to it as they pass. It always hashes and sniffs; what else it
// does is armed after the first decision: detectors over the raw text,
// a spool (to hold the body, or to extract OOXML/PDF text and labels at the
// end), a scanner fed as the bytes pass — or, for a held file and a
// DigestScanner, asked by digest once the spool is complete.
//
// Bodies larger than pipeMinSize (or of unknown size) are checked on an
// inspectPipe: Write only copies the bytes into a recycled buffer (and the
// held copy into the spool, which the copy loop watches), and finish waits
// for the checks to catch up before anything is decided.
type fileCheck struct {
	e    *Enforcer
	info policy.FileInfo
	typ  filetype.Type
	head []byte
	sum  hash.Hash
	n    int64

	armed   bool
	dlp     *policy.Inspector // raw text detectors, nil when not inspecting raw
	extract bool              // OOXML/PDF: text and labels extracted at the end
	spool   *Spool
	scan    *scanFeed
	dec     *decodingWriter // Content-Encoding decoder in front of the sinks
	decErr  error
	pipe    *inspectPipe // checks running off the copy loop, until finish
	// spoolInline: the spool is written by Write itself, not by the pipe
	// (no decoder in front of it), so the held copy loop can watch Full.
	spoolInline bool
	// heldScan: a held file scanned by digest after the spool is complete;
	// partial says the copy loop stopped at the limit, so it is not.
	heldScan DigestScanner
	partial  bool
	digest   [32]byte
	summed   bool // digest is the SHA-256 of every byte seen

	status  policy.InspectionStatus
	reason  string
	content *policy.ContentResult
	malware policy.MalwareStatus
	sig     string
}

func (e *Enforcer) newFileCheck(name string, size int64) *fileCheck {
	f := &fileCheck{e: e, sum: sha256.New(), head: make([]byte, 0, filetype.SniffLen)}
	f.info = policy.FileInfo{Name: name, Size: size}
	return f
}

// sniff takes the first bytes, names the type and fills the FileInfo the
// first decision sees. Types that cannot carry a sensitivity label have
// their (absent) label known at once.
func (f *fileCheck) sniff(head []byte) {
	f.head = append(f.head[:0], head...)
	f.typ = filetype.Detect(head)
	f.info.MIME = f.typ.MIME
	f.info.LabelKnown = !labelCapable(f.typ)
}

func labelCapable(t filetype.Type) bool {
	switch t.Name {
	case filetype.PDF.Name, filetype.DOCX.Name, filetype.XLSX.Name, filetype.PPTX.Name, filetype.OLE.Name:
		return true
	}
	return false
}

func extractable(t filetype.Type) bool {
	switch t.Name {
	case filetype.PDF.Name, filetype.DOCX.Name, filetype.XLSX.Name, filetype.PPTX.Name:
		return true
	}
	return false
}

// archive: containers whose members are not inspected; their content is
// "could not be inspected" under a content policy.
func archive(t filetype.Type) bool {
	switch t.Name {
	case filetype.ZIP.Name, filetype.GZIP.Name, filetype.SevenZ.Name, filetype.RAR.Name, filetype.OLE.Name:
		return true
	}
	return false
}

// arm sets up the sinks the decision asks for and replays the head into
// them. hold keeps the whole body in the spool (up to limit). encoding is
// the body's Content-Encoding: the sinks see decoded bytes.
func (f *fileCheck) arm(ctx context.Context, engine *policy.Engine, inspect, scan, hold bool, limit int64, encoding string) {
	f.armed = true
	if inspect {
		switch {
		case extractable(f.typ):
			f.extract = true
		case archive(f.typ):
		default:
			f.dlp = engine.NewInspector()
		}
	}
	if hold || f.extract {
		f.spool = newSpool(f.e.cfg.SpoolDir, f.e.cfg.MemorySpool, limit)
	}
	if scan {
		if ds, ok := f.e.cfg.Scanner.(DigestScanner); ok && hold {
			f.heldScan = ds
		} else {
			f.scan = f.e.startScan(ctx, f.info.Size, f.info.Name)
		}
	}
	if !identityEncoding(encoding) {
		d, err := newDecodingWriter(encoding, sinkWriter{f})
		if err != nil {
			f.decErr = err
		} else {
			f.dec = d
		}
	}
	if f.info.Size < 0 || f.info.Size >= pipeMinSize {
		f.pipe = startPipe(f.check)
		f.spoolInline = f.dec == nil
	}
	if len(f.head) > 0 {
		f.feed(f.head)
	}
}

// Write passes the body's bytes (as sent, encoded or not) to the checks.
func (f *fileCheck) Write(p []byte) (int, error) {
	if !f.armed {
		return len(p), nil
	}
	f.feed(p)
	return len(p), nil
}

func (f *fileCheck) feed(p []byte) {
	if f.pipe == nil {
		f.check(p)
		return
	}
	if f.spoolInline && f.spool != nil && !f.spool.Full() {
		_, _ = f.spool.Write(p)
	}
	f.pipe.put(p)
}

// check runs the checks over the bytes as sent: through the decoder when
// there is one, straight to the sinks otherwise.
func (f *fileCheck) check(p []byte) {
	if f.dec != nil {
		if _, err := f.dec.Write(p); err != nil && f.decErr == nil {
			f.decErr = err
		}
		return
	}
	if f.decErr == nil {
		f.sink(p)
	}
}

type sinkWriter struct{ f *fileCheck }

func (s sinkWriter) Write(p []byte) (int, error) { s.f.sink(p); return len(p), nil }

// sink sees the file's own (decoded) bytes.
func (f *fileCheck) sink(p []byte) {
	f.n += int64(len(p))
	f.sum.Write(p)
	if f.dlp != nil {
		_, _ = f.dlp.Write(p)
	}
	if f.spool != nil && !f.spoolInline && !f.spool.Full() {
		_, _ = f.spool.Write(p)
	}
	if f.scan != nil {
		f.scan.write(p)
	}
}

// finish ends the file: waits for the decoder, extracts OOXML/PDF text and
// labels (bounded by the inspection timeout), collects the scanner's
// verdict, and sets status, content, label and malware for the second
// decision.
func (f *fileCheck) finish(ctx context.Context, engine *policy.Engine, inspect bool) {
	if f.pipe != nil {
		f.pipe.wait()
		f.pipe = nil
	}
	if f.dec != nil {
		if err := f.dec.Close(); err != nil && f.decErr == nil {
			f.decErr = err
		}
	}
	f.info.Size = f.n
	f.sum.Sum(f.digest[:0])
	f.summed = true
	switch {
	case f.scan != nil:
		var res scanResult
		f.malware, f.sig, res = f.scan.finish(f.e)
		// The verdict is kept under the digest of exactly the bytes the
		// scanner read (an infected verdict holds for the whole file even
		// when the scanner stopped reading early).
		if ds, ok := f.e.cfg.Scanner.(DigestScanner); ok && res.err == nil && (res.infected || !f.scan.broken) {
			ds.Remember(f.digest, res.infected, res.sig)
		}
	case f.heldScan != nil:
		f.malware, f.sig = f.scanHeld(ctx)
	}
	if !inspect {
		return
	}
	switch {
	case f.decErr != nil:
		f.fail(policy.InspectionFailed, "content encoding: "+f.decErr.Error())
	case f.spool != nil && f.spool.Full():
		f.fail(policy.InspectionTooLarge, fmt.Sprintf("over the inspection limit of %d bytes", f.spool.max))
	case f.extract:
		f.extractText(ctx, engine)
	case archive(f.typ):
		f.fail(policy.InspectionFailed, f.typ.Name+" archive content is not inspected")
	default:
		f.status, f.content = policy.InspectionDone, f.dlp.Result()
		f.info.LabelKnown = true
	}
}

func (f *fileCheck) fail(s policy.InspectionStatus, reason string) {
	f.status, f.reason = s, reason
	switch s {
	case policy.InspectionTooLarge:
		f.e.Stats.TooLarge.Add(1)
	case policy.InspectionTimeout:
		f.e.Stats.Timeouts.Add(1)
	default:
		f.e.Stats.Failed.Add(1)
	}
}

// extractText runs the OOXML/PDF extractor over the spool into the
// detectors. The extractor cannot be cancelled; past the timeout the
// decision goes on without it and the extractor's goroutine finishes on
// its own (its limits bound it), closing the spool.
func (f *fileCheck) extractText(ctx context.Context, engine *policy.Engine) {
	in := engine.NewInspector()
	sp := f.spool
	f.spool = nil // owned by the extraction now
	type result struct {
		info filetype.Info
		err  error
	}
	done := make(chan result, 1)
	go func() {
		var r result
		if f.typ.Name == filetype.PDF.Name {
			r.info, r.err = filetype.ExtractPDF(sp, sp.Size(), in, filetype.Limits{MaxInput: sp.max + 1})
		} else {
			r.info, r.err = filetype.ExtractOOXML(sp, sp.Size(), in, filetype.Limits{MaxInput: sp.max + 1})
		}
		done <- r
	}()
	t := time.NewTimer(f.e.cfg.InspectionTimeout)
	defer t.Stop()
	select {
	case r := <-done:
		f.spool = sp
		switch {
		case r.err == nil:
			f.status, f.content = policy.InspectionDone, in.Result()
			f.info.Label, f.info.LabelKnown = r.info.LabelName(), true
		case errors.Is(r.err, filetype.ErrBomb), errors.Is(r.err, filetype.ErrTooLarge):
			f.fail(policy.InspectionFailed, f.typ.Name+": "+r.err.Error())
		default:
			f.fail(policy.InspectionFailed, f.typ.Name+": "+r.err.Error())
		}
	case <-t.C:
		f.fail(policy.InspectionTimeout, "text extraction timed out")
		go func() { <-done; _ = sp.Close() }()
	case <-ctx.Done():
		f.fail(policy.InspectionTimeout, "request ended during inspection")
		go func() { <-done; _ = sp.Close() }()
	}
}

// scanHeld asks the scanner about the complete spool by its digest: a
// verdict it already has costs no scan. A spool stopped at the limit is
// not scanned (runFile records it as too large).
func (f *fileCheck) scanHeld(ctx context.Context) (policy.MalwareStatus, string) {
	if f.partial || f.spool == nil || f.spool.Full() {
		return policy.MalwareTooLarge, ""
	}
	sctx, cancel := context.WithTimeout(ctx, f.e.cfg.ScanTimeout)
	defer cancel()
	infected, sig, cached, err := f.heldScan.ScanDigest(sctx, f.digest, f.spool.Reader(), f.spool.Size(), f.info.Name)
	if cached {
		f.e.Stats.ScanCached.Add(1)
	}
	return scanStatus(f.e, scanResult{infected, sig, err})
}

// close releases the spool. A check abandoned before finish stops its
// scanner feed first, so the pipe's goroutine cannot be left waiting on it.
func (f *fileCheck) close() {
	if f.pipe != nil {
		if f.scan != nil {
			f.scan.abort()
		}
		f.pipe.wait()
		f.pipe = nil
	}
	if f.spool != nil {
		_ = f.spool.Close()
		f.spool = nil
	}
}

// hex is the SHA-256 of the bytes seen, "" when none were seen or while
// the pipe still checks them.
func (f *fileCheck) hex() string {
	switch {
	case f.summed:
		if f.n == 0 {
			return ""
		}
		return hex.EncodeToString(f.digest[:])
	case f.pipe != nil || f.n == 0:
		return ""
	}
	return hex.EncodeToString(f.sum.Sum(nil))
}

// ext is the lowercase extension of the name.
func extOf(name string) string {
	if i := strings.LastIndexByte(name, '.'); i >= 0 && i < len(name)-1 {
		return strings.ToLower(name[i+1:])
	}
	return ""
}

// scanFeed streams a file to the Scanner as it passes. Writes that the
// scanner does not take (it failed, hung or returned) are dropped, so the
// stream itself never stalls on the scanner for longer than the timeout.
type scanFeed struct {
	pw      *io.PipeWriter
	pr      *io.PipeReader
	stall   *time.Timer
	stalled atomic.Bool
	done    chan scanResult
	res     *scanResult
	cancel  context.CancelFunc
	ctx     context.Context
	broken  bool
	nilScn  bool
	timeout time.Duration
}

type scanResult struct {
	infected bool
	sig      string
	err      error
}

func (e *Enforcer) startScan(parent context.Context, size int64, name string) *scanFeed {
	if e.cfg.Scanner == nil {
		return &scanFeed{nilScn: true}
	}
	// The deadline covers the whole scan; it is pushed forward by finish
	// to ScanTimeout after the last byte, so large files are not cut short
	// by their own transfer time.
	ctx, cancel := context.WithCancel(context.WithoutCancel(parent))
	pr, pw := io.Pipe()
	s := &scanFeed{timeout: e.cfg.ScanTimeout, pw: pw, pr: pr, done: make(chan scanResult, 1), cancel: cancel, ctx: ctx}
	s.stall = time.AfterFunc(time.Hour, func() {
		s.stalled.Store(true)
		pr.CloseWithError(errScanStalled)
		cancel()
	})
	s.stall.Stop()
	go func() {
		inf, sig, err := e.cfg.Scanner.Scan(ctx, pr, size, name)
		pr.CloseWithError(errors.New("scanner returned"))
		s.done <- scanResult{inf, sig, err}
	}()
	return s
}

func (s *scanFeed) write(p []byte) {
	if s.nilScn || s.broken {
		return
	}
	// A scanner that stops reading would stall the stream: the write is
	// given up on when the scan context ends (finish's timeout), and a
	// scanner that returned early closes the pipe.
	s.stall.Reset(s.timeout)
	_, err := s.pw.Write(p)
	s.stall.Stop()
	if err != nil {
		s.broken = true
	}
}

var errScanStalled = errors.New("scanner stopped reading")

// abort gives up a feed whose file will never be finished: the scanner
// sees an error instead of the end of the file, and its context ends.
func (s *scanFeed) abort() {
	if s.nilScn {
		return
	}
	s.stall.Stop()
	_ = s.pw.CloseWithError(errScanAborted)
	s.cancel()
}

var errScanAborted = errors.New("transfer ended before the file did")

// finish ends the feed and returns the status and signature, with the
// scanner's own answer (zero when it gave none) for the verdict cache.
func (s *scanFeed) finish(e *Enforcer) (policy.MalwareStatus, string, scanResult) {
	if s.nilScn {
		e.Stats.ScanErrors.Add(1)
		return policy.MalwareScanFailed, "", scanResult{err: errNoScanner}
	}
	s.stall.Stop()
	_ = s.pw.Close()
	if s.stalled.Load() {
		e.Stats.ScanErrors.Add(1)
		return policy.MalwareScanTimeout, "", scanResult{err: errScanStalled}
	}
	t := time.NewTimer(e.cfg.ScanTimeout)
	defer t.Stop()
	var r scanResult
	select {
	case r = <-s.done:
	case <-t.C:
		s.cancel()
		_ = s.pw.CloseWithError(context.DeadlineExceeded)
		e.Stats.ScanErrors.Add(1)
		return policy.MalwareScanTimeout, "", scanResult{err: context.DeadlineExceeded}
	}
	s.cancel()
	st, sig := scanStatus(e, r)
	return st, sig, r
}

var errNoScanner = errors.New("no malware scanner is configured")

// scanStatus turns a scanner's answer into the malware status, counting it.
func scanStatus(e *Enforcer, r scanResult) (policy.MalwareStatus, string) {
	switch {
	case r.err != nil && (errors.Is(r.err, context.DeadlineExceeded) || errors.Is(r.err, context.Canceled)):
		e.Stats.ScanErrors.Add(1)
		return policy.MalwareScanTimeout, ""
	case r.err != nil:
		e.Stats.ScanErrors.Add(1)
		return policy.MalwareScanFailed, ""
	case r.infected:
		e.Stats.Infected.Add(1)
		return policy.MalwareInfected, r.sig
	}
	return policy.MalwareClean, ""
}
