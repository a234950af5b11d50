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
// only sets Seq (and ID and Time when they are zero). Its JSON (activity
// search, JSON lines, Kafka) uses snake_case names, those of the access log
// where they mean the same (user, host, path, bytes_in, client_app …); the
// access log's id is request_id here, the event's own UUID event_id. Slices are kept as
// given: the caller must not modify them after Emit.
type Event struct {
	// Seq is the store's position of the event: strictly increasing in commit
	// order and never reused, even after retention. Sink cursors and
	// ReadAfter are expressed in it. Zero on events not yet stored.
	Seq int64 `json:"seq"`
	// ID is a UUIDv7 assigned at Emit; exporters send it so that receivers
	// can de-duplicate at-least-once delivery.
	ID   uuid.UUID `json:"event_id"`
	Time time.Time `json:"time"`
	Mode Mode      `json:"mode"`

	User       string     `json:"user"`
	Groups     []string   `json:"groups,omitempty"`
	SourceIP   netip.Addr `json:"source_ip"`
	DeviceTags []string   `json:"device_tags,omitempty"`
	ClientApp  string     `json:"client_app"`
	// ClientWhy says how the client was classified (the fingerprint's
	// family and match, what the User-Agent said), without the JA4 itself.
	ClientWhy string `json:"client_why,omitempty"`
	JA4       string `json:"ja4"`

	App      string `json:"app"`
	Host     string `json:"host"`
	Method   string `json:"method,omitempty"`
	Path     string `json:"path,omitempty"`
	Activity string `json:"activity,omitempty"`

	FileName   string `json:"file_name,omitempty"`
	FileSize   int64  `json:"file_size,omitempty"`
	FileSHA256 string `json:"file_sha256,omitempty"` // lowercase hex; empty when no file was involved
	FileType   string `json:"file_type,omitempty"`   // detected from the content (MIME type), not the name
	FileLabel  string `json:"file_label,omitempty"`  // sensitivity label the file carries
	// Detectors are what content inspection found: detector ids with their
	// counts and masked samples (never the matched text itself).
	Detectors []Detection `json:"detectors,omitempty"`

	Policies []string `json:"policies,omitempty"` // ids of the policies that matched, in evaluation order
	Action   string   `json:"action"`             // allow, monitor, protect, require_step_up, block
	Reason   string   `json:"reason,omitempty"`   // a policy id, ReasonFailOpen, ReasonFailClosed, ...

	BytesUp   int64  `json:"bytes_in"`
	BytesDown int64  `json:"bytes_out"`
	SessionID string `json:"request_id"`
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
