package protect

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/portcullis-gw/portcullis/policy/filetype"
)

// Protect reads the whole file (src, size) and writes the protected file to
// dst. mime is the type policy/filetype detected (filetype.Type.MIME).
// Files that cannot be protected as asked return ErrUnsupported before
// anything is written to dst.
func Protect(dst io.Writer, src io.ReaderAt, size int64, mime string, o Options) (Result, error) {
	lbl, err := checkOptions(o)
	if err != nil {
		return Result{}, err
	}
	lim := withDefaults(o.Limits)
	if size < 0 {
		return Result{}, fmt.Errorf("%w: negative size", filetype.ErrFormat)
	}
	if size > lim.MaxInput {
		return Result{}, fmt.Errorf("%w: %d bytes (limit %d)", filetype.ErrTooLarge, size, lim.MaxInput)
	}
	if i := strings.IndexByte(mime, ';'); i >= 0 {
		mime = mime[:i]
	}
	switch strings.ToLower(strings.TrimSpace(mime)) {
	case filetype.PDF.MIME:
		return protectPDF(dst, src, size, o, lbl, lim)
	case filetype.DOCX.MIME, filetype.XLSX.MIME, filetype.PPTX.MIME:
		if o.Encrypt {
			return Result{}, fmt.Errorf("%w: encrypting Office documents is not supported (no maintained Go implementation of MS-OFFCRYPTO agile encryption)", ErrUnsupported)
		}
		return protectOOXML(dst, src, size, lbl, lim)
	}
	return Result{}, fmt.Errorf("%w: type %q", ErrUnsupported, mime)
}

// checkOptions refuses what no file could honour and builds the label.
func checkOptions(o Options) (*label, error) {
	if o.Label == "" && !o.Encrypt {
		return nil, fmt.Errorf("%w: neither a label nor encryption asked for", ErrOptions)
	}
	if o.Encrypt {
		if o.Password == "" {
			return nil, fmt.Errorf("%w: encryption needs a user password (an empty one opens for everyone)", ErrOptions)
		}
		if _, err := preparePassword(o.Password); err != nil {
			return nil, err
		}
	}
	return newLabel(o, time.Now())
}

func withDefaults(l filetype.Limits) filetype.Limits {
	d := filetype.DefaultLimits
	if l.MaxInput <= 0 {
		l.MaxInput = d.MaxInput
	}
	if l.MaxEntries <= 0 {
		l.MaxEntries = d.MaxEntries
	}
	if l.MaxUncompressed <= 0 {
		l.MaxUncompressed = d.MaxUncompressed
	}
	if l.MaxRatio <= 0 {
		l.MaxRatio = d.MaxRatio
	}
	return l
}

// copyThrough writes the file unchanged: what Protect does when there is
// nothing to change (a kept label and no encryption asked for).
func copyThrough(dst io.Writer, src io.ReaderAt, size int64) error {
	_, err := io.Copy(dst, io.NewSectionReader(src, 0, size))
	return err
}
