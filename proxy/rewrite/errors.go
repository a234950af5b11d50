package rewrite

import "errors"

// Errors callers may match with errors.Is.
var (
	// ErrFieldTooLarge: a form field exceeded MaxFormField bytes.
	ErrFieldTooLarge = errors.New("rewrite: form field exceeds limit")
	// ErrBadNonce: the nonce has characters outside base64 / base64url.
	ErrBadNonce = errors.New("rewrite: nonce must be base64 characters")
	// ErrBadInject: the injected script text could end or escape its
	// <script> element ("</script" or "<!--").
	ErrBadInject = errors.New("rewrite: inject text contains </script or <!--")
	// ErrEncoding: the body's Content-Encoding stream is corrupt.
	ErrEncoding = errors.New("rewrite: bad content encoding")
)

// errClosed is returned by writers used after Close.
var errClosed = errors.New("rewrite: writer is closed")
