package proxy

import (
	"net/netip"
	"time"
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
}

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
