package protect

import (
	"archive/zip"
	"bytes"
	"compress/flate"
	"errors"
	"hash/crc32"
	"io"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/portcullis-gw/portcullis/policy/filetype"
)

var ooxmlMIME = map[string]string{"docx": filetype.DOCX.MIME, "xlsx": filetype.XLSX.MIME, "pptx": filetype.PPTX.MIME}

func openZip(t *testing.T, b []byte) *zip.Reader {
	t.Helper()
	zr, err := zip.NewReader(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatalf("output is not a zip: %v", err)
	}
	return zr
}

func entryBytes(t *testing.T, f *zip.File) []byte {
	t.Helper()
	rc, err := f.Open()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("%s: %v", f.Name, err)
	}
	return b
}

func rawBytes(t *testing.T, f *zip.File) []byte {
	t.Helper()
	r, err := f.OpenRaw()
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func ooxmlLabels(t *testing.T, b []byte) filetype.Info {
	t.Helper()
	info, err := filetype.ExtractOOXML(bytes.NewReader(b), int64(len(b)), io.Discard, filetype.Limits{})
	if err != nil {
		t.Fatalf("filetype.ExtractOOXML: %v", err)
	}
	return info
}

// checkInserted: got is orig with markup inserted before the root's end
// tag, every original byte kept.
func checkInserted(t *testing.T, name string, orig, got []byte, rootEnd string) {
	t.Helper()
	i := bytes.LastIndex(orig, []byte(rootEnd))
	if i < 0 || !bytes.HasPrefix(got, orig[:i]) || !bytes.HasSuffix(got, orig[i:]) || len(got) <= len(orig) {
		t.Errorf("%s was not extended in place:\n%s\nfrom\n%s", name, got, orig)
	}
}

func TestOOXMLAddsLabel(t *testing.T) {
	for kind, mime := range ooxmlMIME {
		t.Run(kind, func(t *testing.T) {
			in := buildZip(t, ooxmlEntries(kind, ""))
			out, res, err := protectBytes(t, in, mime, Options{Label: "Confidential", SiteID: "72f988bf-86f1-41af-91ab-2d7cd011db47"})
			if err != nil {
				t.Fatal(err)
			}
			if want := (Result{Labeled: true, Type: kind}); res != want {
				t.Fatalf("result %+v, want %+v", res, want)
			}
			if got := filetype.Detect(out[:min(len(out), filetype.SniffLen)]); got.Name != kind {
				t.Errorf("output detected as %s", got.Name)
			}
			info := ooxmlLabels(t, out)
			if info.Type.Name != kind || info.LabelName() != "Confidential" {
				t.Fatalf("read back %+v", info)
			}
			l := info.Labels[0]
			if want := uuid.NewSHA1(labelNamespace, []byte("Confidential")).String(); l.ID != want || l.SiteID != "72f988bf-86f1-41af-91ab-2d7cd011db47" || l.Method != "Standard" {
				t.Errorf("label %+v", l)
			}

			src, dst := openZip(t, in), openZip(t, out)
			got := map[string]*zip.File{}
			for _, f := range dst.File {
				got[f.Name] = f
			}
			for i, f := range src.File {
				g := got[f.Name]
				if g == nil {
					t.Fatalf("%s missing from the output", f.Name)
				}
				if dst.File[i].Name != f.Name {
					t.Errorf("entry %d is %s, want %s (order kept)", i, dst.File[i].Name, f.Name)
				}
				switch f.Name {
				case contentTypesPart:
					checkInserted(t, f.Name, entryBytes(t, f), entryBytes(t, g), "</Types>")
				case packageRelsPart:
					checkInserted(t, f.Name, entryBytes(t, f), entryBytes(t, g), "</Relationships>")
				default:
					if g.Method != f.Method || g.CRC32 != f.CRC32 || !bytes.Equal(rawBytes(t, g), rawBytes(t, f)) {
						t.Errorf("%s was not copied byte for byte", f.Name)
					}
				}
			}
			custom := got[defaultCustomPart]
			if custom == nil || len(dst.File) != len(src.File)+1 {
				t.Fatalf("custom properties part not added (%d entries)", len(dst.File))
			}
			if c := entryBytes(t, custom); !bytes.Contains(c, []byte(`pid="2" name="MSIP_Label_`)) {
				t.Errorf("custom.xml:\n%s", c)
			}
		})
	}
}

func TestOOXMLExtendsCustomProperties(t *testing.T) {
	custom := xmlDecl + `<Properties xmlns="` + customPropsNS + `" xmlns:vt="` + vtNS + `"><property fmtid="{D5CDD505-2E9C-101B-9397-08002B2CF9AE}" pid="7" name="Department"><vt:lpwstr>Finance</vt:lpwstr></property></Properties>`
	in := buildZip(t, ooxmlEntries("docx", custom))
	out, res, err := protectBytes(t, in, filetype.DOCX.MIME, Options{Label: "Confidential"})
	if err != nil || !res.Labeled {
		t.Fatalf("%+v %v", res, err)
	}
	src, dst := openZip(t, in), openZip(t, out)
	if len(dst.File) != len(src.File) {
		t.Fatalf("%d entries, want %d", len(dst.File), len(src.File))
	}
	for i, f := range src.File {
		g := dst.File[i]
		if f.Name == defaultCustomPart {
			c := entryBytes(t, g)
			checkInserted(t, f.Name, entryBytes(t, f), c, "</Properties>")
			// pids go on after the highest; vt is declared once, on the root.
			if !bytes.Contains(c, []byte(`pid="8" name="MSIP_Label_`)) || bytes.Count(c, []byte("xmlns:vt")) != 1 {
				t.Errorf("custom.xml:\n%s", c)
			}
			continue
		}
		// The relationship and the override exist already: untouched.
		if !bytes.Equal(rawBytes(t, g), rawBytes(t, f)) {
			t.Errorf("%s changed", f.Name)
		}
	}
	if info := ooxmlLabels(t, out); info.LabelName() != "Confidential" {
		t.Errorf("labels %+v", info.Labels)
	}
}

func TestOOXMLKeepsExistingLabel(t *testing.T) {
	in := buildZip(t, ooxmlEntries("docx", customWithLabel(otherLabelID, "Highly Confidential")))
	out, res, err := protectBytes(t, in, filetype.DOCX.MIME, Options{Label: "Confidential"})
	if err != nil {
		t.Fatal(err)
	}
	if want := (Result{KeptLabel: "Highly Confidential", Type: "docx"}); res != want {
		t.Fatalf("result %+v, want %+v", res, want)
	}
	if !bytes.Equal(out, in) {
		t.Error("a labelled document was changed")
	}
}

func TestOOXMLReplacesStaleOwnLabel(t *testing.T) {
	id := uuid.NewSHA1(labelNamespace, []byte("Confidential")).String()
	custom := strings.Replace(customWithLabel(id, "Confidential"), ">true<", ">false<", 1)
	in := buildZip(t, ooxmlEntries("docx", custom))
	out, res, err := protectBytes(t, in, filetype.DOCX.MIME, Options{Label: "Confidential"})
	if err != nil || !res.Labeled || res.KeptLabel != "" {
		t.Fatalf("%+v %v", res, err)
	}
	c := entryBytes(t, findEntry(t, openZip(t, out), defaultCustomPart))
	if n := bytes.Count(c, []byte("_Enabled")); n != 1 || !bytes.Contains(c, []byte("Department")) {
		t.Errorf("custom.xml (%d Enabled properties):\n%s", n, c)
	}
	if info := ooxmlLabels(t, out); info.LabelName() != "Confidential" || len(info.Labels) != 1 {
		t.Errorf("labels %+v", info.Labels)
	}
}

func findEntry(t *testing.T, zr *zip.Reader, name string) *zip.File {
	t.Helper()
	for _, f := range zr.File {
		if f.Name == name {
			return f
		}
	}
	t.Fatalf("no %s", name)
	return nil
}

func TestOOXMLPrefixedAndEmptyParts(t *testing.T) {
	const prefixed = `<op:Properties xmlns:op="` + customPropsNS + `" xmlns:t="` + vtNS + `"/>`
	const noVT = `<Properties xmlns="` + customPropsNS + `"></Properties>`
	const bom = "\xef\xbb\xbf" + xmlDecl + `<Properties xmlns="` + customPropsNS + `" xmlns:vt="` + vtNS + `">` + "\r\n" + `</Properties>` + "\r\n"
	for name, custom := range map[string]string{"prefixed, self-closing": prefixed, "no vt namespace": noVT, "byte order mark": bom} {
		t.Run(name, func(t *testing.T) {
			out, res, err := protectBytes(t, buildZip(t, ooxmlEntries("xlsx", custom)), filetype.XLSX.MIME, Options{Label: "Internal"})
			if err != nil || !res.Labeled {
				t.Fatalf("%+v %v", res, err)
			}
			if info := ooxmlLabels(t, out); info.LabelName() != "Internal" {
				t.Errorf("labels %+v", info.Labels)
			}
			c := entryBytes(t, findEntry(t, openZip(t, out), defaultCustomPart))
			if err := walkXML(c, func(*element) {}); err != nil {
				t.Errorf("custom.xml not well formed: %v\n%s", err, c)
			}
			t.Logf("%s", c)
		})
	}
}

func TestOOXMLLabelInfo(t *testing.T) {
	labelInfo := func(enabled string) zipEntry {
		return zipEntry{name: defaultLabelInfo, method: zip.Deflate, data: []byte(xmlDecl +
			`<clbl:labelList xmlns:clbl="http://schemas.microsoft.com/office/2020/mipLabelMetadata"><clbl:label id="{` + otherLabelID + `}" enabled="` + enabled + `" method="Privileged" siteId="{72f988bf-86f1-41af-91ab-2d7cd011db47}" removed="0"/></clbl:labelList>`)}
	}
	// An enabled label known only by GUID is kept.
	in := buildZip(t, append(ooxmlEntries("pptx", ""), labelInfo("1")))
	out, res, err := protectBytes(t, in, filetype.PPTX.MIME, Options{Label: "Confidential"})
	if err != nil || res.KeptLabel != "{"+otherLabelID+"}" || res.Labeled || !bytes.Equal(out, in) {
		t.Fatalf("%+v %v", res, err)
	}
	// A disabled one is not; the new label goes into LabelInfo.xml too.
	in = buildZip(t, append(ooxmlEntries("pptx", ""), labelInfo("0")))
	out, res, err = protectBytes(t, in, filetype.PPTX.MIME, Options{Label: "Confidential"})
	if err != nil || !res.Labeled {
		t.Fatalf("%+v %v", res, err)
	}
	li := entryBytes(t, findEntry(t, openZip(t, out), defaultLabelInfo))
	id := uuid.NewSHA1(labelNamespace, []byte("Confidential")).String()
	if !bytes.Contains(li, []byte(`<clbl:label id="{`+id+`}" enabled="1" method="Standard"`)) || !bytes.Contains(li, []byte(otherLabelID)) {
		t.Errorf("LabelInfo.xml:\n%s", li)
	}
	if info := ooxmlLabels(t, out); info.LabelName() != "Confidential" {
		t.Errorf("labels %+v", info.Labels)
	}
}

func TestOOXMLRefusals(t *testing.T) {
	docx := buildZip(t, ooxmlEntries("docx", ""))
	cases := []struct {
		name string
		in   []byte
		mime string
		o    Options
		want error
	}{
		{"encrypt docx", docx, filetype.DOCX.MIME, Options{Label: "X", Encrypt: true, Password: "p"}, ErrUnsupported},
		{"png", []byte("\x89PNG\r\n\x1a\n"), filetype.PNG.MIME, Options{Label: "X"}, ErrUnsupported},
		{"zip", buildZip(t, []zipEntry{{name: "a.txt", data: []byte("a")}}), filetype.DOCX.MIME, Options{Label: "X"}, filetype.ErrFormat},
		{"nothing asked", docx, filetype.DOCX.MIME, Options{}, ErrOptions},
		{"no password", docx, filetype.PDF.MIME, Options{Encrypt: true}, ErrOptions},
		{"bad label id", docx, filetype.DOCX.MIME, Options{Label: "X", LabelID: "nope"}, ErrOptions},
		{"bad site id", docx, filetype.DOCX.MIME, Options{Label: "X", SiteID: "nope"}, ErrOptions},
		{"id without name", docx, filetype.DOCX.MIME, Options{LabelID: otherLabelID, Encrypt: true, Password: "p"}, ErrOptions},
		{"control in name", docx, filetype.DOCX.MIME, Options{Label: "A\x00B"}, ErrOptions},
		{"too large", docx, filetype.DOCX.MIME, Options{Label: "X", Limits: filetype.Limits{MaxInput: 100}}, filetype.ErrTooLarge},
		{"too many entries", docx, filetype.DOCX.MIME, Options{Label: "X", Limits: filetype.Limits{MaxEntries: 3}}, filetype.ErrTooLarge},
	}
	for _, c := range cases {
		var out bytes.Buffer
		_, err := Protect(&out, bytes.NewReader(c.in), int64(len(c.in)), c.mime, c.o)
		if !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", c.name, err, c.want)
		}
		if out.Len() != 0 {
			t.Errorf("%s: %d bytes written before refusing", c.name, out.Len())
		}
	}
}

