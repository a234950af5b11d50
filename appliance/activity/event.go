package activity

import (
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
)

// Mode is how the traffic reached the appliance.
type Mode string

// The two ways traffic enters the pipeline (see ARCHITECTURE.md).
const (
	ModeTransparent Mode = "transparent"
	ModeSuffix      Mode = "suffix"
)

// Reasons the pipeline itself sets, besides the ids of policies that decided.
// They are separate from the action so a SIEM can alert on a degraded
// decision (an inspection engine timed out and the policy said to let the
// traffic through, or to block it) without parsing free text.
const (
	ReasonFailOpen   = "fail_open"
	ReasonFailClosed = "fail_closed"
)

// Detection is one content detector's finding in an event.
type Detection struct {
	ID      string   `json:"id"`
	Count   int      `json:"count"`
	Samples []string `json:"samples,omitempty"` // masked
}

// Event is one access or session decision. The emitter fills it; the store
// only sets Seq (and ID and Time when they are zero). Slices are kept as
// given: the caller must not modify them after Emit.
type Event struct {
	// Seq is the store's position of the event: strictly increasing in commit
	// order and never reused, even after retention. Sink cursors and
	// ReadAfter are expressed in it. Zero on events not yet stored.
	Seq int64
	// ID is a UUIDv7 assigned at Emit; exporters send it so that receivers
	// can de-duplicate at-least-once delivery.
	ID   uuid.UUID
	Time time.Time
	Mode Mode

	User       string
	Groups     []string
	SourceIP   netip.Addr
	DeviceTags []string
	ClientApp  string
	// ClientWhy says how the client was classified (the fingerprint's
	// family and match, what the User-Agent said), without the JA4 itself.
	ClientWhy string
	JA4       string

	App      string
	Host     string
	Method   string
	Path     string
	Activity string

	FileName   string
	FileSize   int64
	FileSHA256 string // lowercase hex; empty when no file was involved
	FileType   string // detected from the content (MIME type), not the name
	FileLabel  string // sensitivity label the file carries
	// Detectors are what content inspection found: detector ids with their
	// counts and masked samples (never the matched text itself).
	Detectors []Detection

	Policies []string // ids of the policies that matched, in evaluation order
	Action   string   // allow, monitor, protect, require_step_up, block
	Reason   string   // a policy id, ReasonFailOpen, ReasonFailClosed, ...

	BytesUp   int64
	BytesDown int64
	SessionID string
}

// detectionList is the detections as "id:count" items joined by commas,
// for the text exporters.
func detectionList(d []Detection) string {
	if len(d) == 0 {
		return ""
	}
	b := make([]byte, 0, 32*len(d))
	for i, x := range d {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, x.ID...)
		b = append(b, ':')
		b = strconv.AppendInt(b, int64(x.Count), 10)
	}
	return string(b)
}

// inspectionSummary is the label and detections in one line, "" when the
// event has neither.
func inspectionSummary(label string, d []Detection) string {
	var parts []string
	if label != "" {
		parts = append(parts, "label="+label)
	}
	if len(d) > 0 {
		parts = append(parts, "detectors="+detectionList(d))
	}
	return strings.Join(parts, "; ")
}
