package protect

import (
	"archive/zip"
	"bytes"
	"io"
	"math/rand/v2"
	"testing"

	"github.com/portcullis-gw/portcullis/policy/filetype"
)

// BenchmarkProtect protects a 1 MiB PDF and a 1 MiB docx. Baselines from
// the same run: copying the file through (copy) and policy/filetype's
// inspection of it (inspect), so results read as ratios.
func BenchmarkProtect(b *testing.B) {
	pdf := buildPDF(textContent(1<<20), "", "")
	blob := make([]byte, 900<<10)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range blob {
		blob[i] = byte(rng.Uint32()) // incompressible, like a photo
	}
	entries := ooxmlEntries("docx", "")
	for i := range entries {
		if entries[i].name == "word/document.xml" {
			entries[i].data = bytes.ReplaceAll(entries[i].data, []byte("<w:p>"), bytes.Repeat([]byte("<w:p><w:r><w:t>Quarterly figures, revenue and margins by region.</w:t></w:r></w:p>"), 1500))
		}
	}
	entries = append(entries, zipEntry{name: "word/media/image1.png", data: blob, method: zip.Store})
	docx := buildZip(b, entries)

	run := func(name string, in []byte, fn func(io.Writer, *bytes.Reader) error) {
		b.Run(name, func(b *testing.B) {
			b.SetBytes(int64(len(in)))
			b.ReportAllocs()
			for b.Loop() {
				if err := fn(io.Discard, bytes.NewReader(in)); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	protect := func(mime string, o Options) func(io.Writer, *bytes.Reader) error {
		return func(w io.Writer, r *bytes.Reader) error {
			_, err := Protect(w, r, r.Size(), mime, o)
			return err
		}
	}
	b.Logf("pdf %d bytes, docx %d bytes", len(pdf), len(docx))
	for _, f := range []struct {
		kind, mime string
		in         []byte
	}{{"pdf", filetype.PDF.MIME, pdf}, {"docx", filetype.DOCX.MIME, docx}} {
		run(f.kind+"/copy", f.in, func(w io.Writer, r *bytes.Reader) error { return copyThrough(w, r, r.Size()) })
		run(f.kind+"/inspect", f.in, func(w io.Writer, r *bytes.Reader) error {
			var err error
			if f.kind == "pdf" {
				_, err = filetype.ExtractPDF(r, r.Size(), w, filetype.Limits{})
			} else {
				_, err = filetype.ExtractOOXML(r, r.Size(), w, filetype.Limits{})
			}
			return err
		})
		run(f.kind+"/label", f.in, protect(f.mime, Options{Label: "Confidential"}))
	}
	run("pdf/label+encrypt", pdf, protect(filetype.PDF.MIME, Options{Label: "Confidential", Encrypt: true, Password: testPassword}))
}