func TestOOXMLMalformed(t *testing.T) {
	good := buildZip(t, ooxmlEntries("docx", ""))
	replace := func(name, data string) []byte {
		entries := ooxmlEntries("docx", "")
		for i := range entries {
			if entries[i].name == name {
				entries[i].data = []byte(data)
			}
		}
		return buildZip(t, entries)
	}
	without := func(name string) []byte {
		var entries []zipEntry
		for _, e := range ooxmlEntries("docx", "") {
			if e.name != name {
				entries = append(entries, e)
			}
		}
		return buildZip(t, entries)
	}
	cases := map[string][]byte{
		"garbage":            []byte("PK\x03\x04 this is not a zip at all"),
		"no content types":   without(contentTypesPart),
		"no rels":            without(packageRelsPart),
		"rels not xml":       replace(packageRelsPart, "<Relationships><unclosed></Relationships>"),
		"rels wrong root":    replace(packageRelsPart, `<Types xmlns="x"/>`),
		"types two roots":    replace(contentTypesPart, `<Types/><Types/>`),
		"rels escape target": replace(packageRelsPart, `<Relationships xmlns="`+relsNS+`"><Relationship Id="r" Type="`+customPropsRelType+`" Target="../../etc/passwd"/></Relationships>`),
		"duplicate entries":  buildZip(t, append(ooxmlEntries("docx", ""), zipEntry{name: "word/document.xml", data: []byte("<other/>")})),
		"custom wrong ns":    buildZip(t, ooxmlEntries("docx", `<Properties xmlns="urn:other"/>`)),
		"strict":             replace(packageRelsPart, `<Relationships xmlns="`+relsNS+`"><Relationship Id="rId1" Type="http://purl.oclc.org/ooxml/officeDocument/relationships/officeDocument" Target="word/document.xml"/></Relationships>`),
	}
	for name, in := range cases {
		_, _, err := protectBytes(t, in, filetype.DOCX.MIME, Options{Label: "Confidential"})
		if err == nil {
			t.Errorf("%s: no error", name)
			continue
		}
		want := filetype.ErrFormat
		if name == "strict" {
			want = ErrUnsupported
		}
		if !errors.Is(err, want) {
			t.Errorf("%s: %v, want %v", name, err, want)
		}
	}
	// Truncated anywhere: an error, never a panic.
	for n := 0; n < len(good); n += 29 {
		if _, _, err := protectBytes(t, good[:n], filetype.DOCX.MIME, Options{Label: "Confidential"}); !errors.Is(err, filetype.ErrFormat) {
			t.Errorf("truncated at %d: %v, want ErrFormat", n, err)
		}
	}
}

