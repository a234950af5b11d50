package session

import "github.com/portcullis-gw/portcullis/policy"

// Outcome is what enforcement decided for one request, as the activity
// record carries it.
type Outcome struct {
	// Decided: a session decision was made (the app is covered).
	Decided  bool
	App      string              // catalog app id
	Activity string              // catalog activity id, or the built-in kind (download, upload)
	Kind     policy.ActivityKind // request, download or upload
	// Action is what was enforced: step-up (not available) and protect
	// that could not be carried out are recorded as what happened instead.
	Action   policy.Action
	Policies []string // ids of the matched policies, file order
	Winner   string   // id of the deciding policy, "" when none matched
	Cause    policy.Cause
	Reason   string // one line for the access log
	Message  string // shown to the user for a block
	Alert    bool
	// File is the deciding file: the download, the raw upload, or the
	// multipart part with the strongest outcome (the first among equals).
	File      *FileOutcome
	FileParts int // file parts of a multipart upload
	Detectors []DetectorHit
	// Inspection is how content inspection ended (InspectionNotDone when
	// no policy needed it), with the reason when it did not complete.
	Inspection       policy.InspectionStatus
	InspectionReason string
	Malware          policy.MalwareStatus
	Signature        string
	Held, Streamed   bool // the body was held back / inspected as it streamed
	Labeled          bool // protect: a label was applied
	Encrypted        bool // protect: the file was encrypted
}

// FileOutcome describes a file as enforcement saw it.
type FileOutcome struct {
	Name   string
	Size   int64  // bytes seen; the declared size when not read
	SHA256 string // hex, of the bytes seen ("" when not read)
	MIME   string // detected from content
	Label  string
	// LabelKnown: Label is what the file carries (the whole file was read
	// or its type carries no labels).
	LabelKnown bool
}

// DetectorHit is one detector that matched, with masked samples.
type DetectorHit struct {
	ID      string
	Count   int
	Samples []string
}

func detectorHits(r *policy.ContentResult) []DetectorHit {
	if r == nil || r.Total() == 0 {
		return nil
	}
	set := r.Set()
	var out []DetectorHit
	for i := range set.Len() {
		n := r.Count(i)
		if n == 0 {
			continue
		}
		h := DetectorHit{ID: set.ID(i), Count: n}
		for _, s := range r.Samples(i) {
			h.Samples = append(h.Samples, s.Masked)
		}
		out = append(out, h)
	}
	return out
}

// strength orders outcomes for choosing the deciding file part.
func (o *Outcome) strength() int {
	return int(o.Action)
}
