package proxy

import (
	"net/netip"
	"time"

	"github.com/portcullis-gw/portcullis/policy"
	"github.com/portcullis-gw/portcullis/proxy/classify"
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
	// ClientKind is the client's classification (browser or native,
	// family, user-agent tags, why).
	ClientKind classify.Result
	// Login: an identity was learnt on this request (a SAML assertion posted
	// to the app, the proxy's OIDC login callback).
	Login bool

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

// IsActivity reports whether r records an activity rather than plain
// traffic: any decision but allow (monitor, block, protect, error), a reason
// given for an allow (a notice shown, a gateway endpoint), a matched session
// policy or a recognised activity, a file transfer, or a login. It is the
// rule of hold_responses: activities — these responses end only once their
// record is durable; plain traffic, allowed with no policy matched, is
// committed within the activity log's linger.
func (r *Record) IsActivity() bool {
	return r.Decision != "allow" || r.Reason != "" || r.Action != policy.ActionUnset ||
		r.Policy != "" || len(r.Policies) > 0 || r.Activity != "" || r.File != nil || r.Login
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
// With Config.HoldForRecord, the proxy holds the end of every response on
// RecordDurable, so no client completes a response the activity log could
// lose (audit-strict) — every response, or only those the recorder's rule
// holds (see Record.IsActivity).
type DurableRecorder interface {
	Recorder
	// RecordDurable queues r; wait blocks until it is durable or cannot be.
	// A nil wait (and nil error) means the recorder's rule does not hold r:
	// it was queued like Record.
	RecordDurable(r Record) (wait func() error, err error)
}
