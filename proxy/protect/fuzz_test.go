package protect

import (
	"archive/zip"
	"bytes"
	"errors"
	"testing"

	"github.com/portcullis-gw/portcullis/policy/filetype"
)

// FuzzProtect feeds arbitrary bytes to Protect as PDF and as each OOXML
// type: it must return a classified error or a file, never panic.
func FuzzProtect(f *testing.F) {
	f.Add(simplePDF(), uint8(0))
	f.Add(simplePDF(), uint8(1))
	f.Add(buildPDF("BT (x) Tj ET", labelledInfo(otherLabelID, "Secret"), ""), uint8(0))
	f.Add(buildZip(f, ooxmlEntries("docx", "")), uint8(2))
	f.Add(buildZip(f, ooxmlEntries("xlsx", customWithLabel(otherLabelID, "Secret"))), uint8(3))
	f.Add(buildZip(f, ooxmlEntries("pptx", `<Properties xmlns="`+customPropsNS+`"/>`)), uint8(4))
	f.Add([]byte("%PDF-1.7\n1 0 obj <<>> endobj\ntrailer <</Root 1 0 R>>\n%%EOF"), uint8(1))
	f.Add([]byte("PK\x03\x04garbage"), uint8(2))
	mimes := []string{filetype.PDF.MIME, filetype.PDF.MIME, filetype.DOCX.MIME, filetype.XLSX.MIME, filetype.PPTX.MIME}
	lim := filetype.Limits{MaxInput: 1 << 20, MaxUncompressed: 8 << 20}
	f.Fuzz(func(t *testing.T, in []byte, mode uint8) {
		pick := int(mode) % len(mimes)
		mime := mimes[pick]
		o := Options{Label: "Confidential", Limits: lim}
		if pick == 1 {
			o.Encrypt, o.Password = true, "fuzz"
		}
		var out bytes.Buffer
		res, err := Protect(&out, bytes.NewReader(in), int64(len(in)), mime, o)
		if err != nil {
			for _, known := range []error{filetype.ErrFormat, filetype.ErrTooLarge, filetype.ErrBomb, ErrUnsupported} {
				if errors.Is(err, known) {
					return
				}
			}
			t.Fatalf("unclassified error: %v", err)
		}
		if out.Len() == 0 {
			t.Fatalf("success (%+v) with empty output", res)
		}
		if mime != filetype.PDF.MIME {
			if _, err := zip.NewReader(bytes.NewReader(out.Bytes()), int64(out.Len())); err != nil {
				t.Fatalf("output is not a zip: %v", err)
			}
		}
	})
}
