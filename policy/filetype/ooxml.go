package filetype

import (
	"archive/zip"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"path"
	"sort"
	"strings"
)

// ExtractOOXML writes the text of a docx, xlsx or pptx to w (typically a
// dlp Inspector) and returns the type and sensitivity labels. Paragraphs
// and cells end with a newline so detectors see word boundaries; runs
// inside a paragraph are joined as Word shows them, so a number split over
// two runs is still one number.
func ExtractOOXML(r io.ReaderAt, size int64, w io.Writer, lim Limits) (Info, error) {
	lim = lim.withDefaults()
	if size > lim.MaxInput {
		return Info{}, fmt.Errorf("%w: %d bytes", ErrTooLarge, size)
	}
	zr, err := zip.NewReader(r, size)
	if err != nil {
		return Info{}, fmt.Errorf("%w: %v", ErrFormat, err)
	}
	if len(zr.File) > lim.MaxEntries {
		return Info{}, fmt.Errorf("%w: %d archive entries", ErrTooLarge, len(zr.File))
	}
	info := Info{Type: ZIP}
	var parts []*zip.File
	for _, f := range zr.File {
		name := f.Name
		switch {
		case name == "word/document.xml":
			info.Type = DOCX
		case name == "xl/workbook.xml":
			info.Type = XLSX
		case name == "ppt/presentation.xml":
			info.Type = PPTX
		}
		if textPart(name) {
			parts = append(parts, f)
		}
	}
	if info.Type == ZIP {
		return info, fmt.Errorf("%w: a zip archive but not an OOXML document", ErrFormat)
	}
	// Document order: slide2 before slide10.
	sort.SliceStable(parts, func(i, j int) bool { return naturalLess(parts[i].Name, parts[j].Name) })
	budget := &budget{left: lim.MaxUncompressed}
	for _, f := range zr.File {
		switch f.Name {
		case "docProps/custom.xml":
			if err := readPart(f, lim, budget, func(rd io.Reader) error { return customLabels(rd, &info) }); err != nil {
				return info, err
			}
		case "docMetadata/LabelInfo.xml":
			if err := readPart(f, lim, budget, func(rd io.Reader) error { return labelInfo(rd, &info) }); err != nil {
				return info, err
			}
		}
	}
	for _, f := range parts {
		if err := readPart(f, lim, budget, func(rd io.Reader) error { return xmlText(rd, w, strings.HasPrefix(f.Name, "xl/worksheets/")) }); err != nil {
			return info, err
		}
	}
	return info, nil
}

func textPart(name string) bool {
	if !strings.HasSuffix(name, ".xml") {
		return false
	}
	dir, file := path.Split(name)
	switch dir {
	case "word/":
		return file == "document.xml" || strings.HasPrefix(file, "header") || strings.HasPrefix(file, "footer") ||
			file == "footnotes.xml" || file == "endnotes.xml" || file == "comments.xml"
	case "xl/":
		return file == "sharedStrings.xml"
	case "xl/worksheets/", "ppt/slides/", "ppt/notesSlides/":
		return true
	}
	return false
}

type budget struct{ left int64 }

// readPart opens one entry with the bomb checks: declared ratio, then the
// actual bytes against the remaining budget (declared sizes can lie).
func readPart(f *zip.File, lim Limits, b *budget, fn func(io.Reader) error) error {
	if f.CompressedSize64 > 0 && f.UncompressedSize64/f.CompressedSize64 > uint64(lim.MaxRatio) {
		return fmt.Errorf("%w: %s", ErrBomb, f.Name)
	}
	if int64(f.UncompressedSize64) > b.left {
		return fmt.Errorf("%w: %s expands to %d bytes", ErrTooLarge, f.Name, f.UncompressedSize64)
	}
	rc, err := f.Open()
	if err != nil {
		return fmt.Errorf("%w: %s: %v", ErrFormat, f.Name, err)
	}
	defer rc.Close()
	lr := &limitedReader{r: rc, left: min(b.left, int64(f.UncompressedSize64)+1)}
	err = fn(lr)
	b.left -= lr.read
	if lr.exceeded {
		return fmt.Errorf("%w: %s is larger than declared", ErrBomb, f.Name)
	}
	if err != nil && !errors.Is(err, ErrTooLarge) && !errors.Is(err, ErrBomb) {
		return fmt.Errorf("%w: %s: %v", ErrFormat, f.Name, err)
	}
	return err
}

// limitedReader fails (rather than truncating silently) past its limit.
type limitedReader struct {
	r        io.Reader
	left     int64
	read     int64
	exceeded bool
}

func (l *limitedReader) Read(p []byte) (int, error) {
	if l.left <= 0 {
		l.exceeded = true
		return 0, ErrBomb
	}
	if int64(len(p)) > l.left {
		p = p[:l.left]
	}
	n, err := l.r.Read(p)
	l.left -= int64(n)
	l.read += int64(n)
	return n, err
}

