package dlp

import "io"

// Window geometry. A match is attributed to its anchor byte (first digit,
// first letter, or the '@' of an e-mail address); the scanners look at most
// lookBehind bytes before and lookAhead bytes after an anchor, so anchors are
// only scanned once lookAhead bytes after them are buffered, and lookBehind
// bytes are carried when the window slides.
const (
	lookBehind = 80
	lookAhead  = 320
	// WindowSize is the data part of an Inspector's buffer; the memory an
	// Inspector holds is this plus the carry, whatever the body size.
	WindowSize = 32 << 10
)

// Inspector scans a stream written to it. Not safe for concurrent use;
// reuse one per request with Reset.
type Inspector struct {
	set   *Set
	buf   []byte // len = buffered, cap = lookBehind + WindowSize + lookAhead
	start int    // first unscanned anchor position in buf
	base  int64  // stream offset of buf[0]
	res   Result
	done  bool
	// per custom detector: stream offset where its next match may start,
	// so that a match counted before a slide is not counted again
	customNext []int64
	kwPos      []int // scratch for keyword detectors
}

var _ io.Writer = (*Inspector)(nil)

// NewInspector returns an Inspector for the detectors of s.
func (s *Set) NewInspector() *Inspector {
	return &Inspector{
		set:        s,
		buf:        make([]byte, 0, lookBehind+WindowSize+lookAhead),
		res:        newResult(s),
		customNext: make([]int64, len(s.customs)),
	}
}

// Reset prepares the Inspector for a new stream without allocating.
func (in *Inspector) Reset() {
	in.buf = in.buf[:0]
	in.start, in.base, in.done = 0, 0, false
	in.res.reset()
	clear(in.customNext)
}

// Write scans p. It never fails before Result is called, so a tee'd body
// stream is never interrupted by inspection.
func (in *Inspector) Write(p []byte) (int, error) {
	if in.done {
		return 0, ErrFinished
	}
	n := len(p)
	in.res.bytes += int64(n)
	for len(p) > 0 {
		k := copy(in.buf[len(in.buf):cap(in.buf)], p)
		in.buf = in.buf[:len(in.buf)+k]
		p = p[k:]
		if len(in.buf) == cap(in.buf) {
			in.scan(false)
			in.slide()
		}
	}
	return n, nil
}

// Result scans what is still buffered as the end of the stream and returns
// the findings. The pointer stays valid until Reset.
func (in *Inspector) Result() *Result {
	if !in.done {
		in.scan(true)
		in.done = true
	}
	return &in.res
}

func (in *Inspector) scan(final bool) {
	limit := len(in.buf)
	if !final {
		limit -= lookAhead
	}
	if limit <= in.start {
		return
	}
	atStart := in.base == 0
	next := scanBuiltin(in.buf, in.start, limit, in.base, atStart, &in.res)
	for i := range in.set.customs {
		in.scanCustom(i, limit)
	}
	in.start = next
}

// slide keeps the lookBehind bytes before the first unscanned anchor.
func (in *Inspector) slide() {
	drop := in.start - lookBehind
	if drop <= 0 {
		return
	}
	n := copy(in.buf, in.buf[drop:])
	in.buf = in.buf[:n]
	in.start -= drop
	in.base += int64(drop)
}
