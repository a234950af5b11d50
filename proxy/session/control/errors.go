package control

import "errors"

// Errors Inject returns, callers may match them with errors.Is. With any of
// them the headers and the body are left exactly as they were: the page is
// served without the control script, so a caller enforcing a block rule
// decides whether to refuse the page instead, and counts the fail-open.
var (
	// ErrNotHTML: the response is not text/html (the script only runs in
	// HTML documents).
	ErrNotHTML = errors.New("control: response is not HTML")
	// ErrCharset: the declared charset is not ASCII-compatible (UTF-16,
	// UTF-32): ASCII markup inserted into it would corrupt the page.
	ErrCharset = errors.New("control: page charset is not ASCII-compatible")
	// ErrEncoding: a Content-Encoding that cannot be decoded (unknown or
	// stacked codings). Read also wraps it when an encoded stream is
	// corrupt.
	ErrEncoding = errors.New("control: unsupported or corrupt content encoding")
	// ErrPartial: a partial response (Content-Range): only whole documents
	// get the script.
	ErrPartial = errors.New("control: partial content")
	// ErrSandboxed: the page's Content-Security-Policy sandboxes it without
	// allow-scripts, so no script, ours included, can run in it.
	ErrSandboxed = errors.New("control: page is sandboxed without scripts")
)

// ErrUTF16Body is what Body.Skipped reports when the document turned out to
// start with a UTF-16 byte order mark (which outranks any header charset)
// and was passed through without the script.
var ErrUTF16Body = errors.New("control: page is UTF-16 (byte order mark)")
