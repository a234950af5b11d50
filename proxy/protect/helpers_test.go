package protect

import (
	"archive/zip"
	"bytes"
	"fmt"
	"strings"
	"testing"
)

const (
	// pdfcpu's reader prepares passwords with the PRECIS identifier profile,
	// which refuses spaces, so the pdfcpu round trips use none;
	// TestPDFPasswordWithSpaces checks one with qpdf.
	testPassword = "Correct-Horse_Battery.Staple-42"
	otherLabelID = "1b0e2c5a-8f1d-4c3e-9a7b-2d6f0e4c8a91"
)

// buildPDF writes a one-page PDF with real byte offsets in its xref table.
// content is the page's content stream; info is extra Info dictionary
// entries ("/Key (value)"); catalogExtra goes into the catalog; extra are
// objects 7, 8, ...
func buildPDF(content, info, catalogExtra string, extra ...string) []byte {
	objs := []string{
		"<< /Type /Catalog /Pages 2 0 R " + catalogExtra + ">>",
		"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
		"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R /Resources << /Font << /F1 5 0 R >> >> >>",
		fmt.Sprintf("<< /Length %d >>\nstream\n%s\nendstream", len(content), content),
		"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
		"<< /Title (Quarterly figures) /Producer (protect test) " + info + ">>",
	}
	objs = append(objs, extra...)
	var b bytes.Buffer
	b.WriteString("%PDF-1.7\n%\xe2\xe3\xcf\xd3\n")
	offsets := make([]int, len(objs))
	for i, o := range objs {
		offsets[i] = b.Len()
		fmt.Fprintf(&b, "%d 0 obj\n%s\nendobj\n", i+1, o)
	}
	xref := b.Len()
	fmt.Fprintf(&b, "xref\n0 %d\n0000000000 65535 f \n", len(objs)+1)
	for _, off := range offsets {
		fmt.Fprintf(&b, "%010d 00000 n \n", off)
	}
	fmt.Fprintf(&b, "trailer\n<< /Size %d /Root 1 0 R /Info 6 0 R /ID [<0123456789abcdef0123456789abcdef> <0123456789abcdef0123456789abcdef>] >>\nstartxref\n%d\n%%%%EOF\n", len(objs)+1, xref)
	return b.Bytes()
}

// textContent is a content stream showing lines of text, about size bytes.
func textContent(size int) string {
	var b strings.Builder
	b.WriteString("BT /F1 10 Tf 72 760 Td 12 TL\n")
	for i := 0; b.Len() < size; i++ {
		fmt.Fprintf(&b, "(Line %d of the quarterly report: revenue, costs and margins.) '\n", i)
	}
	b.WriteString("ET")
	return b.String()
}

func simplePDF() []byte { return buildPDF(textContent(200), "", "") }

// labelledInfo is Info dictionary entries of an enabled label.
func labelledInfo(id, name string) string {
	return fmt.Sprintf("/MSIP_Label_%s_Enabled (true) /MSIP_Label_%s_Name (%s) /MSIP_Label_%s_Method (Privileged) ", id, id, name, id)
}

type zipEntry struct {
	name   string
	data   []byte
	method uint16
}

