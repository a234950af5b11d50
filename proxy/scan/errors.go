package scan

import "errors"

// Errors of a scan that callers match with errors.Is. Each means the scanner
// gave no verdict, so the caller's default behaviour applies; none of them
// is ever kept by [Cached].
var (
	// ErrUnavailable: the scanner could not be reached (socket missing,
	// connection refused, host unreachable).
	ErrUnavailable = errors.New("scanner unavailable")
	// ErrTimeout: the scanner did not finish within its Timeout or the
	// context's deadline. Errors from a context deadline also match
	// context.DeadlineExceeded; a cancelled context gives context.Canceled.
	ErrTimeout = errors.New("scanner timed out")
	// ErrTooLarge: the file is longer than the scanner accepts (ClamdConfig.
	// MaxStream, or clamd's own StreamMaxLength). A file too large to scan
	// is not a clean file.
	ErrTooLarge = errors.New("file over the scanner's size limit")
	// ErrScanner: the scanner answered with an error of its own (clamd
	// "... ERROR", an ICAP 4xx or 5xx status).
	ErrScanner = errors.New("scanner reported an error")
	// ErrProtocol: the answer does not follow the protocol (malformed,
	// truncated, over a size limit of this client, an unexpected status).
	ErrProtocol = errors.New("scanner protocol error")
	// ErrUnsupported: the ICAP service's OPTIONS do not list the configured
	// method.
	ErrUnsupported = errors.New("ICAP service does not offer the method")
)