// xmlText writes the character data of text elements: w:t (Word), a:t
// (DrawingML), t (shared strings, inline strings) and, in worksheets, v
// (cell values: numbers are where card numbers hide in spreadsheets).
func xmlText(r io.Reader, w io.Writer, sheet bool) error {
	d := xml.NewDecoder(r)
	d.Strict = false
	inText := 0
	for {
		tok, err := d.RawToken()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		switch t := tok.(type) {
		case xml.StartElement:
			switch t.Name.Local {
			case "t":
				inText++
			case "v":
				if sheet {
					inText++
				}
			case "tab", "br":
				io.WriteString(w, " ")
			}
		case xml.EndElement:
			switch t.Name.Local {
			case "t":
				inText = max(inText-1, 0)
			case "v":
				if sheet {
					inText = max(inText-1, 0)
				}
			case "p", "si", "c", "tr":
				io.WriteString(w, "\n")
			}
		case xml.CharData:
			if inText > 0 {
				if _, err := w.Write(t); err != nil {
					return err
				}
			}
		}
	}
}

// customLabels reads MSIP_Label_<guid>_<Key> custom document properties.
func customLabels(r io.Reader, info *Info) error {
	d := xml.NewDecoder(r)
	d.Strict = false
	var name string
	var val strings.Builder
	inProp := false
	for {
		tok, err := d.RawToken()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		switch t := tok.(type) {
		case xml.StartElement:
			if t.Name.Local == "property" {
				inProp, name = true, ""
				val.Reset()
				for _, a := range t.Attr {
					if a.Name.Local == "name" {
						name = a.Value
					}
				}
			}
		case xml.CharData:
			if inProp && val.Len() < 1024 {
				val.Write(t)
			}
		case xml.EndElement:
			if t.Name.Local == "property" && inProp {
				inProp = false
				setLabelProp(info, name, strings.TrimSpace(val.String()))
			}
		}
	}
}

// setLabelProp applies one "MSIP_Label_<guid>_<Key>" = value.
func setLabelProp(info *Info, name, value string) {
	rest, ok := strings.CutPrefix(name, "MSIP_Label_")
	if !ok {
		return
	}
	i := strings.LastIndexByte(rest, '_')
	if i <= 0 {
		return
	}
	id, key := strings.Trim(rest[:i], "{}"), rest[i+1:]
	l := labelByID(info, id)
	switch key {
	case "Name":
		l.Name = value
	case "Enabled":
		l.Enabled = strings.EqualFold(value, "true") || value == "1"
	case "SiteId":
		l.SiteID = strings.Trim(value, "{}")
	case "Method":
		l.Method = value
	}
}

func labelByID(info *Info, id string) *Label {
	id = strings.ToLower(id)
	for i := range info.Labels {
		if info.Labels[i].ID == id {
			return &info.Labels[i]
		}
	}
	if len(info.Labels) >= 16 {
		// A file with more labels than that is hostile; keep the first ones.
		return &Label{}
	}
	info.Labels = append(info.Labels, Label{ID: id})
	return &info.Labels[len(info.Labels)-1]
}

// labelInfo reads docMetadata/LabelInfo.xml (newer Office): ids, state
// and method, without names — names come from custom.xml when present.
func labelInfo(r io.Reader, info *Info) error {
	d := xml.NewDecoder(r)
	d.Strict = false
	for {
		tok, err := d.RawToken()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		if t, ok := tok.(xml.StartElement); ok && t.Name.Local == "label" {
			var id, enabled, method, site string
			for _, a := range t.Attr {
				switch a.Name.Local {
				case "id":
					id = a.Value
				case "enabled":
					enabled = a.Value
				case "method":
					method = a.Value
				case "siteId":
					site = a.Value
				}
			}
			if id == "" {
				continue
			}
			l := labelByID(info, strings.Trim(id, "{}"))
			l.Enabled = enabled == "1" || strings.EqualFold(enabled, "true")
			if method != "" {
				l.Method = method
			}
			if site != "" {
				l.SiteID = strings.Trim(site, "{}")
			}
		}
	}
}

// naturalLess orders names with embedded numbers numerically.
func naturalLess(a, b string) bool {
	for a != "" && b != "" {
		da, db := digitsPrefix(a), digitsPrefix(b)
		if da > 0 && db > 0 {
			na, nb := strings.TrimLeft(a[:da], "0"), strings.TrimLeft(b[:db], "0")
			if len(na) != len(nb) {
				return len(na) < len(nb)
			}
			if na != nb {
				return na < nb
			}
			a, b = a[da:], b[db:]
			continue
		}
		if a[0] != b[0] {
			return a[0] < b[0]
		}
		a, b = a[1:], b[1:]
	}
	return len(a) < len(b)
}

func digitsPrefix(s string) int {
	i := 0
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	return i
}
