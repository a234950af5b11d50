package protect

import (
	"bytes"
	"errors"
	"fmt"
	"io"

	"github.com/pdfcpu/pdfcpu/pkg/api"
	"github.com/pdfcpu/pdfcpu/pkg/pdfcpu"
	"github.com/pdfcpu/pdfcpu/pkg/pdfcpu/model"

	"github.com/portcullis-gw/portcullis/policy/filetype"
)

// eofWindow is how far from the end a complete PDF has its %%EOF marker
// (Acrobat's rule; ISO 32000 puts the marker last).
const eofWindow = 1024

func protectPDF(dst io.Writer, src io.ReaderAt, size int64, o Options, lbl *label, lim filetype.Limits) (Result, error) {
	res := Result{Type: filetype.PDF.Name}
	// pdfcpu rebuilds a damaged cross-reference table from what is left,
	// so a cut-off download would come out "protected" and quietly short.
	// A file that does not end with %%EOF is refused instead.
	if err := checkComplete(src, size); err != nil {
		return res, err
	}
	conf, err := pdfConfig(o, lim)
	if err != nil {
		return res, err
	}
	var ctx *model.Context
	err = guard("read", func() (err error) {
		ctx, err = api.ReadAndValidate(io.NewSectionReader(src, 0, size), conf)
		return err
	})
	if errors.Is(err, pdfcpu.ErrEncrypted) || errors.Is(err, pdfcpu.ErrWrongPassword) || err == nil && ctx.Encrypt != nil {
		return res, fmt.Errorf("%w: the PDF is already encrypted", ErrUnsupported)
	}
	if err != nil {
		return res, err
	}

	var found foundLabels
	var meta *pdfMetadata
	err = guard("metadata", func() (err error) {
		if err = infoLabels(ctx, &found); err == nil {
			meta, err = readMetadata(ctx, lbl, &found, lim)
		}
		return err
	})
	if err != nil {
		return res, err
	}
	res.KeptLabel = found.kept()
	addLabel := lbl != nil && res.KeptLabel == ""
	if !addLabel && !o.Encrypt {
		return res, copyThrough(dst, src, size)
	}
	if addLabel {
		if err := guard("label", func() error { return writeLabel(ctx, meta, lbl) }); err != nil {
			return res, err
		}
	}
	if o.Encrypt {
		// pdfcpu writes AES-256 with revision 6 only for PDF 2.0 (doc.go).
		v := model.V20
		ctx.HeaderVersion, ctx.RootVersion = &v, nil
		if ctx.RootDict != nil {
			ctx.RootDict.Delete("Version")
		}
	}
	out := &errWriter{w: dst}
	if err := guard("write", func() error { return api.WriteContext(ctx, out) }); err != nil {
		if out.err != nil {
			return res, fmt.Errorf("write: %w", out.err)
		}
		return res, err
	}
	res.Labeled, res.Encrypted = addLabel, o.Encrypt
	return res, nil
}

// checkComplete requires the %%EOF marker within the last eofWindow bytes.
func checkComplete(src io.ReaderAt, size int64) error {
	n := min(size, eofWindow)
	tail := make([]byte, n)
	if _, err := src.ReadAt(tail, size-n); err != nil && err != io.EOF {
		return fmt.Errorf("%w: pdf: %v", filetype.ErrFormat, err)
	}
	if !bytes.Contains(tail, []byte("%%EOF")) {
		return fmt.Errorf("%w: pdf has no %%%%EOF marker at its end (truncated?)", filetype.ErrFormat)
	}
	return nil
}

// guard runs one pdfcpu step: a panic (pdfcpu can panic on hostile input)
// and any error become a filetype.ErrFormat error naming the step.
func guard(step string, fn func() error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%w: pdf %s: parser failure: %v", filetype.ErrFormat, step, r)
		}
	}()
	if err := fn(); err != nil {
		for _, known := range []error{filetype.ErrFormat, filetype.ErrTooLarge, filetype.ErrBomb} {
			if errors.Is(err, known) {
				return err
			}
		}
		return fmt.Errorf("%w: pdf %s: %w", filetype.ErrFormat, step, err)
	}
	return nil
}

// errWriter remembers the destination's error, so a failing client is not
// reported as a malformed file.
type errWriter struct {
	w   io.Writer
	err error
}

func (e *errWriter) Write(p []byte) (int, error) {
	n, err := e.w.Write(p)
	if err != nil && e.err == nil {
		e.err = err
	}
	return n, err
}
