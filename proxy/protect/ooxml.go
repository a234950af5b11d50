package protect

import (
	"archive/zip"
	"cmp"
	"fmt"
	"io"
	"strings"

	"github.com/portcullis-gw/portcullis/policy/filetype"
)

// Open Packaging Conventions names and the Office vocabulary of labels.
const (
	contentTypesPart  = "[Content_Types].xml"
	packageRelsPart   = "_rels/.rels"
	defaultCustomPart = "docProps/custom.xml"
	defaultLabelInfo  = "docMetadata/LabelInfo.xml"

	customPropsType    = "application/vnd.openxmlformats-officedocument.custom-properties+xml"
	customPropsRelType = "http://schemas.openxmlformats.org/officeDocument/2006/relationships/custom-properties"
	labelInfoRelType   = "http://schemas.microsoft.com/office/2020/02/relationships/classificationlabels"
	strictRelPrefix    = "http://purl.oclc.org/ooxml/officeDocument/relationships/"
	customPropsNS      = "http://schemas.openxmlformats.org/officeDocument/2006/custom-properties"
	vtNS               = "http://schemas.openxmlformats.org/officeDocument/2006/docPropsVTypes"
	// customPropsFMTID is the format id every user-defined property carries.
	customPropsFMTID = "{D5CDD505-2E9C-101B-9397-08002B2CF9AE}"
)

// ooxmlPackage is an indexed, size-checked OOXML zip.
type ooxmlPackage struct {
	zr    *zip.Reader
	files map[string]*zip.File
	typ   filetype.Type
}

func protectOOXML(dst io.Writer, src io.ReaderAt, size int64, lbl *label, lim filetype.Limits) (Result, error) {
	if lbl == nil {
		// checkOptions lets OOXML through only with a label to apply.
		return Result{}, fmt.Errorf("%w: no label to apply", ErrOptions)
	}
	zr, err := zip.NewReader(src, size)
	if err != nil {
		return Result{}, fmt.Errorf("%w: %v", filetype.ErrFormat, err)
	}
	pkg, err := openPackage(zr, lim)
	if err != nil {
		return Result{}, err
	}
	res := Result{Type: pkg.typ.Name}
	scan, err := pkg.scan(lbl)
	if err != nil {
		return res, err
	}
	if kept := scan.found.kept(); kept != "" {
		res.KeptLabel = kept
		return res, copyThrough(dst, src, size)
	}
	changed, err := scan.changes(lbl)
	if err != nil {
		return res, err
	}
	if err := pkg.write(dst, changed); err != nil {
		return res, err
	}
	res.Labeled = true
	return res, nil
}

// packageScan is what the parts that carry labels say.
type packageScan struct {
	found                foundLabels
	rels                 *relsScan
	relsXML              []byte
	types                *typesScan
	typesXML             []byte
	customName, infoName string
	custom               *customScan // nil when the part does not exist
	customXML            []byte
	info                 *labelInfoScan // nil when the part does not exist
	infoXML              []byte
}

// scan reads the package relationships, the content types, and the custom
// properties and LabelInfo.xml parts where they exist.
func (p *ooxmlPackage) scan(lbl *label) (*packageScan, error) {
	s := &packageScan{}
	var err error
	if s.relsXML, err = p.read(packageRelsPart); err != nil {
		return nil, err
	}
	if s.rels, err = scanRels(s.relsXML); err != nil {
		return nil, fmt.Errorf("%s: %w", packageRelsPart, err)
	}
	if s.rels.strict {
		return nil, fmt.Errorf("%w: Strict Open XML documents are not labelled", ErrUnsupported)
	}
	if s.typesXML, err = p.read(contentTypesPart); err != nil {
		return nil, err
	}
	if s.types, err = scanContentTypes(s.typesXML); err != nil {
		return nil, fmt.Errorf("%s: %w", contentTypesPart, err)
	}
	s.customName = cmp.Or(s.rels.customTarget, defaultCustomPart)
	if _, ok := p.files[s.customName]; ok {
		if s.customXML, err = p.read(s.customName); err != nil {
			return nil, err
		}
		if s.custom, err = scanCustom(s.customXML, lbl, &s.found); err != nil {
			return nil, fmt.Errorf("%s: %w", s.customName, err)
		}
	}
	s.infoName = cmp.Or(s.rels.labelInfoTarget, defaultLabelInfo)
	if _, ok := p.files[s.infoName]; ok {
		if s.infoXML, err = p.read(s.infoName); err != nil {
			return nil, err
		}
		if s.info, err = scanLabelInfo(s.infoXML, lbl, &s.found); err != nil {
			return nil, fmt.Errorf("%s: %w", s.infoName, err)
		}
	}
	return s, nil
}

// changes returns the new content of each part that changes: the custom
// properties part always, LabelInfo.xml when there is one, the package
// relationships and content types only when they do not name the custom
// properties part yet.
func (s *packageScan) changes(lbl *label) (map[string][]byte, error) {
	changed := make(map[string][]byte, 4)
	add := func(name string, b []byte, edits ...edit) error {
		out, err := applyEdits(b, edits)
		changed[name] = out
		return err
	}
	var err error
	if s.custom != nil {
		err = add(s.customName, s.customXML, append(s.custom.drop, appendChildren(s.custom.root, s.custom.markup(lbl)))...)
	} else {
		changed[s.customName] = []byte(newCustomPart(lbl))
	}
	if err == nil && s.info != nil {
		err = add(s.infoName, s.infoXML, append(s.info.drop, appendChildren(s.info.root, s.info.markup(lbl)))...)
	}
	if err == nil && s.rels.customTarget == "" {
		markup := fmt.Sprintf(`<%s Id="%s" Type="%s" Target="%s"/>`,
			qualified(s.rels.root.name.Space, "Relationship"), s.rels.freeID(), customPropsRelType, escapeXML(s.customName))
		err = add(packageRelsPart, s.relsXML, appendChildren(s.rels.root, markup))
	}
	if err == nil && !s.types.overrides["/"+strings.ToLower(s.customName)] {
		markup := fmt.Sprintf(`<%s PartName="/%s" ContentType="%s"/>`,
			qualified(s.types.root.name.Space, "Override"), escapeXML(s.customName), customPropsType)
		err = add(contentTypesPart, s.typesXML, appendChildren(s.types.root, markup))
	}
	return changed, err
}

