package filetype

import (
	"bytes"
	"unicode/utf8"
)

// Type is a recognised file type.
type Type struct {
	Name string // short name: pdf, docx, zip, png, text...
	MIME string
	Ext  string // usual extension, no dot
}

// Known types.
var (
	PDF     = Type{"pdf", "application/pdf", "pdf"}
	DOCX    = Type{"docx", "application/vnd.openxmlformats-officedocument.wordprocessingml.document", "docx"}
	XLSX    = Type{"xlsx", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", "xlsx"}
	PPTX    = Type{"pptx", "application/vnd.openxmlformats-officedocument.presentationml.presentation", "pptx"}
	ZIP     = Type{"zip", "application/zip", "zip"}
	PNG     = Type{"png", "image/png", "png"}
	JPEG    = Type{"jpeg", "image/jpeg", "jpg"}
	GIF     = Type{"gif", "image/gif", "gif"}
	GZIP    = Type{"gzip", "application/gzip", "gz"}
	SevenZ  = Type{"7z", "application/x-7z-compressed", "7z"}
	RAR     = Type{"rar", "application/vnd.rar", "rar"}
	OLE     = Type{"ole", "application/x-ole-storage", "doc"}
	EXE     = Type{"exe", "application/x-msdownload", "exe"}
	ELF     = Type{"elf", "application/x-executable", ""}
	HTML    = Type{"html", "text/html", "html"}
	XML     = Type{"xml", "application/xml", "xml"}
	Text    = Type{"text", "text/plain", "txt"}
	Unknown = Type{"binary", "application/octet-stream", ""}
)

// SniffLen is how many leading bytes Detect wants; fewer work, with less
// certainty for OOXML (whose part names follow the first entry).
const SniffLen = 4096

var magics = []struct {
	prefix string
	t      Type
}{
	{"%PDF-", PDF},
	{"\x89PNG\r\n\x1a\n", PNG},
	{"\xff\xd8\xff", JPEG},
	{"GIF87a", GIF},
	{"GIF89a", GIF},
	{"\x1f\x8b", GZIP},
	{"7z\xbc\xaf\x27\x1c", SevenZ},
	{"Rar!\x1a\x07", RAR},
	{"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", OLE},
	{"\x7fELF", ELF},
}

// Detect names the type of a file from its first bytes.
func Detect(head []byte) Type {
	for _, m := range magics {
		if bytes.HasPrefix(head, []byte(m.prefix)) {
			return m.t
		}
	}
	if bytes.HasPrefix(head, []byte("PK\x03\x04")) {
		// OOXML packages name their main part's folder in the first local
		// file headers ([Content_Types].xml, _rels, then word/ xl/ ppt/).
		switch {
		case bytes.Contains(head, []byte("word/")):
			return DOCX
		case bytes.Contains(head, []byte("xl/")):
			return XLSX
		case bytes.Contains(head, []byte("ppt/")):
			return PPTX
		}
		return ZIP
	}
	if bytes.HasPrefix(head, []byte("MZ")) && len(head) >= 64 {
		return EXE
	}
	if isText(head) {
		t := bytes.TrimLeft(head, " \t\r\n\xef\xbb\xbf")
		lower := bytes.ToLower(t[:min(len(t), 64)])
		switch {
		case bytes.HasPrefix(lower, []byte("<!doctype html")) || bytes.HasPrefix(lower, []byte("<html")):
			return HTML
		case bytes.HasPrefix(lower, []byte("<?xml")):
			return XML
		}
		return Text
	}
	return Unknown
}

// isText: valid UTF-8 (a rune cut at the end of head is fine) without
// control characters other than whitespace.
func isText(b []byte) bool {
	if len(b) == 0 {
		return false
	}
	for i := 0; i < len(b); {
		c := b[i]
		if c < 0x80 {
			if c < 0x20 && c != '\t' && c != '\n' && c != '\r' && c != '\f' || c == 0x7f {
				return false
			}
			i++
			continue
		}
		r, n := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && n <= 1 {
			return len(b)-i < utf8.UTFMax && !utf8.FullRune(b[i:])
		}
		i += n
	}
	return true
}
