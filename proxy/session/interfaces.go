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

// DigestScanner is a Scanner with a verdict cache keyed by the file's
// SHA-256. A held file is complete in its spool before it is scanned, so it
// is asked by digest, and a verdict already kept costs no scan at all. A
// file scanned as it streams (monitor) has its digest only at its last
// byte: its verdict is kept with Remember then, so the next transfer of
// the same bytes, held or not, finds it.
type DigestScanner interface {
	Scanner
	// ScanDigest answers for the file whose SHA-256 is digest, reading r
	// (size bytes) only when it has no verdict; cached reports that the
	// verdict was kept (or shared with a concurrent scan of the same
	// bytes) and r was not scanned. Errors are as for Scan.
	ScanDigest(ctx context.Context, digest [32]byte, r io.Reader, size int64, name string) (infected bool, signature string, cached bool, err error)
	// Remember keeps the verdict a Scan gave for the file whose SHA-256 is
	// digest (the scanner read exactly those bytes).
	Remember(digest [32]byte, infected bool, signature string)
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