func buildZip(t testing.TB, entries []zipEntry) []byte {
	t.Helper()
	var b bytes.Buffer
	zw := zip.NewWriter(&b)
	for _, e := range entries {
		w, err := zw.CreateHeader(&zip.FileHeader{Name: e.name, Method: e.method})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write(e.data); err != nil {
			t.Fatal(err)
		}
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

const (
	xmlDecl   = `<?xml version="1.0" encoding="UTF-8" standalone="yes"?>` + "\r\n"
	relsNS    = "http://schemas.openxmlformats.org/package/2006/relationships"
	officeRel = "http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument"
)

// ooxmlEntries is a small but complete package of the given kind (docx,
// xlsx, pptx). custom, when set, is a docProps/custom.xml part, referenced
// from the relationships and content types.
func ooxmlEntries(kind, custom string) []zipEntry {
	var main, mainType string
	var parts []zipEntry
	switch kind {
	case "docx":
		main, mainType = "word/document.xml", "application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"
		parts = append(parts, zipEntry{name: main, data: []byte(xmlDecl + `<w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"><w:body><w:p><w:r><w:t>Quarterly figures</w:t></w:r></w:p></w:body></w:document>`), method: zip.Deflate})
	case "xlsx":
		main, mainType = "xl/workbook.xml", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"
		parts = append(parts,
			zipEntry{name: main, data: []byte(xmlDecl + `<workbook xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><sheets><sheet name="S" sheetId="1"/></sheets></workbook>`), method: zip.Deflate},
			zipEntry{name: "xl/worksheets/sheet1.xml", data: []byte(xmlDecl + `<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><sheetData><row r="1"><c r="A1"><v>42</v></c></row></sheetData></worksheet>`), method: zip.Deflate})
	case "pptx":
		main, mainType = "ppt/presentation.xml", "application/vnd.openxmlformats-officedocument.presentationml.presentation.main+xml"
		parts = append(parts,
			zipEntry{name: main, data: []byte(xmlDecl + `<p:presentation xmlns:p="http://schemas.openxmlformats.org/presentationml/2006/main"/>`), method: zip.Deflate},
			zipEntry{name: "ppt/slides/slide1.xml", data: []byte(xmlDecl + `<p:sld xmlns:p="http://schemas.openxmlformats.org/presentationml/2006/main" xmlns:a="http://schemas.openxmlformats.org/drawingml/2006/main"><a:t>Slide text</a:t></p:sld>`), method: zip.Deflate})
	}
	overrides := `<Override PartName="/` + main + `" ContentType="` + mainType + `"/>` +
		`<Override PartName="/docProps/app.xml" ContentType="application/vnd.openxmlformats-officedocument.extended-properties+xml"/>`
	rels := `<Relationship Id="rId1" Type="` + officeRel + `" Target="` + main + `"/>` +
		`<Relationship Id="rId3" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/extended-properties" Target="docProps/app.xml"/>`
	if custom != "" {
		overrides += `<Override PartName="/docProps/custom.xml" ContentType="` + customPropsType + `"/>`
		rels += `<Relationship Id="rId4" Type="` + customPropsRelType + `" Target="docProps/custom.xml"/>`
	}
	entries := []zipEntry{
		{name: contentTypesPart, data: []byte(xmlDecl + `<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"><Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/><Default Extension="xml" ContentType="application/xml"/><Default Extension="bin" ContentType="application/octet-stream"/>` + overrides + `</Types>`), method: zip.Deflate},
		{name: packageRelsPart, data: []byte(xmlDecl + `<Relationships xmlns="` + relsNS + `">` + rels + `</Relationships>`), method: zip.Deflate},
	}
	entries = append(entries, parts...)
	entries = append(entries,
		zipEntry{name: "docProps/app.xml", data: []byte(xmlDecl + `<Properties xmlns="http://schemas.openxmlformats.org/officeDocument/2006/extended-properties"><Application>protect test</Application></Properties>`), method: zip.Deflate},
		// A stored binary entry: copied raw, never recompressed.
		zipEntry{name: "media/blob.bin", data: bytes.Repeat([]byte{0, 1, 2, 3, 4, 5, 6, 7, 0xfe}, 100), method: zip.Store},
	)
	if custom != "" {
		entries = append(entries, zipEntry{name: defaultCustomPart, data: []byte(custom), method: zip.Deflate})
	}
	return entries
}

// customWithLabel is a custom properties part holding an enabled label
// and an unrelated property.
func customWithLabel(id, name string) string {
	p := func(pid int, key, v string) string {
		return fmt.Sprintf(`<property fmtid="{D5CDD505-2E9C-101B-9397-08002B2CF9AE}" pid="%d" name="%s"><vt:lpwstr>%s</vt:lpwstr></property>`, pid, key, v)
	}
	return xmlDecl + `<Properties xmlns="` + customPropsNS + `" xmlns:vt="` + vtNS + `">` +
		p(2, "Department", "Finance") +
		p(3, "MSIP_Label_"+id+"_Enabled", "true") +
		p(4, "MSIP_Label_"+id+"_Name", name) +
		`</Properties>`
}
