package filetype

import (
	"archive/zip"
	"bytes"
	"compress/zlib"
	"errors"
	"fmt"
	"strings"
	"testing"
)

const labelGUID = "defa4170-0d19-0005-0004-bc88714345d2"

// makeOOXML builds a minimal package with the given parts.
func makeOOXML(t testing.TB, parts map[string]string, order []string) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, name := range order {
		w, err := zw.Create(name)
		if err != nil {
			t.Fatal(err)
		}
		w.Write([]byte(parts[name]))
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

const customXML = `<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<Properties xmlns="http://schemas.openxmlformats.org/officeDocument/2006/custom-properties" xmlns:vt="http://schemas.openxmlformats.org/officeDocument/2006/docPropsVTypes">
<property fmtid="{D5CDD505-2E9C-101B-9397-08002B2CF9AE}" pid="2" name="MSIP_Label_` + labelGUID + `_Enabled"><vt:lpwstr>true</vt:lpwstr></property>
<property fmtid="{D5CDD505-2E9C-101B-9397-08002B2CF9AE}" pid="3" name="MSIP_Label_` + labelGUID + `_Name"><vt:lpwstr>Confidential</vt:lpwstr></property>
<property fmtid="{D5CDD505-2E9C-101B-9397-08002B2CF9AE}" pid="4" name="MSIP_Label_` + labelGUID + `_SiteId"><vt:lpwstr>72f988bf-86f1-41af-91ab-2d7cd011db47</vt:lpwstr></property>
<property fmtid="{D5CDD505-2E9C-101B-9397-08002B2CF9AE}" pid="5" name="Other"><vt:lpwstr>x</vt:lpwstr></property>
</Properties>`

func docx(t testing.TB, withLabel bool) []byte {
	parts := map[string]string{
		"[Content_Types].xml": `<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"/>`,
		"word/document.xml": `<w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"><w:body>
<w:p><w:r><w:t>Card: 4111 1111</w:t></w:r><w:r><w:t xml:space="preserve"> 1111 1111</w:t></w:r></w:p>
<w:p><w:r><w:t>Second paragraph &amp; more</w:t></w:r></w:p></w:body></w:document>`,
		"word/footer1.xml":    `<w:ftr xmlns:w="x"><w:p><w:r><w:t>footer text</w:t></w:r></w:p></w:ftr>`,
		"docProps/custom.xml": customXML,
	}
	order := []string{"[Content_Types].xml", "word/document.xml", "word/footer1.xml"}
	if withLabel {
		order = append(order, "docProps/custom.xml")
	}
	return makeOOXML(t, parts, order)
}

func TestDetect(t *testing.T) {
	exe := append([]byte("MZ"), make([]byte, 100)...)
	tests := []struct {
		head []byte
		want Type
	}{
		{[]byte("%PDF-1.7\n"), PDF},
		{docx(t, false), DOCX},
		{makeOOXML(t, map[string]string{"[Content_Types].xml": "", "xl/workbook.xml": ""}, []string{"[Content_Types].xml", "xl/workbook.xml"}), XLSX},
		{makeOOXML(t, map[string]string{"ppt/presentation.xml": ""}, []string{"ppt/presentation.xml"}), PPTX},
		{makeOOXML(t, map[string]string{"a.txt": "x"}, []string{"a.txt"}), ZIP},
		{[]byte("\x89PNG\r\n\x1a\n...."), PNG},
		{[]byte("\xff\xd8\xff\xe0"), JPEG},
		{[]byte("GIF89a"), GIF},
		{[]byte("\x1f\x8b\x08"), GZIP},
		{exe, EXE},
		{[]byte("\x7fELF\x02\x01"), ELF},
		{[]byte("\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"), OLE},
		{[]byte("hello, wörld\n"), Text},
		{[]byte("  <!DOCTYPE html><html>"), HTML},
		{[]byte("<?xml version=\"1.0\"?><a/>"), XML},
		{[]byte("text cut in a rune \xc3"), Text},
		{[]byte("bin\x00ary"), Unknown},
		{[]byte{}, Unknown},
	}
	for i, tc := range tests {
		if got := Detect(tc.head[:min(len(tc.head), SniffLen)]); got != tc.want {
			t.Errorf("%d: Detect = %v, want %v", i, got.Name, tc.want.Name)
		}
	}
}

func TestExtractDOCX(t *testing.T) {
	b := docx(t, true)
	var out bytes.Buffer
	info, err := ExtractOOXML(bytes.NewReader(b), int64(len(b)), &out, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if info.Type != DOCX {
		t.Fatalf("type %v", info.Type)
	}
	text := out.String()
	for _, want := range []string{"Card: 4111 1111 1111 1111\n", "Second paragraph & more\n", "footer text"} {
		if !strings.Contains(text, want) {
			t.Errorf("text %q lacks %q", text, want)
		}
	}
	if info.LabelName() != "Confidential" || len(info.Labels) != 1 || info.Labels[0].ID != labelGUID || info.Labels[0].SiteID == "" {
		t.Errorf("labels %+v", info.Labels)
	}
	b = docx(t, false)
	info, _ = ExtractOOXML(bytes.NewReader(b), int64(len(b)), &out, Limits{})
	if info.LabelName() != "" {
		t.Errorf("unlabelled document has label %q", info.LabelName())
	}
}

func TestExtractXLSXAndPPTX(t *testing.T) {
	x := makeOOXML(t, map[string]string{
		"xl/workbook.xml":           `<workbook/>`,
		"xl/sharedStrings.xml":      `<sst><si><t>IBAN</t></si><si><t>DE89 3704 0044 0532 0130 00</t></si></sst>`,
		"xl/worksheets/sheet1.xml":  `<worksheet><sheetData><row><c t="s"><v>0</v></c><c><v>4111111111111111</v></c><c t="inlineStr"><is><t>inline</t></is></c></row></sheetData></worksheet>`,
		"docMetadata/LabelInfo.xml": `<clbl:labelList xmlns:clbl="x"><clbl:label id="{` + labelGUID + `}" enabled="1" method="Privileged" siteId="{s}"/></clbl:labelList>`,
	}, []string{"xl/workbook.xml", "xl/sharedStrings.xml", "xl/worksheets/sheet1.xml", "docMetadata/LabelInfo.xml"})
	var out bytes.Buffer
	info, err := ExtractOOXML(bytes.NewReader(x), int64(len(x)), &out, Limits{})
	if err != nil || info.Type != XLSX {
		t.Fatal(err, info.Type)
	}
	for _, want := range []string{"DE89 3704 0044 0532 0130 00\n", "4111111111111111\n", "inline"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("xlsx text %q lacks %q", out.String(), want)
		}
	}
	if len(info.Labels) != 1 || !info.Labels[0].Enabled || info.Labels[0].Method != "Privileged" {
		t.Errorf("LabelInfo labels %+v", info.Labels)
	}
	p := makeOOXML(t, map[string]string{
		"ppt/presentation.xml":   `<p/>`,
		"ppt/slides/slide10.xml": `<p:sld xmlns:a="a" xmlns:p="p"><a:p><a:r><a:t>ten</a:t></a:r></a:p></p:sld>`,
		"ppt/slides/slide2.xml":  `<p:sld xmlns:a="a" xmlns:p="p"><a:p><a:r><a:t>two</a:t></a:r></a:p></p:sld>`,
	}, []string{"ppt/presentation.xml", "ppt/slides/slide10.xml", "ppt/slides/slide2.xml"})
	out.Reset()
	info, err = ExtractOOXML(bytes.NewReader(p), int64(len(p)), &out, Limits{})
	if err != nil || info.Type != PPTX || out.String() != "two\nten\n" {
		t.Fatalf("pptx: %v %v %q", err, info.Type, out.String())
	}
}

func TestOOXMLBounds(t *testing.T) {
	// A zip bomb: 64 MiB of zeros compresses about 1000:1.
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	zw.Create("word/document.xml")
	w, _ := zw.Create("word/header1.xml")
	zero := make([]byte, 1<<20)
	for i := 0; i < 64; i++ {
		w.Write(zero)
	}
	zw.Close()
	b := buf.Bytes()
	if _, err := ExtractOOXML(bytes.NewReader(b), int64(len(b)), &bytes.Buffer{}, Limits{}); !errors.Is(err, ErrBomb) {
		t.Fatalf("bomb: %v", err)
	}
	d := docx(t, true)
	if _, err := ExtractOOXML(bytes.NewReader(d), int64(len(d)), &bytes.Buffer{}, Limits{MaxUncompressed: 100}); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("budget: %v", err)
	}
	if _, err := ExtractOOXML(bytes.NewReader(d), int64(len(d)), &bytes.Buffer{}, Limits{MaxEntries: 2}); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("entries: %v", err)
	}
	if _, err := ExtractOOXML(bytes.NewReader([]byte("PK\x03\x04junk")), 8, &bytes.Buffer{}, Limits{}); !errors.Is(err, ErrFormat) {
		t.Fatalf("junk: %v", err)
	}
}

