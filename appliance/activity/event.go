package activity

import (
	"net/netip"
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
	JA4        string

	App      string
	Host     string
	Method   string
	Path     string
	Activity string

	FileName   string
	FileSize   int64
	FileSHA256 string // lowercase hex; empty when no file was involved

	Policies []string // ids of the policies that matched, in evaluation order
	Action   string   // allow, monitor, protect, require_step_up, block
	Reason   string   // a policy id, ReasonFailOpen, ReasonFailClosed, ...

	BytesUp   int64
	BytesDown int64
	SessionID string
}
