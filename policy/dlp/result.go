package dlp

// MaxSamples is how many masked examples a Result keeps per detector: enough
// for an explanation, bounded so memory does not grow with the body.
const MaxSamples = 3

const sampleLen = 48

type sample struct {
	n   uint8
	b   [sampleLen]byte
	off int64
}

// Result is what an Inspector found: a count per detector and a few masked
// examples with their stream offsets.
type Result struct {
	set     *Set
	counts  []int
	samples [][MaxSamples]sample
	bytes   int64
}

func newResult(s *Set) Result {
	return Result{set: s, counts: make([]int, s.Len()), samples: make([][MaxSamples]sample, s.Len())}
}

func (r *Result) reset() {
	clear(r.counts)
	clear(r.samples)
	r.bytes = 0
}

// Set is the detector set the counts are indexed by.
func (r *Result) Set() *Set { return r.set }

// Count is the number of matches of detector i.
func (r *Result) Count(i int) int {
	if r == nil || i < 0 || i >= len(r.counts) {
		return 0
	}
	return r.counts[i]
}

// CountID is the number of matches of the detector named id.
func (r *Result) CountID(id string) int {
	if r == nil || r.set == nil {
		return 0
	}
	return r.Count(r.set.Index(id))
}

// Bytes is how many bytes were inspected.
func (r *Result) Bytes() int64 { return r.bytes }

// Total is the number of matches of all detectors.
func (r *Result) Total() int {
	t := 0
	if r != nil {
		for _, c := range r.counts {
			t += c
		}
	}
	return t
}

// Sample is one masked match.
type Sample struct {
	Masked string
	Offset int64 // byte offset of the match in the inspected stream
}

// Samples returns the masked examples kept for detector i.
func (r *Result) Samples(i int) []Sample {
	if r == nil || i < 0 || i >= len(r.samples) {
		return nil
	}
	var out []Sample
	for _, s := range r.samples[i] {
		if s.n > 0 {
			out = append(out, Sample{Masked: string(s.b[:s.n]), Offset: s.off})
		}
	}
	return out
}

// add records a match; masked is only consulted while sample slots are free,
// so the common path is one increment.
func (r *Result) add(i int, off int64, mask func(dst []byte) int) {
	c := r.counts[i]
	r.counts[i] = c + 1
	if c < MaxSamples && mask != nil {
		s := &r.samples[i][c]
		s.n = uint8(mask(s.b[:]))
		s.off = off
	}
}