// makePDF writes a minimal PDF: one FlateDecode content stream, one plain
// one, an Info dictionary with a label and XMP metadata.
func makePDF(t testing.TB, label bool) []byte {
	var z bytes.Buffer
	zw := zlib.NewWriter(&z)
	zw.Write([]byte("BT /F1 12 Tf 72 720 Td (Card number: 4111 1111 1111 1111) Tj ET\nBT [(S)-20(SN)-400(123-45-6789)] TJ ET"))
	zw.Close()
	plain := "BT (Escaped \\(parens\\) and \\101\\102C) Tj T* <48656C6C6F> Tj ET"
	var b bytes.Buffer
	b.WriteString("%PDF-1.7\n%\xe2\xe3\xcf\xd3\n")
	b.WriteString("1 0 obj << /Type /Catalog /Pages 2 0 R >> endobj\n")
	fmt.Fprintf(&b, "4 0 obj << /Length %d /Filter /FlateDecode >> stream\n", z.Len())
	b.Write(z.Bytes())
	b.WriteString("\nendstream endobj\n")
	fmt.Fprintf(&b, "5 0 obj << /Length %d >> stream\n%s\nendstream endobj\n", len(plain), plain)
	if label {
		fmt.Fprintf(&b, "6 0 obj << /Producer (test) /MSIP_Label_%s_Enabled (true) /MSIP_Label_%s_Name <FEFF0053006500630072006500740020> >> endobj\n", labelGUID, labelGUID)
		xmp := `<x:xmpmeta><rdf:Description pdfx:MSIP_Label_` + labelGUID + `_Method="Standard"/></x:xmpmeta>`
		fmt.Fprintf(&b, "7 0 obj << /Type /Metadata /Subtype /XML /Length %d >> stream\n%s\nendstream endobj\n", len(xmp), xmp)
	}
	b.WriteString("trailer << /Root 1 0 R /Info 6 0 R >>\n%%EOF\n")
	return b.Bytes()
}

