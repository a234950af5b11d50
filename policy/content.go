package policy

import "github.com/portcullis-gw/portcullis/policy/dlp"

// ContentResult is what content inspection found; produce it with an
// Inspector from the same Engine (Engine.NewInspector).
type ContentResult = dlp.Result

// Inspector scans a body stream (io.Writer) with the engine's detectors.
type Inspector = dlp.Inspector

// NewInspector returns an Inspector with every detector the policies may
// ask about. Reuse it across requests with Reset; it holds a fixed window
// of memory (dlp.WindowSize) whatever the body size.
func (e *Engine) NewInspector() *Inspector { return e.detectors.NewInspector() }

// contentRef is one compiled detector condition.
type contentRef struct {
	id  string
	idx int
	min int
}

type contentFilter struct {
	refs []contentRef
	all  bool
}

func (c *contentFilter) set() bool { return len(c.refs) > 0 }

// match evaluates the condition. A result from another engine's inspector
// (a request that straddled a reload) is read by detector id, so indexes of
// the old set are never misread.
func (c *contentFilter) match(e *Engine, r *ContentResult) bool {
	same := r.Set() == e.detectors
	for _, ref := range c.refs {
		n := 0
		if same {
			n = r.Count(ref.idx)
		} else {
			n = r.CountID(ref.id)
		}
		hit := n >= ref.min
		if hit && !c.all {
			return true
		}
		if !hit && c.all {
			return false
		}
	}
	return c.all
}
