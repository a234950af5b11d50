package testdocs

import (
	"bytes"
	"strings"
	"testing"

	"github.com/portcullis-gw/portcullis/policy/filetype"
)

func TestDocumentsReadBack(t *testing.T) {
	p := PDF("Card 4111 1111 1111 1111", "second (line)")
	if filetype.Detect(p) != filetype.PDF {
		t.Fatal("PDF not detected")
	}
	var text bytes.Buffer
	if _, err := filetype.ExtractPDF(bytes.NewReader(p), int64(len(p)), &text, filetype.Limits{}); err != nil || !strings.Contains(text.String(), "4111 1111 1111 1111") {
		t.Fatalf("PDF text %q, %v", text.String(), err)
	}
	for _, label := range []string{"", "Confidential"} {
		d := DOCX(label, "hello", "a <b> & c")
		text.Reset()
		info, err := filetype.ExtractOOXML(bytes.NewReader(d), int64(len(d)), &text, filetype.Limits{})
		if err != nil || !strings.Contains(text.String(), "a <b> & c") || info.LabelName() != label {
			t.Fatalf("docx %q: text %q label %q, %v", label, text.String(), info.LabelName(), err)
		}
	}
}
