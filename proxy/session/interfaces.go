package session

import (
	"context"
	"io"

	"github.com/portcullis-gw/portcullis/policy"
)

// Scanner scans one file for malware. r yields the file's bytes as they
// arrive (it may be fed while the file streams to its destination); size is
// the expected length, -1 when unknown. A Scan that outlives ctx is
// abandoned: its result is MalwareScanTimeout. An error is
// MalwareScanFailed; both follow the engine's default behaviour.
type Scanner interface {
	Scan(ctx context.Context, r io.Reader, size int64, name string) (infected bool, signature string, err error)
}

// Protector transforms a file for the protect action: writes the labelled
// and/or encrypted file to dst. A file it cannot protect is ErrUnsupported
// (wrapped or not); anything else is a failure and blocks.
type Protector interface {
	Protect(dst io.Writer, src io.ReaderAt, size int64, mime string, p *policy.Protect) (labeled, encrypted bool, err error)
}

// ScannerFunc adapts a function to Scanner.
type ScannerFunc func(ctx context.Context, r io.Reader, size int64, name string) (bool, string, error)

// Scan calls f.
func (f ScannerFunc) Scan(ctx context.Context, r io.Reader, size int64, name string) (bool, string, error) {
	return f(ctx, r, size, name)
}