func TestOOXMLZipBomb(t *testing.T) {
	t.Run("ratio", func(t *testing.T) {
		entries := append(ooxmlEntries("docx", ""), zipEntry{name: "word/media/zeros.bin", data: make([]byte, 8<<20), method: zip.Deflate})
		_, _, err := protectBytes(t, buildZip(t, entries), filetype.DOCX.MIME, Options{Label: "Confidential"})
		if !errors.Is(err, filetype.ErrBomb) {
			t.Fatalf("%v, want ErrBomb", err)
		}
	})
	t.Run("total", func(t *testing.T) {
		_, _, err := protectBytes(t, buildZip(t, ooxmlEntries("docx", "")), filetype.DOCX.MIME, Options{Label: "Confidential", Limits: filetype.Limits{MaxUncompressed: 500}})
		if !errors.Is(err, filetype.ErrTooLarge) {
			t.Fatalf("%v, want ErrTooLarge", err)
		}
	})
	t.Run("lying size", func(t *testing.T) {
		// custom.xml claims 600 bytes and holds 4 MiB.
		big := xmlDecl + `<Properties xmlns="` + customPropsNS + `">` + strings.Repeat(" ", 4<<20) + `</Properties>`
		var comp bytes.Buffer
		fw, _ := flate.NewWriter(&comp, flate.BestCompression)
		fw.Write([]byte(big))
		fw.Close()
		var b bytes.Buffer
		zw := zip.NewWriter(&b)
		for _, e := range ooxmlEntries("docx", "") {
			w, _ := zw.CreateHeader(&zip.FileHeader{Name: e.name, Method: e.method})
			w.Write(e.data)
		}
		w, err := zw.CreateRaw(&zip.FileHeader{Name: defaultCustomPart, Method: zip.Deflate, CRC32: crc32.ChecksumIEEE([]byte(big)), CompressedSize64: uint64(comp.Len()), UncompressedSize64: 600})
		if err != nil {
			t.Fatal(err)
		}
		w.Write(comp.Bytes())
		zw.Close()
		_, _, err = protectBytes(t, b.Bytes(), filetype.DOCX.MIME, Options{Label: "Confidential"})
		if !errors.Is(err, filetype.ErrBomb) && !errors.Is(err, filetype.ErrFormat) {
			t.Fatalf("%v, want ErrBomb or ErrFormat", err)
		}
		t.Log(err)
	})
}
