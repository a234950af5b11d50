package proxy

import (
	"net/netip"
	"time"

	"github.com/portcullis-gw/portcullis/policy"
	"github.com/portcullis-gw/portcullis/proxy/session"
)

// Record is what the pipeline reports for every intercepted request and
// every connection that was not intercepted (bypassed, blocked, failed).
type Record struct {
	Time      time.Time
	Mode      Mode
	Client    netip.AddrPort
	Dest      netip.AddrPort
	JA4       string
	SNI       string
	Host      string
	User      string // suffix mode: the identity the proxy knows, else empty
	Groups    []string
	Method    string // empty for connection records
	Path      string
	Status    int
	Decision  string // allow, monitor, block, bypass, error
	Reason    string
	BytesIn   int64
	BytesOut  int64
	RequestID string // access-log id; connection records use "c<conn id>"

	// DeviceTags are the connection's device tags from its client
	// certificate (valid_client_certificate); nil without one.
	DeviceTags []string

	// Session enforcement (zero when no session policy covered the request).
	App       string        // catalog app id
	Activity  string        // catalog activity id or built-in kind (download, upload)
	Action    policy.Action // what was enforced (step-up, unavailable, is recorded as block)
	Policy    string        // the deciding policy's id
	Policies  []string      // every matched policy, file order
	File      *RecordFile   // the download, the raw upload, or the deciding multipart part
	FileParts int           // file parts of a multipart upload (one record per request)
	Detectors []DetectorHit // detectors that matched, with masked samples
	// Inspection is how content inspection ended (policy.InspectionNotDone
	// when no policy needed it), with the reason when it did not complete.
	Inspection       policy.InspectionStatus
	InspectionReason string
	Malware          policy.MalwareStatus
	MalwareSignature string
}

// RecordFile is a file as session enforcement saw it: name, size, SHA-256
// of the bytes seen, MIME detected from content, sensitivity label.
type RecordFile = session.FileOutcome

// DetectorHit is one matched detector with its count and masked samples.
type DetectorHit = session.DetectorHit

// Recorder receives the pipeline's records: the activity log. Admit is asked
// before a new connection or request is served; an error refuses it, which is
// how an audit-strict appliance refuses service it could not record.
type Recorder interface {
	Admit() error
	Record(Record) error
}

// DurableRecorder is a Recorder that can tell when a record is durable.
// With Config.HoldForRecord, the proxy holds the end of every response
// until the request's record is durable, so no client ever completes a
// response the activity log could lose (audit-strict).
type DurableRecorder interface {
	Recorder
	// RecordDurable queues r; wait blocks until it is durable or cannot be.
	RecordDurable(r Record) (wait func() error, err error)
}
