package session

import "errors"

// Errors callers match with errors.Is.
var (
	// ErrUnsupported is what a Protector returns for a file it cannot
	// protect (a type other than PDF/OOXML, an encrypted or malformed
	// file). The policy's protect.unsupported decides what happens then.
	ErrUnsupported = errors.New("file cannot be protected")
	// ErrMalformed means the client sent a body that is not what its headers
	// say: truncated multipart, a boundary that never closes, part headers
	// over the limit, fewer bytes than its Content-Length. It is the
	// client's error (400), never the origin's.
	ErrMalformed = errors.New("malformed request body")
	// ErrSpoolFull means a held body reached the inspection size limit.
	ErrSpoolFull = errors.New("body over the inspection size limit")
)