func TestExtractPDF(t *testing.T) {
	p := makePDF(t, true)
	if Detect(p) != PDF {
		t.Fatal("not detected as PDF")
	}
	var out bytes.Buffer
	info, err := ExtractPDF(bytes.NewReader(p), int64(len(p)), &out, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"Card number: 4111 1111 1111 1111", "SSN 123-45-6789", "Escaped (parens) and ABC", "Hello"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("text %q lacks %q", out.String(), want)
		}
	}
	if info.LabelName() != "Secret" || info.Labels[0].Method != "Standard" {
		t.Errorf("labels %+v", info.Labels)
	}
	p = makePDF(t, false)
	info, _ = ExtractPDF(bytes.NewReader(p), int64(len(p)), &bytes.Buffer{}, Limits{})
	if info.LabelName() != "" {
		t.Errorf("unlabelled PDF has %q", info.LabelName())
	}
	if _, err := ExtractPDF(bytes.NewReader(p), int64(len(p)), &bytes.Buffer{}, Limits{MaxInput: 10}); !errors.Is(err, ErrTooLarge) {
		t.Errorf("size limit: %v", err)
	}
	if _, err := ExtractPDF(bytes.NewReader([]byte("nope")), 4, &bytes.Buffer{}, Limits{}); !errors.Is(err, ErrFormat) {
		t.Errorf("not a pdf: %v", err)
	}
}

// Truncated and garbled inputs never panic.
func TestExtractNeverPanics(t *testing.T) {
	for _, src := range [][]byte{makePDF(t, true), docx(t, true)} {
		for cut := 0; cut < len(src); cut += 7 {
			b := src[:cut]
			ExtractPDF(bytes.NewReader(b), int64(len(b)), &bytes.Buffer{}, Limits{})
			ExtractOOXML(bytes.NewReader(b), int64(len(b)), &bytes.Buffer{}, Limits{})
			Detect(b)
		}
	}
}