// openPackage indexes the zip and checks what can be checked without
// decompressing: entry count, duplicate names (two readers could see two
// different documents), encrypted entries, and every entry's declared
// sizes against the ratio and total limits. Entries this package copies
// are never decompressed, so declared sizes are all they can cost anyone.
func openPackage(zr *zip.Reader, lim filetype.Limits) (*ooxmlPackage, error) {
	if len(zr.File) > lim.MaxEntries {
		return nil, fmt.Errorf("%w: %d archive entries (limit %d)", filetype.ErrTooLarge, len(zr.File), lim.MaxEntries)
	}
	p := &ooxmlPackage{zr: zr, files: make(map[string]*zip.File, len(zr.File)), typ: filetype.ZIP}
	var total uint64
	for _, f := range zr.File {
		if _, dup := p.files[f.Name]; dup {
			return nil, fmt.Errorf("%w: duplicate zip entry %q", filetype.ErrFormat, f.Name)
		}
		p.files[f.Name] = f
		if f.Flags&0x1 != 0 {
			return nil, fmt.Errorf("%w: encrypted zip entry %q", filetype.ErrFormat, f.Name)
		}
		if f.CompressedSize64 == 0 && f.UncompressedSize64 > 0 {
			return nil, fmt.Errorf("%w: %s: no compressed bytes for %d bytes", filetype.ErrFormat, f.Name, f.UncompressedSize64)
		}
		if f.CompressedSize64 > 0 && f.UncompressedSize64/f.CompressedSize64 > uint64(lim.MaxRatio) {
			return nil, fmt.Errorf("%w: %s expands %d times", filetype.ErrBomb, f.Name, f.UncompressedSize64/f.CompressedSize64)
		}
		if total += f.UncompressedSize64; total > uint64(lim.MaxUncompressed) {
			return nil, fmt.Errorf("%w: entries expand to more than %d bytes", filetype.ErrTooLarge, lim.MaxUncompressed)
		}
		switch f.Name {
		case "word/document.xml":
			p.typ = filetype.DOCX
		case "xl/workbook.xml":
			p.typ = filetype.XLSX
		case "ppt/presentation.xml":
			p.typ = filetype.PPTX
		}
	}
	if p.typ == filetype.ZIP {
		return nil, fmt.Errorf("%w: a zip archive but not an OOXML document", filetype.ErrFormat)
	}
	for _, name := range []string{contentTypesPart, packageRelsPart} {
		if _, ok := p.files[name]; !ok {
			return nil, fmt.Errorf("%w: OOXML package without %s", filetype.ErrFormat, name)
		}
	}
	return p, nil
}

// read decompresses one XML part, at most maxPart bytes. The declared
// size was checked by openPackage; archive/zip refuses data beyond it.
func (p *ooxmlPackage) read(name string) ([]byte, error) {
	f := p.files[name]
	if f.UncompressedSize64 > maxPart {
		return nil, fmt.Errorf("%w: %s is %d bytes (limit %d)", filetype.ErrTooLarge, name, f.UncompressedSize64, maxPart)
	}
	rc, err := f.Open()
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", filetype.ErrFormat, name, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, int64(f.UncompressedSize64)+1))
	switch {
	case err != nil:
		return nil, fmt.Errorf("%w: %s: %v", filetype.ErrFormat, name, err)
	case uint64(len(b)) > f.UncompressedSize64:
		return nil, fmt.Errorf("%w: %s is larger than declared", filetype.ErrBomb, name)
	}
	return b, nil
}

// write streams the package to dst: changed parts are recompressed, every
// other entry is copied with its compressed bytes as they were, in the
// original order; parts that did not exist come last.
func (p *ooxmlPackage) write(dst io.Writer, changed map[string][]byte) error {
	zw := zip.NewWriter(dst)
	var modified zip.FileHeader
	for _, f := range p.zr.File {
		b, ok := changed[f.Name]
		if !ok {
			if err := zw.Copy(f); err != nil {
				return fmt.Errorf("zip copy %s: %w", f.Name, err)
			}
			continue
		}
		delete(changed, f.Name)
		fh := f.FileHeader
		modified = fh
		// The sizes, CRC and any zip64 extra field are the writer's to set.
		fh.Extra, fh.Method = nil, zip.Deflate
		if err := writeEntry(zw, &fh, b); err != nil {
			return err
		}
	}
	for name, b := range changed { // at most the new custom properties part
		fh := &zip.FileHeader{Name: name, Method: zip.Deflate, Modified: modified.Modified}
		if err := writeEntry(zw, fh, b); err != nil {
			return err
		}
	}
	if err := zw.SetComment(p.zr.Comment); err != nil {
		return fmt.Errorf("zip comment: %w", err)
	}
	return zw.Close()
}

func writeEntry(zw *zip.Writer, fh *zip.FileHeader, b []byte) error {
	w, err := zw.CreateHeader(fh)
	if err == nil {
		_, err = w.Write(b)
	}
	if err != nil {
		return fmt.Errorf("zip write %s: %w", fh.Name, err)
	}
	return nil
}
