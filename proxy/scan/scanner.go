package scan

import (
	"context"
	"io"
)

// Verdict is a scanner's answer about one file.
type Verdict struct {
	// Infected is true when the scanner found a threat or, for ICAP, replaced
	// the message.
	Infected bool
	// Signature names the threat, as the scanner reported it (clamd adds
	// ".UNOFFICIAL" to signatures from unsigned databases); UnnamedThreat when
	// an ICAP server blocked the file without naming one; "" when clean.
	Signature string
	// Scanner is the Name of the scanner that decided: "clamd" or "icap".
	Scanner string
	// Cached is true when this file was not sent to the scanner because
	// [Cached] had the verdict, or took it from a scan of the same content
	// that was in flight.
	Cached bool
}

// UnnamedThreat is the Signature of a file an ICAP server blocked or
// replaced without naming the threat.
const UnnamedThreat = "unnamed"

// Scanner is one malware scanner. Implementations are safe for concurrent use.
type Scanner interface {
	// Scan reads the whole file from r (size bytes, or -1 when unknown) and
	// returns the verdict. name is the file's name, for the scanner's logs.
	// An error means the scanner could not decide; the caller applies its
	// default behaviour.
	Scan(ctx context.Context, r io.Reader, size int64, name string) (Verdict, error)
	// Name is "clamd" or "icap", as in Verdict.Scanner.
	Name() string
}

var (
	_ Scanner = (*Clamd)(nil)
	_ Scanner = (*ICAP)(nil)
)
